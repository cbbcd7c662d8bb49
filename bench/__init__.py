"""Sietch's benchmark suite: `python -m bench` (or `make bench`); see BENCHMARKS.md for the results.

Not part of `make test`: it loads communities of up to a million members, one per score shape (long-tailed,
tied holders, all equal) and size, into the embedded PostgreSQL (`.run/bench-postgres`) and the local CQL
node (keyspace `sietch_bench`), measures the hot-path reads through `HotPathService` on both backends, a
Redis sorted set's position read beside them (bench/redis_row.py, a redis-server of the benchmark's own), the
legacy query shapes they replace, the Scylla snapshot rebuild, the real bot's interactions per second
against the Discord emulator (one bot process, and two as the two shards of one bot), how long an
acknowledged score update takes to show in the Scylla answers under a steady stream of updates, and the
peak memory of `sietch import`, `backfill` and `verify` (bench/rss.py), and how a fleet of a thousand small
communities on two shard processes settles at its roles (bench/fleet.py); then profiles those paths
(pyinstrument, `EXPLAIN (ANALYZE, BUFFERS)` of the PostgreSQL backend's statements, py-spy of the bot).
"""
