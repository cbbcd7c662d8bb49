"""Sietch's benchmark suite: `python -m bench` (or `make bench`); see BENCHMARKS.md for the results.

Not part of `make test`: it loads communities of up to a million members into the embedded PostgreSQL
(`.run/bench-postgres`) and the local CQL node (keyspace `sietch_bench`), measures the hot-path reads
through `HotPathService` on both backends, the legacy query shapes they replace, the Scylla snapshot
rebuild, and the real bot's interactions per second against the Discord emulator, then profiles those
paths (pyinstrument, `EXPLAIN (ANALYZE, BUFFERS)` of the PostgreSQL backend's statements, py-spy of the bot).
"""
