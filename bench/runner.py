"""The benchmark run: servers, data, reads, legacy shapes, recalculation, bot throughput, profiles, report."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import time
from pathlib import Path
from typing import Any

from psycopg.rows import tuple_row
from psycopg_pool import AsyncConnectionPool

from backends.postgres.backend import PostgresBackend
from backends.protocol import TenantContext
from backends.scylla.backend import ScyllaBackend
from bench import botload, data, env, measure, profiling, report
from bot.domain.service import HotPathService

log = logging.getLogger("bench")
HERE = Path(__file__).resolve().parent


async def _tuple_rows(conn: Any) -> None:
    """The backends set dict rows on the connections they take; the benchmark's own queries use tuples."""
    conn.row_factory = tuple_row


def relative(value: Any) -> Any:
    """Paths inside the project are kept relative to it, so the results read the same on any checkout."""
    if isinstance(value, dict):
        return {k: relative(v) for k, v in value.items()}
    if isinstance(value, list):
        return [relative(v) for v in value]
    if isinstance(value, str) and value.startswith(f"{env.ROOT}/"):
        return value[len(str(env.ROOT)) + 1 :]
    return value


class Run:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.out = Path(args.out)
        self.workdir = Path(args.workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.results_path = self.workdir / "results.json" if args.quick else HERE / "results.json"
        self.profiles_dir = self.workdir / "profiles" if args.quick else HERE / "profiles"
        self.profiles_dir.mkdir(parents=True, exist_ok=True)
        self.plot_path = self.workdir / "latency.png" if args.quick else HERE / "latency.png"
        self.res: dict[str, Any] = {
            "args": {k: v for k, v in vars(args).items()},
            "machine": env.machine(),
            "code": env.code_state(),
            "sizes": {},
            "load_seen": [],
        }
        self.members: dict[int, data.Members] = {}
        self.samples: dict[int, measure.Sample] = {}

    def save(self) -> None:
        self.results_path.write_text(json.dumps(relative(self.res), indent=1, default=str))

    def note_load(self, phase: str) -> None:
        seen = env.other_load()
        self.res["load_seen"].append({"phase": phase} | seen)
        log.info("phase %s load=%s busy=%s", phase, seen["loadavg"], seen["busy"])

    async def main(self) -> None:
        started = time.perf_counter()
        fresh = not self.args.reuse
        pg = await asyncio.to_thread(env.start_postgres, fresh)
        self.res["postgres"] = {"version": pg.version, "settings": pg.settings, "database": env.PG_DATABASE}
        node = await asyncio.to_thread(env.ensure_cql_node)
        cluster, cql, version = await asyncio.to_thread(env.open_cql, fresh)
        self.res["cql"] = {"version": version, "node": node, "keyspace": env.KEYSPACE}
        log.info("postgres %s at %s; cassandra %s (%s)", pg.version, env.PG_DATA, version, node)
        try:
            await env.migrate_keyspace(cql)
            async with AsyncConnectionPool(pg.dsn, min_size=2, max_size=6, open=False, reset=_tuple_rows) as pool:
                await pool.open(wait=True)
                self.pool = pool
                self.scylla = ScyllaBackend(cql, env.KEYSPACE)
                self.services = {
                    "postgres": HotPathService(PostgresBackend(pool)),
                    "scylla": HotPathService(self.scylla),
                }
                for size in self.args.sizes:
                    await self.size(size)
                    self.save()
                self.res_dsn = pg.dsn
                if not self.args.skip_bot:
                    await self.throughput(pg.dsn)
                    self.save()
                if not self.args.skip_profiles:
                    await self.profiles()
                    self.save()
        finally:
            await asyncio.to_thread(cluster.shutdown)
            await asyncio.to_thread(pg.stop)
        self.res["total_minutes"] = round((time.perf_counter() - started) / 60, 1)
        self.save()
        report.write(self.res, self.out, self.plot_path, HERE / "notes.md" if not self.args.quick else None)
        log.info("wrote %s, %s, %s in %.1f min", self.out, self.plot_path, self.results_path, self.res["total_minutes"])

    # --- one community size ----------------------------------------------------------------------

    async def size(self, size: int) -> None:
        args = self.args
        t0 = time.perf_counter()
        m = await asyncio.to_thread(data.generate, size)
        self.members[size] = m
        c = data.community(size, m)
        gid = c.community_id
        at: dict[str, Any] = {"data": m.stats() | {"generate_s": round(time.perf_counter() - t0, 2)}}
        self.res["sizes"][str(size)] = at
        log.info("size %s generated %s", size, at["data"])
        if not (args.reuse and await self._loaded(size, c)):
            self.note_load(f"load {size}")
            at["load_postgres"] = await data.load_postgres(self.pool, m, c)
            log.info("size %s postgres %s", size, at["load_postgres"])
            at["load_scylla"] = await data.load_scylla(self.scylla, m, c)
            log.info("size %s scylla %s", size, at["load_scylla"])
        self.note_load(f"recalc {size}")
        at["recalc"] = await data.recalculate(self.scylla, gid)
        log.info("size %s recalc %s", size, at["recalc"])
        sample = measure.sample_members(m, args.calls)
        self.samples[size] = sample
        at["parity"] = await self.parity(c, sample)
        at["ops"], at["position_by_decile"] = {}, {}
        self.note_load(f"reads {size}")
        for name, service in self.services.items():
            ops, raw = await measure.measure_service(service, c, sample, len(m.ranked), args.calls)
            at["ops"][name] = ops
            at["position_by_decile"][name] = measure.by_rank_decile(raw["position"], sample, len(m.ranked))
            log.info("size %s %s %s", size, name, {k: (v["p50"], v["p99"]) for k, v in ops.items()})
            self.save()
        if args.skip_legacy:
            empty = measure.summary([0.0]) | {"stopped_by_budget": False}
            at["legacy"] = {k: dict(empty) for k in report.LEGACY_LABELS}
        else:
            at["legacy"] = await measure.measure_legacy(self.pool, c, sample, args.calls, args.legacy_budget)
        log.info("size %s legacy %s", size, {k: (v["p50"], v["p99"], v["calls"]) for k, v in at["legacy"].items()})

    async def _loaded(self, size: int, c: Any) -> bool:
        """`--reuse`: the community is there from an earlier run with this seed and size."""
        found = await self.services_pg_community(c.community_id)
        state = await self.scylla.replica.backfill_state(c.community_id)
        ok = found == c.name and state is not None and state.state == "complete" and state.rows_copied == size
        log.info("size %s reuse=%s", size, ok)
        return ok

    async def services_pg_community(self, gid: int) -> str | None:
        async with self.pool.connection() as conn:
            cur = await conn.execute("SELECT name FROM communities WHERE community_id = %s", (gid,))
            row = await cur.fetchone()
        return row[0] if row else None

    async def parity(self, c: Any, sample: measure.Sample, count: int = 50) -> dict[str, Any]:
        """Both backends give the same answers (and the expected rank) on the first sampled members."""
        mismatches = 0
        pg, sc = self.services["postgres"], self.services["scylla"]
        for i in range(min(count, len(sample.ranks))):
            a = await pg.get_position(TenantContext(c.community_id).with_community(c), sample.profile_ids[i])
            b = await sc.get_position(TenantContext(c.community_id).with_community(c), sample.profile_ids[i])
            if a != b or a is None or a.position != sample.ranks[i]:
                mismatches += 1
                log.warning("parity: rank %s postgres=%s scylla=%s", sample.ranks[i], a, b)
        ta = await pg.get_threshold(TenantContext(c.community_id).with_community(c))
        tb = await sc.get_threshold(TenantContext(c.community_id).with_community(c))
        if (ta.ranked, ta.entry_threshold, ta.gap_to_entry) != (tb.ranked, tb.entry_threshold, tb.gap_to_entry):
            mismatches += 1
            log.warning("parity: threshold postgres=%s scylla=%s", ta, tb)
        return {"checked": min(count, len(sample.ranks)) + 1, "mismatches": mismatches}

    # --- the bot ---------------------------------------------------------------------------------

    def bot_size(self) -> int:
        sizes = [int(s) for s in self.res["sizes"]] or self.args.sizes
        return 10_000 if 10_000 in sizes else min(sizes)

    async def throughput(self, dsn: str) -> None:
        size = self.bot_size()
        gid = data.guild_id(size)
        self.res["throughput"] = {}
        for backend in ("postgres", "scylla"):
            self.note_load(f"bot {backend}")
            t = await botload.run_load(
                dsn, gid, self.samples[size], backend, self.args.interactions, self.args.concurrency, self.workdir
            )
            t["community_size"] = size
            self.res["throughput"][backend] = t
            log.info(
                "bot %s %s", backend, {k: t[k] for k in ("per_second", "latency_ms", "error_answers", "violations")}
            )

    # --- profiles ----------------------------------------------------------------------------------

    async def profiles(self) -> None:
        size = max(self.args.sizes)
        m, sample = self.members[size], self.samples[size]
        c = data.community(size, m)
        gid = c.community_id
        prof: dict[str, Any] = {}
        self.res["profiles"] = prof
        n = min(len(sample.ranks), 300)
        # members of the bottom half of the board: the most to count ahead of them
        bottom = [i for i in range(len(sample.ranks)) if sample.ranks[i] > len(m.ranked) // 2][:n]

        def ctx() -> TenantContext:
            return TenantContext(gid).with_community(c)

        async def pg_positions() -> None:
            for i in bottom:
                await self.services["postgres"].get_position(ctx(), sample.profile_ids[i])

        async def sc_positions() -> None:
            for i in range(n):
                await self.services["scylla"].get_position(ctx(), sample.profile_ids[i])

        self.note_load("profiles")
        key = f"PostgreSQL get_position, {len(bottom)} members of the bottom half, {report.fmt_size(size)}"
        prof[key] = await profiling.pyinstrument(pg_positions, self.profiles_dir / "pg_position.txt", key)
        last = max(range(len(sample.ranks)), key=lambda i: sample.ranks[i])
        prof[key]["plans"] = await profiling.explain_position(
            self.pool, gid, sample.profile_ids[last], len(m.ranked), c.page_size
        )
        key = f"Scylla get_position, {n} members over all ranks, {report.fmt_size(size)}"
        prof[key] = await profiling.pyinstrument(sc_positions, self.profiles_dir / "scylla_position.txt", key)
        self.save()
        key = f"Scylla recalculate (conviction), {report.fmt_size(size)}"
        prof[key] = await profiling.pyinstrument(
            lambda: self.scylla.recalculate(TenantContext(gid), "conviction"), self.profiles_dir / "recalc.txt", key
        )
        self.save()
        if not self.args.skip_bot:
            size_b = self.bot_size()
            slower = min(self.res["throughput"], key=lambda b: self.res["throughput"][b]["per_second"])
            raw = self.profiles_dir / f"bot_{slower}.raw"
            await botload.run_load(
                self.res_dsn,
                data.guild_id(size_b),
                self.samples[size_b],
                slower,
                min(self.args.interactions, 1500),
                self.args.concurrency,
                self.workdir,
                profile_to=raw,
            )
            prof[f"bot process under load ({slower}), py-spy"] = profiling.py_spy_summary(raw)
