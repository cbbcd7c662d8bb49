"""The benchmark run: servers, data, reads, legacy shapes, recalculation, bot throughput, profiles, report."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import time
from pathlib import Path
from typing import Any

from cassandra.cluster import EXEC_PROFILE_DEFAULT
from psycopg.rows import tuple_row
from psycopg_pool import AsyncConnectionPool

from backends.postgres.backend import PostgresBackend
from backends.protocol import TenantContext
from backends.scylla.backend import ScyllaBackend
from bench import botload, data, env, experiments, measure, profiling, report
from bot.service import HotPathService

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
        self.res["postgres"] = {"version": pg.version, "settings": pg.settings}
        node = await asyncio.to_thread(env.ensure_cql_node)
        cluster, cql, version = await asyncio.to_thread(env.open_cql, fresh)
        self.res["cql"] = {"version": version, "node": node}
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

    async def experiments_only(self) -> None:
        """Re-run the experiments on the communities an earlier run left (`--reuse`), into its results."""
        started = time.perf_counter()
        previous = json.loads(self.results_path.read_text())
        code = env.code_state()
        self.res = previous
        profiles = self.res.setdefault("profiles", {})
        for raw in sorted(self.profiles_dir.glob("bot_*.raw")):  # a run interrupted before saving it
            key = f"bot process under load ({raw.stem.removeprefix('bot_')}), py-spy"
            profiles.setdefault(key, profiling.py_spy_summary(raw))
        pg = await asyncio.to_thread(env.start_postgres, False)
        await asyncio.to_thread(env.ensure_cql_node)
        cluster, cql, _ = await asyncio.to_thread(env.open_cql, False)
        try:
            async with AsyncConnectionPool(pg.dsn, min_size=2, max_size=6, open=False, reset=_tuple_rows) as pool:
                await pool.open(wait=True)
                self.pool, self.res_dsn = pool, pg.dsn
                self.scylla = ScyllaBackend(cql, env.KEYSPACE)
                self.services = {
                    "postgres": HotPathService(PostgresBackend(pool)),
                    "scylla": HotPathService(self.scylla),
                }
                sizes = {int(s) for s in self.res["sizes"]} | {self.bot_size()}
                for size in sorted(sizes):
                    m = await asyncio.to_thread(data.generate, size)
                    if not await self._loaded(size, data.community(size, m)):
                        raise SystemExit(f"bench: the {size} community is not loaded; run without --experiments-only")
                    self.members[size] = m
                    self.samples[size] = measure.sample_members(m, self.args.calls)
                size = max(self.args.sizes)
                self.note_load("experiments")
                await self.experiments(size, data.community(size, self.members[size]))
                self.res["experiments_code"] = code
                self.res["experiments_minutes"] = round((time.perf_counter() - started) / 60, 1)
        finally:
            await asyncio.to_thread(cluster.shutdown)
            await asyncio.to_thread(pg.stop)
        self.save()
        report.write(self.res, self.out, self.plot_path, HERE / "notes.md")

    async def recalc_experiment(self) -> None:
        """The shipped snapshot rebuild against `apply_lean_writes`, on the largest community left loaded."""
        self.res = json.loads(self.results_path.read_text())
        pg = await asyncio.to_thread(env.start_postgres, False)
        await asyncio.to_thread(env.ensure_cql_node)
        cluster, cql, _ = await asyncio.to_thread(env.open_cql, False)
        try:
            async with AsyncConnectionPool(pg.dsn, min_size=2, max_size=6, open=False, reset=_tuple_rows) as pool:
                await pool.open(wait=True)
                self.pool, self.res_dsn = pool, pg.dsn
                self.scylla = ScyllaBackend(cql, env.KEYSPACE)
                self.services = {
                    "postgres": HotPathService(PostgresBackend(pool)),
                    "scylla": HotPathService(self.scylla),
                }
                size = max(int(s) for s in self.res["sizes"])
                m = await asyncio.to_thread(data.generate, size)
                c = data.community(size, m)
                if not await self._loaded(size, c):
                    raise SystemExit(f"bench: the {size} community is not loaded")
                sample = measure.sample_members(m, self.args.calls)
                self.note_load("recalc experiment")
                timings: dict[str, Any] = {}
                for label in ("shipped", "lean"):
                    if label == "lean":
                        experiments.apply_lean_writes()
                    try:
                        started = time.perf_counter()
                        ranked = await self.scylla.recalculate(TenantContext(c.community_id), "conviction")
                        elapsed = time.perf_counter() - started
                        parity = await self.parity(c, sample)
                    finally:
                        experiments.reset_lean_writes()
                    timings[label] = {
                        "seconds": round(elapsed, 2),
                        "rows_per_s": round(ranked / elapsed),
                        "parity_mismatches": parity["mismatches"],
                    }
                    log.info("recalc %s %s", label, timings[label])
                self.res.setdefault("experiments", {})["scylla: snapshot rows serialised leanly"] = {
                    "what": (
                        f"`apply_lean_writes` in bench/experiments.py: the conviction board of {report.fmt_size(size)} "
                        "rebuilt with the shipped `SnapshotWriter._write_rows`, then with batches built straight from "
                        "slices of the sorted rows (no intermediate list of 2M (query, params) tuples) and each "
                        "batch's constant columns (community, board, version, bucket) serialised once, the others "
                        "with the column types' serialisers instead of `PreparedStatement.bind`. Both followed by "
                        "the parity check of the first 50 sampled members against PostgreSQL."
                    ),
                    "recalc": timings,
                }
        finally:
            await asyncio.to_thread(cluster.shutdown)
            await asyncio.to_thread(pg.stop)
        self.save()
        report.write(self.res, self.out, self.plot_path, HERE / "notes.md")

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

    # --- profiles and experiments -------------------------------------------------------------------

    async def profiles(self) -> None:
        size = max(self.args.sizes)
        m, sample = self.members[size], self.samples[size]
        c = data.community(size, m)
        gid = c.community_id
        prof: dict[str, Any] = {}
        self.res["profiles"] = prof
        n = min(len(sample.ranks), 300)
        # the bottom half of the board, where the live count has the most to do
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
            self.pool, gid, sample.profile_ids[last], sample.ranks[last]
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
        await self.experiments(size, c)

    async def experiments(self, size: int, c: Any) -> None:
        exps: dict[str, Any] = {}
        self.res["experiments"] = exps
        sample = self.samples[size]
        calls = min(self.args.calls, 500)
        service = self.services["postgres"]
        ranked = len(self.members[size].ranked)
        sub = measure.Sample(sample.ranks[:calls], sample.profile_ids[:calls], sample.user_ids[:calls])

        async def run_ops() -> dict[str, Any]:
            ops, _ = await measure.measure_service_subset(
                service, c, sub, ranked, calls, ("position", "rank", "deep_page")
            )
            return ops

        async with self.pool.connection() as conn:  # left over by an interrupted run?
            await conn.set_autocommit(True)
            for board in ("conviction", "activity"):
                await conn.execute(f"DROP INDEX IF EXISTS bench_{board}_board_incl")
            await conn.set_autocommit(False)
        before = await run_ops()
        async with self.pool.connection() as conn:
            await conn.set_autocommit(True)
            for board in ("conviction", "activity"):
                await conn.execute(
                    f"CREATE INDEX IF NOT EXISTS bench_{board}_board_incl ON scores"
                    f" (community_id, (-{board}), joined_at, profile_id) INCLUDE ({board}) WHERE {board} > 0"
                )
            await conn.execute("VACUUM (ANALYZE) scores")
            await conn.set_autocommit(False)
        try:
            after = await run_ops()
            last = max(range(len(sample.ranks)), key=lambda i: sample.ranks[i])
            plans = await profiling.explain_position(
                self.pool, c.community_id, sample.profile_ids[last], sample.ranks[last]
            )
        finally:
            async with self.pool.connection() as conn:
                await conn.set_autocommit(True)
                for board in ("conviction", "activity"):
                    await conn.execute(f"DROP INDEX IF EXISTS bench_{board}_board_incl")
                await conn.set_autocommit(False)
        exps["PostgreSQL: board indexes that INCLUDE the score (index-only scans)"] = {
            "what": (
                f"Same {calls} members over all ranks at {report.fmt_size(size)}, before and after adding "
                "`CREATE INDEX ... ON scores (community_id, (-conviction), joined_at, profile_id) INCLUDE (conviction) "
                "WHERE conviction > 0` (and the same for activity) to the benchmark database, then `VACUUM (ANALYZE)`. "
                "The plan of the count of members ahead of the last-ranked member afterwards:"
            ),
            "table": [{"op": op, "before": before[op], "after": after[op]} for op in before],
            "plan_after": "\n\n".join(plans.values()),
        }
        self.save()
        await self.band_experiment(size, c, sub, ranked, calls, before)
        await self.scylla_experiments(size, c, sub, ranked, calls)

    async def band_experiment(
        self, size: int, c: Any, sub: measure.Sample, ranked: int, calls: int, before: dict[str, Any]
    ) -> None:
        service = self.services["postgres"]
        async with self.pool.connection() as conn:
            await conn.set_autocommit(True)
            for statement in experiments.BAND_SETUP:
                await conn.execute(statement, {"c": c.community_id})
            await conn.execute("VACUUM (ANALYZE) scores")
            await conn.set_autocommit(False)
        experiments.apply_bands()
        wrong = 0
        try:
            for i in range(min(200, len(sub.ranks))):  # the ranks must stay exact
                got = await service.get_rank(
                    TenantContext(c.community_id).with_community(c), sub.profile_ids[i], "conviction"
                )
                wrong += got is None or got.rank != sub.ranks[i]
            after, _ = await measure.measure_service_subset(service, c, sub, ranked, calls, ("position", "rank"))
            async with self.pool.connection() as conn:
                conn.row_factory = tuple_row
                last = max(range(len(sub.ranks)), key=lambda i: sub.ranks[i])
                cur = await conn.execute(
                    "SELECT conviction, joined_at FROM scores WHERE community_id = %s AND profile_id = %s",
                    (c.community_id, sub.profile_ids[last]),
                )
                score, joined = await cur.fetchone()  # type: ignore[misc]
            plan = await profiling.explain(
                self.pool,
                experiments.BAND_AHEAD,
                {"community": c.community_id, "score": score, "joined_at": joined, "profile_id": sub.profile_ids[last]},
            )
            async with self.pool.connection() as conn:
                conn.row_factory = tuple_row
                cur = await conn.execute(
                    "SELECT count(*), max(members) FROM bench_board_bands WHERE community_id = %s", (c.community_id,)
                )
                bands, widest = await cur.fetchone()  # type: ignore[misc]
        finally:
            experiments.reset_bands()
            async with self.pool.connection() as conn:
                await conn.set_autocommit(True)
                for statement in experiments.BAND_TEARDOWN:
                    await conn.execute(statement)
                await conn.set_autocommit(False)
        self.res["experiments"]["PostgreSQL: the count ahead from score-band counts plus one band"] = {
            "what": (
                f"`apply_bands` in bench/experiments.py: a table of members per score band (band = floor(ln(score) * "
                f"{experiments.BAND_SCALE}); {bands} bands at {report.fmt_size(size)}, the widest holds {widest:,} "
                "members), an index on (community_id, band, -score, joined_at, profile_id) INCLUDE (score); rank = the "
                "members of the bands above + a count inside the member's own band. Ranks checked exact on "
                f"{min(200, len(sub.ranks))} members: {wrong} wrong. Same {calls} members; 'before' is the shipped "
                "code. The plan for the last-ranked member:"
            ),
            "table": [{"op": op, "before": before[op], "after": after[op]} for op in ("position", "rank")],
            "plan_after": plan,
        }
        self.save()

    async def scylla_experiments(self, size: int, c: Any, sub: measure.Sample, ranked: int, calls: int) -> None:
        exps = self.res["experiments"]
        ops = ("position", "rank", "threshold", "page1")
        results: dict[str, dict[str, Any]] = {}
        variants = (
            ("before", []),
            ("gather", ["gather"]),
            ("both", ["gather", "pointer_cache"]),
            ("rows", ["gather", "pointer_cache", "row_factory"]),
        )
        default_rows = self.scylla.cql.session.cluster.profile_manager.profiles[EXEC_PROFILE_DEFAULT].row_factory
        for label, patches in variants:
            experiments.reset()
            experiments.apply([p for p in patches if p != "row_factory"])
            if "row_factory" in patches:
                experiments.use_cached_rows(self.scylla.cql.session)
            try:
                for backend, service in self.services.items():
                    if backend == "postgres" and label in ("both", "rows"):
                        continue
                    only = ops if backend == "scylla" else ("position",)  # `gather` only changes position
                    got, _ = await measure.measure_service_subset(service, c, sub, ranked, calls, only)
                    results[f"{backend}:{label}"] = got
            finally:
                experiments.reset()
                self.scylla.cql.session.cluster.profile_manager.profiles[
                    EXEC_PROFILE_DEFAULT
                ].row_factory = default_rows
        for backend in ("postgres", "scylla"):
            exps[f"{backend}: get_position reads the neighbours and the entry concurrently"] = {
                "what": f"`gather` in bench/experiments.py; same {calls} members at {report.fmt_size(size)}.",
                "table": [
                    {"op": op, "before": results[f"{backend}:before"][op], "after": results[f"{backend}:gather"][op]}
                    for op in results[f"{backend}:gather"]
                ],
            }
        exps["scylla: the snapshot pointer cached for 1 s per process, plus the concurrent reads"] = {
            "what": (
                "`pointer_cache` + `gather` in bench/experiments.py: the pointer and version row are read at most "
                f"once a second per process (still pinned once per request); same {calls} members at "
                f"{report.fmt_size(size)}."
            ),
            "table": [
                {"op": op, "before": results["scylla:before"][op], "after": results["scylla:both"][op]} for op in ops
            ],
        }
        exps["scylla: rows built with a cached namedtuple class, plus the two above"] = {
            "what": (
                "`row_factory` + `pointer_cache` + `gather` in bench/experiments.py; compared with the two above only; "
                f"same {calls} members at {report.fmt_size(size)}."
            ),
            "table": [
                {"op": op, "before": results["scylla:both"][op], "after": results["scylla:rows"][op]} for op in ops
            ],
        }
        self.save()
        if not self.args.skip_bot and "throughput" in self.res:
            size_b = self.bot_size()
            t = await botload.run_load(
                self.res_dsn,
                data.guild_id(size_b),
                self.samples[size_b],
                "scylla",
                self.args.interactions,
                self.args.concurrency,
                self.workdir,
                experiments="gather,pointer_cache,row_factory",
            )
            exps["scylla: rows built with a cached namedtuple class, plus the two above"] |= {
                "bot": t,
                "bot_before": self.res["throughput"]["scylla"],
            }
            self.save()
