"""The `sietch` command line: one module per command group."""
