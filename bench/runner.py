"""The benchmark run: servers, data per shape and size, reads, legacy shapes, recalculation, bot throughput
(one process and two), profiles, freshness under writes, the soak, import/verify memory, report."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import sys
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import tuple_row
from psycopg_pool import AsyncConnectionPool

from backends.postgres.backend import PostgresBackend
from backends.postgres.migrations import migrate as migrate_postgres
from backends.protocol import Community, TenantContext
from backends.scylla.backend import ScyllaBackend
from bench import botload, data, env, feed, fleet, measure, profiling, redis_row, report, soak, staleness
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


Key = tuple[str, int]  # (shape, size)
BIG = 1_000_000  # from this size on, the shapes other than the main one get `--extra-shape-calls` calls


class Run:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.out = Path(args.out)
        self.workdir = Path(args.workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        artefacts = Path(args.artefacts)
        artefacts.mkdir(parents=True, exist_ok=True)
        self.results_path = artefacts / "results.json"
        self.profiles_dir = artefacts / "profiles"
        self.profiles_dir.mkdir(parents=True, exist_ok=True)
        self.plot_path = artefacts / "latency.png"
        self.notes_path = HERE / "notes.md" if args.notes else None
        self.shapes: list[str] = list(args.shapes)
        self.main_shape = data.DEFAULT_SHAPE if data.DEFAULT_SHAPE in self.shapes else self.shapes[0]
        self.res: dict[str, Any] = {
            "args": {k: v for k, v in vars(args).items()},
            "machine": env.machine(),
            "code": env.code_state(),
            "shapes": {},
            "load_seen": [],
        }
        self.members: dict[Key, data.Members] = {}
        self.samples: dict[Key, measure.Sample] = {}
        self.communities: dict[Key, Community] = {}

    def runs(self, phase: str) -> bool:
        return phase not in self.args.skip

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
        self.pg = pg
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
                    for shape in self.shapes:
                        await self.size(shape, size)
                        self._forget(shape, size)
                        self.save()
                        self.res["minutes_so_far"] = round((time.perf_counter() - started) / 60, 1)
                if self.runs("bot"):
                    await self.guarded("bot", self.throughput(pg.dsn))
                if self.runs("bot2"):
                    await self.guarded("bot2", self.throughput_two(pg.dsn))
                if self.runs("profiles"):
                    await self.guarded("profiles", self.profiles())
                if self.runs("staleness"):
                    await self.guarded("staleness", self.freshness(pg.dsn))
                if self.runs("feed"):
                    await self.guarded("feed", self.feed(pg.dsn))
                if self.runs("soak"):
                    await self.guarded("soak", self.soak(pg.dsn))
            if self.runs("rss"):
                await self.guarded("rss", self.rss(pg))
            if self.runs("fleet"):
                await self.guarded("fleet", self.fleet(pg))
        finally:
            await asyncio.to_thread(cluster.shutdown)
            await asyncio.to_thread(pg.stop)
        self.res["total_minutes"] = round((time.perf_counter() - started) / 60, 1)
        self.save()
        report.write(self.res, self.out, self.plot_path, self.notes_path)
        log.info("wrote %s, %s, %s in %.1f min", self.out, self.plot_path, self.results_path, self.res["total_minutes"])

    async def guarded(self, phase: str, work: Coroutine[Any, Any, None]) -> None:
        """A phase after the reads: its failure is reported with the run's other numbers, not lost with them."""
        try:
            await work
        except Exception as exc:
            log.exception("phase %s failed", phase)
            self.res.setdefault("phase_errors", {})[phase] = f"{type(exc).__name__}: {exc}"
        self.save()

    def phase_seconds(self, name: str, seconds: float) -> None:
        self.res.setdefault("phase_minutes", {})[name] = round(seconds / 60, 2)

    # --- one community: a shape at a size ---------------------------------------------------------

    def _keep(self, shape: str, size: int) -> bool:
        """Member lists kept past their phase: the bot's community, and the largest of the main shape."""
        sizes = self.args.sizes
        return shape == self.main_shape and size in (self.bot_size(), self.feed_size(), max(sizes))

    def _forget(self, shape: str, size: int) -> None:
        if not self._keep(shape, size):
            self.members.pop((shape, size), None)

    async def size(self, shape: str, size: int) -> None:
        args = self.args
        phase_started = time.perf_counter()
        t0 = time.perf_counter()
        m = await asyncio.to_thread(data.generate, size, shape)
        self.members[(shape, size)] = m
        c = data.community(size, m)
        self.communities[(shape, size)] = c
        gid = c.community_id
        at: dict[str, Any] = {"data": m.stats() | {"generate_s": round(time.perf_counter() - t0, 2)}, "guild": gid}
        self.res["shapes"].setdefault(shape, {})[str(size)] = at
        log.info("%s %s generated %s", shape, size, at["data"])
        at.update(await self.load(f"{shape} {size}", m, c))
        calls = self.calls(shape, size)
        sample = measure.sample_members(m, calls)
        self.samples[(shape, size)] = sample
        at["parity"] = await self.parity(c, sample)
        at["ops"], at["position_by_decile"] = {}, {}
        self.note_load(f"reads {shape} {size}")
        for name, service in self.services.items():
            ops, raw = await measure.measure_service(
                service,
                c,
                sample,
                len(m.ranked),
                calls,
                only=args.ops,
                budget_s=args.op_budget,
                min_calls=measure.MIN_CALLS,
            )
            at["ops"][name] = ops
            if "position" in raw:
                at["position_by_decile"][name] = measure.by_rank_decile(raw["position"], sample, len(m.ranked))
            log.info("%s %s %s %s", shape, size, name, {k: (v["p50"], v["p99"], v["calls"]) for k, v in ops.items()})
            self.save()
        if self.runs("redis") and shape == self.main_shape:
            at["redis"] = await self.redis_row(m, sample, calls)
            self.save()
        if self.runs("legacy") and shape in args.legacy_shapes:
            at["legacy"] = await measure.measure_legacy(self.pool, c, sample, args.calls, args.legacy_budget)
            log.info(
                "%s %s legacy %s", shape, size, {k: (v["p50"], v["p99"], v["calls"]) for k, v in at["legacy"].items()}
            )
        else:
            at["legacy"] = None
        at["minutes"] = round((time.perf_counter() - phase_started) / 60, 2)

    async def redis_row(self, m: data.Members, sample: measure.Sample, calls: int) -> dict[str, Any]:
        """The Redis sorted-set row (bench/redis_row.py) right after the community's reads, the same members
        and calls; at every size of the main shape. Its failure is reported with the row, never fatal."""
        if "position" not in self.args.ops:
            return {
                "shape": m.shape,
                "community_size": m.size,
                "not_measured": "the run did not time the position read",
            }
        started = time.perf_counter()
        self.note_load(f"redis {m.shape} {m.size}")
        try:
            result = await redis_row.run(
                m, sample, calls, self.workdir, budget_s=self.args.op_budget, min_calls=measure.MIN_CALLS
            )
        except Exception as exc:
            log.exception("redis row failed")
            result = {"shape": m.shape, "community_size": m.size, "not_measured": f"{type(exc).__name__}: {exc}"}
        log.info(
            "%s %s redis %s",
            m.shape,
            m.size,
            result.get("not_measured")
            or {k: (v["p50"], v["p99"], v["calls"]) for k, v in (result.get("ops") or {}).items()},
        )
        spent = self.res.get("phase_minutes", {}).get("redis", 0.0) * 60
        self.phase_seconds("redis", spent + time.perf_counter() - started)
        return result

    def calls(self, shape: str, size: int) -> int:
        """Timed calls per op: fewer for the other shapes at 1M members and more (the run's length)."""
        if shape != self.main_shape and size >= BIG:
            return int(min(self.args.calls, self.args.extra_shape_calls))
        return int(self.args.calls)

    async def load(self, label: str, m: data.Members, c: Community) -> dict[str, Any]:
        """Load the community into both backends (unless `--reuse` finds it) and build its snapshots."""
        out: dict[str, Any] = {}
        reused = self.args.reuse and await self._loaded(label, m, c)
        if not reused:
            self.note_load(f"load {label}")
            pg_version, _ = await self._pg_community(c.community_id)
            version = max(pg_version or 0, await self.scylla.replica.score_version(c.community_id) or 0) + 1
            out["load_postgres"] = await data.load_postgres(self.pool, m, c, version)
            log.info("%s postgres %s", label, out["load_postgres"])
            council = await data.read_council(self.pool, c.community_id)
            out["load_scylla"] = await data.load_scylla(self.scylla, m, c, version, council)
            log.info("%s scylla %s", label, out["load_scylla"])
        if reused and await self._snapshots_current(c.community_id):
            log.info("%s snapshots reused", label)
            return out | {"recalc": {"reused": True}}
        self.note_load(f"recalc {label}")
        out["recalc"] = await data.recalculate(self.scylla, c.community_id)
        log.info("%s recalc %s", label, out["recalc"])
        return out

    async def _snapshots_current(self, gid: int) -> bool:
        """`--reuse`: both boards' live snapshots were built at the community's score version."""
        version = await self.scylla.replica.score_version(gid)
        infos = [await self.scylla.snapshot_info(TenantContext(gid), board) for board in ("conviction", "activity")]
        return all(info.score_version == version and not info.live for info in infos)

    async def _pg_community(self, gid: int) -> tuple[int | None, str | None]:
        """(score version, name) of the community in PostgreSQL, Nones when it is not there."""
        async with self.pool.connection() as conn:
            cur = await conn.execute("SELECT score_version, name FROM communities WHERE community_id = %s", (gid,))
            row = await cur.fetchone()
        return (row[0], row[1]) if row else (None, None)

    async def _loaded(self, label: str, m: data.Members, c: Community) -> bool:
        """`--reuse`: the community is there from an earlier run with this seed, shape and size, unchanged
        since (score updates of the freshness phase move the score version past the one loaded)."""
        version, name = await self._pg_community(c.community_id)
        state = await self.scylla.replica.backfill_state(c.community_id)
        ok = (
            name == c.name
            and state is not None
            and state.state == "complete"
            and state.rows_copied == m.size
            and version == state.score_version
        )
        log.info("%s reuse=%s", label, ok)
        return ok

    async def parity(self, c: Community, sample: measure.Sample, count: int = 50) -> dict[str, Any]:
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

    def feed_size(self) -> int:
        """The score feed phase's community: 100k members, or the largest below (the issue's size)."""
        return int(max([s for s in self.args.sizes if s <= 100_000] or [min(self.args.sizes)]))

    def bot_size(self) -> int:
        sizes = self.args.sizes
        return 10_000 if 10_000 in sizes else min(sizes)

    async def throughput(self, dsn: str) -> None:
        started = time.perf_counter()
        size = self.bot_size()
        key = (self.main_shape, size)
        gid = self.communities[key].community_id
        self.res["throughput"] = {}
        for backend in ("postgres", "scylla"):
            self.note_load(f"bot {backend}")
            t = await botload.run_load(
                dsn, gid, self.samples[key], backend, self.args.interactions, self.args.concurrency, self.workdir
            )
            t["community_size"] = size
            t["shape"] = self.main_shape
            self.res["throughput"][backend] = t
            log.info(
                "bot %s %s",
                backend,
                {k: t[k] for k in ("per_second", "latency_ms", "error_answers", "violations", "cores_used")},
            )
        self.phase_seconds("bot", time.perf_counter() - started)

    async def throughput_two(self, dsn: str) -> None:
        """Two bot processes, one shard each; the second guild is a twin community on the other shard."""
        started = time.perf_counter()
        size = self.bot_size()
        key = (self.main_shape, size)
        out: dict[str, Any] = {}
        self.res["throughput_two"] = out
        reason = botload.shard_settings_missing()
        if reason:
            out["not_run"] = reason
            log.info("bot2 not run: %s", reason)
            return
        twin = await asyncio.to_thread(data.generate, size, self.main_shape, data.SEED + 1)
        twin_c = data.community(size, twin, guild=data.twin_guild_id(size))
        out["twin"] = {"guild": twin_c.community_id, "size": size} | await self.load(f"twin {size}", twin, twin_c)
        twin_sample = measure.sample_members(twin, self.args.calls)
        targets = [
            botload.Target(self.communities[key].community_id, self.samples[key]),
            botload.Target(twin_c.community_id, twin_sample),
        ]
        for backend in ("postgres", "scylla"):
            self.note_load(f"bot2 {backend}")
            t = await botload.run_two(
                dsn, targets, backend, 2 * self.args.interactions, 2 * self.args.concurrency, self.workdir
            )
            t["community_size"] = size
            out[backend] = t
            log.info("bot2 %s %s", backend, {k: t.get(k) for k in ("not_run", "per_second", "per_process")})
        self.phase_seconds("bot2", time.perf_counter() - started)

    # --- profiles ----------------------------------------------------------------------------------

    async def profiles(self) -> None:
        started = time.perf_counter()
        size = max(self.args.sizes)
        key = (self.main_shape, size)
        m, sample, c = self.members[key], self.samples[key], self.communities[key]
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
        key_name = f"PostgreSQL get_position, {len(bottom)} members of the bottom half, {report.fmt_size(size)}"
        prof[key_name] = await profiling.pyinstrument(pg_positions, self.profiles_dir / "pg_position.txt", key_name)
        last = max(range(len(sample.ranks)), key=lambda i: sample.ranks[i])
        prof[key_name]["plans"] = await profiling.explain_position(
            self.pool, gid, sample.profile_ids[last], len(m.ranked), c.page_size
        )
        for shape in self.shapes:
            if shape == self.main_shape:
                continue
            other = self.samples[(shape, size)]
            ranked = self.res["shapes"][shape][str(size)]["data"]["ranked_conviction"]
            last = max(range(len(other.ranks)), key=lambda i: other.ranks[i])
            name = f"PostgreSQL plans on the {data.SHAPE_LABELS[shape]} shape, {report.fmt_size(size)}"
            oc = self.communities[(shape, size)]
            prof[name] = {
                "plans": await profiling.explain_position(
                    self.pool, oc.community_id, other.profile_ids[last], ranked, oc.page_size
                )
            }
        key_name = f"Scylla get_position, {n} members over all ranks, {report.fmt_size(size)}"
        prof[key_name] = await profiling.pyinstrument(sc_positions, self.profiles_dir / "scylla_position.txt", key_name)
        self.save()
        key_name = f"Scylla recalculate (conviction), {report.fmt_size(size)}"
        prof[key_name] = await profiling.pyinstrument(
            lambda: self.scylla.recalculate(TenantContext(gid), "conviction"),
            self.profiles_dir / "recalc.txt",
            key_name,
        )
        self.save()
        if self.runs("bot") and self.res.get("throughput"):
            size_b = self.bot_size()
            slower = min(self.res["throughput"], key=lambda b: self.res["throughput"][b]["per_second"])
            raw = self.profiles_dir / f"bot_{slower}.raw"
            await botload.run_load(
                self.pg.dsn,
                self.communities[(self.main_shape, size_b)].community_id,
                self.samples[(self.main_shape, size_b)],
                slower,
                min(self.args.interactions, 1500),
                self.args.concurrency,
                self.workdir,
                profile_to=raw,
            )
            prof[f"bot process under load ({slower}), py-spy"] = profiling.py_spy_summary(raw)
        self.phase_seconds("profiles", time.perf_counter() - started)

    # --- freshness under writes --------------------------------------------------------------------

    async def freshness(self, dsn: str) -> None:
        started = time.perf_counter()
        size = max(self.args.sizes)
        key = (self.main_shape, size)
        self.note_load("staleness")
        try:
            result = await staleness.run(
                dsn,
                self.communities[key],
                self.members[key],
                self.args.staleness_seconds,
                self.args.staleness_rate,
                self.workdir,
            )
        except Exception as exc:  # reported, not hidden; the other phases' numbers still get written
            log.exception("staleness phase failed")
            result = {"error": f"{type(exc).__name__}: {exc}", "community_size": size}
        self.res["staleness"] = result
        log.info(
            "staleness %s",
            {k: result.get(k) for k in ("updates", "seen", "not_seen", "staleness_s", "achieved_rate", "error")},
        )
        self.phase_seconds("staleness", time.perf_counter() - started)

    # --- the score feed and the roles that follow it -------------------------------------------------

    async def feed(self, dsn: str) -> None:
        started = time.perf_counter()
        key = (self.main_shape, self.feed_size())
        self.note_load("feed")
        try:
            result = await feed.run(dsn, self.communities[key], self.members[key], self.workdir)
        except Exception as exc:  # reported, not hidden
            log.exception("feed phase failed")
            result = {"error": f"{type(exc).__name__}: {exc}", "community_size": self.feed_size()}
        self.res["feed"] = result
        log.info("feed %s", {k: result.get(k) for k in ("throughput", "update_to_role", "error")})
        self.phase_seconds("feed", time.perf_counter() - started)

    # --- flat over time -----------------------------------------------------------------------------

    async def soak(self, dsn: str) -> None:
        """bench/soak.py on the largest community of the main shape, once per backend asked for."""
        started = time.perf_counter()
        size = max(self.args.sizes)
        key = (self.main_shape, size)
        out: dict[str, Any] = {"community_size": size, "shape": self.main_shape, "backends": {}}
        self.res["soak"] = out
        for backend in self.args.soak_backends:
            self.note_load(f"soak {backend}")
            try:
                result = await soak.run(
                    dsn,
                    self.communities[key],
                    self.members[key],
                    self.samples[key],
                    self.args.soak_minutes,
                    self.workdir,
                    backend,
                    rate=self.args.soak_rate,
                )
            except Exception as exc:  # reported, not hidden; the other backend still runs
                log.exception("soak phase failed on %s", backend)
                result = {"error": f"{type(exc).__name__}: {exc}", "backend": backend, "community_size": size}
            out["backends"][backend] = result
            log.info("soak %s verdict %s", backend, result.get("verdict") or result.get("error"))
            self.save()
        self.phase_seconds("soak", time.perf_counter() - started)

    # --- import / backfill / verify memory ---------------------------------------------------------

    async def rss(self, pg: env.Postgres) -> None:
        """Peak RSS and wall time of `sietch import`, `backfill` and `verify` at the largest size (bench/rss.py),
        on a database of their own so the CLI sees only that community.

        bench/rss.py runs in a process of its own: a child's `ru_maxrss` starts from its parent's peak at
        the fork, and this process holds the generated communities (over a GiB at 1M members), which every
        command would then report as its own peak."""
        started = time.perf_counter()
        size = max(self.args.sizes)
        self.note_load("rss")
        out: dict[str, Any] = {"members": size}
        self.res["rss"] = out
        if not (HERE / "rss.py").exists():
            out["not_run"] = "bench/rss.py is not there"
            return
        database = f"{env.PG_DATABASE}_rss"
        json_path = self.workdir / "rss.json"
        json_path.unlink(missing_ok=True)
        command = [
            sys.executable,
            "-m",
            "bench.rss",
            "--members",
            str(size),
            "--cql-port",
            str(env.cql_port()),
            "--json",
            str(json_path),
        ]
        if self.args.rss_sample is not None:
            command += ["--sample", str(self.args.rss_sample)]
        try:
            dsn = await asyncio.to_thread(_fresh_database, pg, database)
            command += ["--postgres-dsn", dsn]
            with (self.workdir / "rss.log").open("w") as log_file:
                proc = await asyncio.create_subprocess_exec(
                    *command, cwd=env.ROOT, stdout=log_file, stderr=asyncio.subprocess.STDOUT
                )
                code = await proc.wait()
            if not json_path.exists():
                tail = (self.workdir / "rss.log").read_text(errors="replace")[-1500:]
                raise RuntimeError(f"`python -m bench.rss` exited with {code} and wrote no result: {tail}")
            out.update(json.loads(json_path.read_text()))
            out["exit"] = code
        except Exception as exc:
            log.exception("rss phase failed")
            out["error"] = f"{type(exc).__name__}: {exc}"
        finally:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(_drop_database, pg, database)
        out["members"], out["database"] = size, database
        log.info("rss %s", {k: out.get(k, {}).get("peak_rss_mib") for k in ("import", "backfill", "verify")})
        self.phase_seconds("rss", time.perf_counter() - started)

    # --- a fleet of communities on two shard processes ----------------------------------------------

    async def fleet(self, pg: env.Postgres) -> None:
        """bench/fleet.py, on a database of its own (migrated here) so the bots see only the fleet."""
        started = time.perf_counter()
        self.note_load("fleet")
        database = f"{env.PG_DATABASE}_fleet"
        communities = int(self.args.fleet_communities)
        try:
            dsn = await asyncio.to_thread(_fresh_database, pg, database)
            await migrate_postgres(dsn)
            result = await fleet.run(dsn, communities, self.workdir)
        except Exception as exc:  # reported, not hidden
            log.exception("fleet phase failed")
            result = {"error": f"{type(exc).__name__}: {exc}", "communities": communities}
        finally:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(_drop_database, pg, database)
        result["database"] = database
        self.res["fleet"] = result
        log.info(
            "fleet %s",
            {k: result.get(k) for k in ("communities", "seed_seconds", "settle", "wave", "violation_count", "error")},
        )
        self.phase_seconds("fleet", time.perf_counter() - started)


def _fresh_database(pg: env.Postgres, name: str) -> str:
    """An empty database on the benchmark's server (dropped first); the CLI applies the migrations."""
    _drop_database(pg, name)
    with psycopg.connect(pg.admin_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    dsn: str = pg.server.get_uri(name)
    return dsn


def _drop_database(pg: env.Postgres, name: str) -> None:
    with psycopg.connect(pg.admin_dsn, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
