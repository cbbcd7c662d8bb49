"""The in-memory reference backend: a copy of the source of truth, read as the Scylla copy is read."""
