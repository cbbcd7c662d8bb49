"""A fleet of small communities on two `sietch run` shard processes: how soon roles settle, and what the
bot asks of Discord meanwhile.

Modelled on tests/e2e/test_fleet.py, at a benchmark's size. In a database of its own, this process seeds
N communities of ten members each (F=4, N=1, R=2, W=7; distinct scores) with `CommunityWrites`, their
roles with `StandingStore.put_role_config`, a feed token each (`IngestDirectory.new_token`) and a few
members subscribed to alerts (`StandingStore.subscribe`); the Discord emulator (`shard_count=2`, Discord's
limits: 50 requests/s, invalid requests counted and banned past 10,000 in 10 minutes, DM limits) holds the
guilds (their ids alternate between the two shards), roles and members; 1 % of the guilds put the bot's
role below the roles it hands out, so Discord refuses its changes there. Then two `python -m bot run`
processes (`sietch run`: SIETCH_DISCORD_SHARD_COUNT=2, SIETCH_DISCORD_SHARD_IDS=0 | 1, a feed port each,
PostgreSQL only, the shipped settings otherwise) start, and:

1. **settle**: from the processes' start until each community's members hold exactly the roles their
   positions give (the oracle, from the seeded scores; refusing guilds: none), checked every half second;
2. **wave**: three members of every community get new scores through the feed's HTTP door (the two
   processes' doors in turn, a few requests in flight), then every fifth community's fedaykin count goes
   from 4 to 5 (`CommunityWrites.upsert_community`, what `sietch community G --fedaykin 5` writes; the CLI
   is a process per community); each community's settle time counts from its own last write;
3. all along, members invoke /position and /threshold in random communities at a steady rate, each timed
   from dispatch to the visible answer;
4. the emulator's counts: requests per second, invalid requests (its 10-minute window, sampled every
   second), the ban, DMs sent (their timestamps), and its violations.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import random
import signal
import socket
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

import aiohttp
from psycopg.rows import tuple_row
from psycopg_pool import AsyncConnectionPool

from backends.members import MemberRow
from backends.postgres.community_writes import CommunityWrites
from backends.postgres.ingest import IngestDirectory
from backends.postgres.standing import StandingStore
from backends.protocol import Community
from backends.roles import RoleConfig
from bench import botload
from bench.env import ROOT
from bench.measure import summary
from bot.app.settings import load_settings
from tests.emulator import DiscordEmulator
from tests.emulator.models import Member

log = logging.getLogger("bench.fleet")

COMMUNITIES = 1000
QUICK_COMMUNITIES = 50
MEMBERS = 10
F, N, R, W = 4, 1, 2, 7
REFUSING_SHARE = 0.01  # guilds whose bot role sits below the roles it hands out
SUBSCRIBED = 2  # members per community subscribed to alerts
THRESHOLD_EVERY = 5  # every fifth community's fedaykin count changes in the wave
MOVED = 3  # members per community with a new score in the wave
COMMAND_RATE = 10.0  # /position and /threshold per second, all communities together
COMMAND_TIMEOUT = 30.0  # seconds an interaction may take to show an answer before it counts as unanswered
SEED_IN_FLIGHT = 4
POSTS_IN_FLIGHT = 4
CHECK_EVERY = 0.5  # seconds between two looks at every unsettled community
LAG_PROBE = 0.1  # seconds between two looks at how late the emulator's event loop runs
DM_QUIET = 10.0  # after the wave settles: DMs are waited for until none came for this long...
DM_WAIT = 120.0  # ...or this long at most
STOP_WAIT = 60.0  # seconds a bot process gets to exit after SIGTERM before it is killed
SHARDS = 2
GUILD_BASE = 1 << 59  # guild k = GUILD_BASE + (k << 22): shard k % 2
USER_BASE = 10**15
EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
INTERACTION_PATHS = ("/api/v10/interactions/", "/api/v10/webhooks/")  # outside Discord's global limit


def settle_limit(communities: int) -> float:
    """Seconds each settle may take before the communities still wrong are reported as such."""
    return 240.0 + 0.6 * communities


@dataclass
class Guild:
    gid: int
    index: int
    roles: dict[str, int]
    users: list[int]
    refusing: bool
    members: list[Member] = field(default_factory=list)
    subscribed: list[int] = field(default_factory=list)
    fedaykin: int = F
    token: str = ""
    scores: dict[int, Decimal] = field(default_factory=dict)

    def expected(self) -> dict[int, set[int]]:
        """The oracle (as tests/e2e/test_fleet.py's): each member's roles from their position; scores are
        distinct, so there are no ties."""
        if self.refusing:
            return {u: set() for u in self.users}
        order = sorted(self.users, key=lambda u: -self.scores[u])
        want: dict[int, set[int]] = {}
        for position, user in enumerate(order, 1):
            roles: set[int] = set()
            if self.scores[user] > 0:
                if position <= self.fedaykin:
                    roles.add(self.roles["fedaykin"])
                    if position <= N:
                        roles.add(self.roles["naib"])
                    if position > R:
                        roles.add(self.roles["at_risk"])
                elif position <= W:
                    roles.add(self.roles["waiting"])
            want[user] = roles
        return want

    def community(self) -> Community:
        return Community(
            self.gid, name=f"fleet {self.index}", fedaykin=self.fedaykin, naib=N, at_risk=R, waitlist_end=W
        )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _at_oracle(emulator: DiscordEmulator, g: Guild) -> bool:
    return all(emulator.member_roles(g.gid, u) == roles for u, roles in g.expected().items())


def _new_score(g: Guild, rng: random.Random) -> Decimal:
    taken = set(g.scores.values())
    while (score := Decimal(rng.randrange(1, 10**6))) in taken:
        pass
    return score


# --- seeding ----------------------------------------------------------------------------------------


def _emulated(emulator: DiscordEmulator, count: int, rng: random.Random) -> list[Guild]:
    refusing = max(1, round(count * REFUSING_SHARE))
    step = count // refusing
    # the refusing guilds are spread over the fleet and alternate between the shards (guild k is on k % 2)
    refusers = {k * step + (k % SHARDS if step >= SHARDS else 0) for k in range(refusing)}
    guilds = []
    for i in range(count):
        gid = GUILD_BASE + (i << 22)
        emulator.add_guild(gid, name=f"fleet {i}")
        roles = {
            k: emulator.add_role(gid, k, p) for k, p in (("naib", 5), ("fedaykin", 4), ("at_risk", 3), ("waiting", 2))
        }
        refuses = i in refusers
        emulator.give_bot_role(gid, emulator.add_role(gid, "Sietch", 1 if refuses else 10))
        users = [USER_BASE + i * MEMBERS + j for j in range(MEMBERS)]
        g = Guild(gid, i, roles, users, refuses)
        g.members = [emulator.add_member(gid, u, name=f"m{u}") for u in users]
        g.scores = {u: Decimal(s) for u, s in zip(users, rng.sample(range(1, 10**6), MEMBERS), strict=True)}
        g.subscribed = rng.sample(users, SUBSCRIBED)
        guilds.append(g)
    return guilds


async def _seed(pool: Any, guilds: list[Guild]) -> None:
    admin, standing, ingest = CommunityWrites(pool), StandingStore(pool), IngestDirectory(pool)
    gate = asyncio.Semaphore(SEED_IN_FLIGHT)

    async def one(g: Guild) -> None:
        async with gate:
            await admin.upsert_community(g.community())
            rows = [
                MemberRow(discord_user_id=u, conviction=g.scores[u], joined_at=EPOCH + timedelta(seconds=j))
                for j, u in enumerate(g.users)
            ]
            await admin.import_members(g.gid, rows)
            await standing.put_role_config(
                RoleConfig(g.gid, g.roles["naib"], g.roles["fedaykin"], g.roles["at_risk"], g.roles["waiting"])
            )
            g.token = await ingest.new_token(g.gid)
            for u in g.subscribed:
                await standing.subscribe(g.gid, u, True)

    await asyncio.gather(*(one(g) for g in guilds))


# --- watching ----------------------------------------------------------------------------------------


class Watch:
    """Samples the emulator every second and finds, every half second, the communities that reached their
    roles: `track` starts a community's clock, `settled` holds the seconds it took."""

    def __init__(self, emulator: DiscordEmulator, guilds: list[Guild], started: float) -> None:
        self.emulator = emulator
        self.by_id = {g.gid: g for g in guilds}
        self.started = started
        self.pending: dict[int, float] = {}
        self.settled: dict[int, float] = {}
        self.settled_at: dict[int, float] = {}
        self.samples: list[dict[str, Any]] = []
        self.lag_ms: list[float] = []  # how late this process's event loop (the emulator's) wakes up
        self._seen_requests = 0
        self._limited = 0
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._settle_loop()),
            loop.create_task(self._sample_loop()),
            loop.create_task(self._lag_loop()),
        ]

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)

    def track(self, gid: int, since: float) -> None:
        self.settled.pop(gid, None)
        self.settled_at.pop(gid, None)
        self.pending[gid] = since

    async def wait(self, limit: float) -> bool:
        """Until nothing is pending (True) or `limit` seconds passed (False)."""
        deadline = time.perf_counter() + limit
        while self.pending and time.perf_counter() < deadline:
            await asyncio.sleep(CHECK_EVERY)
        return not self.pending

    async def _settle_loop(self) -> None:
        while not self._stop.is_set():
            now = time.perf_counter()
            for gid, since in list(self.pending.items()):
                if _at_oracle(self.emulator, self.by_id[gid]):
                    del self.pending[gid]
                    self.settled[gid] = now - since
                    self.settled_at[gid] = now
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), CHECK_EVERY)

    async def _lag_loop(self) -> None:
        while not self._stop.is_set():
            t0 = time.perf_counter()
            await asyncio.sleep(LAG_PROBE)
            self.lag_ms.append((time.perf_counter() - t0 - LAG_PROBE) * 1000)

    async def _sample_loop(self) -> None:
        while not self._stop.is_set():
            self.sample()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), 1.0)
        self.sample()

    def sample(self) -> None:
        e = self.emulator
        new = e.requests[self._seen_requests :]
        self._seen_requests += len(new)
        self._limited += sum(
            1 for _, path in new if path.startswith("/api/") and not path.startswith(INTERACTION_PATHS)
        )
        self.samples.append(
            {
                "t": round(time.perf_counter() - self.started, 3),
                "requests": self._seen_requests,
                "global_limited": self._limited,
                "invalid_window": e.invalid_requests,
                "rate_limited": e.rate_limited,
                "role_changes": len(e.role_changes),
                "banned": e.banned,
            }
        )


# --- commands ----------------------------------------------------------------------------------------


@dataclass
class Commands:
    """Members invoking /position and /threshold at a steady rate; `window` labels what is under way."""

    emulator: DiscordEmulator
    guilds: list[Guild]
    rng: random.Random
    window: str = "settle"
    latencies: dict[str, list[float]] = field(default_factory=dict)
    first_response: dict[str, list[float]] = field(default_factory=dict)
    outcomes: dict[str, Counter[str]] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        step = 1.0 / COMMAND_RATE
        due = loop.time()
        while not stop.is_set():
            g = self.rng.choice(self.guilds)
            member = self.rng.choice(g.members)
            name = self.rng.choice(("position", "threshold"))
            task = loop.create_task(self._one(name, g, member, self.window))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            due += step
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, due - loop.time()))
        if self._tasks:
            await asyncio.wait(list(self._tasks))

    async def _one(self, name: str, g: Guild, member: Member, window: str) -> None:
        outcomes = self.outcomes.setdefault(window, Counter())
        t0 = time.perf_counter()
        try:
            inter = self.emulator.invoke(name, guild_id=g.gid, user=member)
        except Exception as exc:  # no shard connected for the guild, an unregistered command: an error
            outcomes["not_dispatched"] += 1
            self._example(f"{name} in {g.gid}: {type(exc).__name__}: {exc}")
            return
        try:
            message = await inter.done(timeout=COMMAND_TIMEOUT)
        except TimeoutError as exc:
            outcomes["unanswered"] += 1
            self._example(str(exc))
            return
        self.latencies.setdefault(window, []).append((time.perf_counter() - t0) * 1000)
        if inter.responded_at is not None:
            self.first_response.setdefault(window, []).append(inter.responded_at * 1000)
        text = " ".join(str(e.get("description", "")) for e in message.embeds) + message.content
        if "too quickly" in text:
            outcomes["rate_limited"] += 1
        elif any(e.get("title") == "Error" for e in message.embeds):
            outcomes["error"] += 1
            self._example(f"{name} in {g.gid}: {text[:200]}")
        else:
            outcomes["ok"] += 1
        if inter.deferred:
            outcomes["deferred"] += 1

    def _example(self, text: str) -> None:
        if len(self.examples) < 5:
            self.examples.append(text[:300])

    def result(self) -> dict[str, Any]:
        out: dict[str, Any] = {"rate_per_second": COMMAND_RATE, "timeout_s": COMMAND_TIMEOUT}
        windows = list(dict.fromkeys([*self.outcomes, *self.latencies]))
        for w in [*windows, "all"]:
            lat = [x for k in windows for x in self.latencies.get(k, [])] if w == "all" else self.latencies.get(w, [])
            first = (
                [x for k in windows for x in self.first_response.get(k, [])]
                if w == "all"
                else self.first_response.get(w, [])
            )
            counts: Counter[str] = Counter()
            for k in windows if w == "all" else [w]:
                counts.update(self.outcomes.get(k, Counter()))
            out[w] = {
                "sent": sum(v for k, v in counts.items() if k != "deferred"),
                "latency_ms": summary(lat),
                "first_response_ms": summary(first),
                **{k: counts.get(k, 0) for k in ("ok", "error", "rate_limited", "unanswered", "not_dispatched")},
                "deferred": counts.get("deferred", 0),
            }
        out["examples"] = self.examples
        return out


# --- the bot processes ---------------------------------------------------------------------------------


def _bot_env(dsn: str, emulator: DiscordEmulator, flags: Path, shard: int, port: int) -> dict[str, str]:
    """`sietch run`'s environment: this one without its SIETCH_ settings (a developer's shell must not leak
    in), the fleet's database (no Scylla), the emulator, the shard and a feed port."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIETCH_")}
    env.update(
        DISCORD_TOKEN=emulator.token,
        SIETCH_POSTGRES_DSN=dsn,
        SIETCH_DISCORD_API_BASE=emulator.base_url,
        SIETCH_FLAGS_PATH=str(flags),
        SIETCH_METRICS_PORT="0",
        SIETCH_DISCORD_SHARD_COUNT=str(SHARDS),
        SIETCH_DISCORD_SHARD_IDS=str(shard),
        SIETCH_FEED_PORT=str(port),
    )
    return env


class Bots:
    def __init__(self) -> None:
        self.procs: list[asyncio.subprocess.Process] = []
        self.logs: list[Path] = []
        self._files: list[IO[str]] = []

    async def start(self, dsn: str, emulator: DiscordEmulator, workdir: Path, ports: list[int]) -> None:
        flags = workdir / "flags-fleet.yaml"
        flags.write_text(botload.flags_text("postgres"))
        for shard, port in enumerate(ports):
            path = workdir / f"fleet-shard{shard}.log"
            out = path.open("w")
            self.logs.append(path)
            self._files.append(out)
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bot",
                "run",
                cwd=ROOT,
                env=_bot_env(dsn, emulator, flags, shard, port),
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
            )
            self.procs.append(proc)

    def cpu_seconds(self) -> list[float | None]:
        return [botload.cpu_seconds(p.pid) for p in self.procs]

    def exited(self) -> list[int | None]:
        return [p.returncode for p in self.procs]

    async def stop(self) -> list[float | None]:
        """SIGTERM to both, then the seconds each took to exit; None: still up after `STOP_WAIT` s, killed."""
        started = time.perf_counter()
        for p in self.procs:
            if p.returncode is None:
                p.send_signal(signal.SIGTERM)

        async def one(p: asyncio.subprocess.Process) -> float | None:
            try:
                await asyncio.wait_for(p.wait(), STOP_WAIT)
            except TimeoutError:
                p.kill()
                await p.wait()
                return None
            return round(time.perf_counter() - started, 1)

        seconds = list(await asyncio.gather(*(one(p) for p in self.procs)))
        for f in self._files:
            f.close()
        return seconds

    def log_counts(self) -> list[dict[str, int]]:
        """Lines of each process's log that tell what it went through."""
        marks = {
            "roles_synced": "roles synced",
            "role_change_refused": "role change refused",
            "role_sync_failed": "role sync failed",
            "global_429": "Global rate limit 429",
            "429_retried": "resulted in error 429",
            "errors": " ERROR ",
            "tracebacks": "Traceback",
        }
        out = []
        for path in self.logs:
            text = path.read_text(errors="replace") if path.exists() else ""
            lines = text.splitlines()
            out.append(
                {k: sum(1 for line in lines if mark in line) for k, mark in marks.items()} | {"lines": len(lines)}
            )
        return out


# --- the phase -----------------------------------------------------------------------------------------


async def _db_counts(pool: Any) -> dict[str, int]:
    """Role syncs run so far (each holds the community's lease and deletes it at the end: `work_leases`
    deletions, from PostgreSQL's statistics) and alerts still due."""
    async with pool.connection() as conn, conn.cursor(row_factory=tuple_row) as cur:
        await cur.execute("SELECT pg_stat_clear_snapshot()")
        await cur.execute("SELECT coalesce(sum(n_tup_del), 0) FROM pg_stat_user_tables WHERE relname = 'work_leases'")
        syncs = await cur.fetchone()
        await cur.execute("SELECT count(*) FROM alerts_due")
        due = await cur.fetchone()
    return {"syncs_run": int(syncs[0]) if syncs else 0, "alerts_due": int(due[0]) if due else 0}


def _by_write_order(watch: Watch, order: list[int], changed: set[int], parts: int = 10) -> list[float | None]:
    """The wave's settle p50 (s) in each tenth of the communities by the order they were written in."""
    out: list[float | None] = []
    size = max(1, len(order) // parts)
    for k in range(parts):
        chunk = [watch.settled[g] for g in order[k * size : (k + 1) * size] if g in changed and g in watch.settled]
        out.append(round(sorted(chunk)[len(chunk) // 2], 1) if chunk else None)
    return out


def _log_synced(bots: Bots) -> int:
    return sum(c["roles_synced"] for c in bots.log_counts())


def _settle_summary(watch: Watch, guilds: list[Guild], since: float, only: set[int] | None = None) -> dict[str, Any]:
    """Per community (the refusing ones apart: they are at their oracle, no roles, from the start; with
    `only`, those communities alone)."""
    counted = [g for g in guilds if not g.refusing and (only is None or g.gid in only)]
    seconds = [watch.settled[g.gid] for g in counted if g.gid in watch.settled]
    unsettled = [g.gid for g in guilds if g.gid in watch.pending]
    ends = [watch.settled_at[g.gid] for g in guilds if g.gid in watch.settled_at]
    s = summary([x * 1000 for x in seconds])  # summary() rounds to 3 places: seconds kept to the ms
    return {
        "communities": len(counted),
        "settled": len(seconds),
        "unsettled": len(unsettled),
        "unsettled_examples": unsettled[:5],
        "p50_s": _s(s["p50"]),
        "p95_s": _s(s["p95"]),
        "p99_s": _s(s["p99"]),
        "max_s": _s(s["max"]),
        "mean_s": _s(s["mean"]),
        # every community at its roles: from `since` to the last one's moment (None while any is unsettled)
        "all_s": round(max(ends) - since, 2) if ends and not unsettled else None,
    }


def _s(ms: float | None) -> float | None:
    return round(ms / 1000, 2) if ms is not None else None


def _dms(emulator: DiscordEmulator, guilds: list[Guild]) -> dict[str, Any]:
    stamps = sorted(
        datetime.fromisoformat(m["timestamp"]).timestamp()
        for u in {u for g in guilds for u in g.subscribed}
        for m in emulator.dms_to(u)
    )
    out: dict[str, Any] = {"sent": len(stamps), "subscribed": sum(len(g.subscribed) for g in guilds)}
    if len(stamps) >= 2:
        span = stamps[-1] - stamps[0]
        out["span_s"] = round(span, 1)
        out["per_second"] = round((len(stamps) - 1) / span, 2) if span > 0 else None
        per_10s = Counter(int((t - stamps[0]) // 10) for t in stamps)
        out["peak_per_second_10s"] = round(max(per_10s.values()) / 10, 2)
    out["opens"] = sum(emulator.dm_opens.values())
    return out


def _traffic(watch: Watch, until: float) -> dict[str, Any]:
    """Requests per second (all REST, and those under the global limit), the peak second, the invalid
    requests per minute (positive steps of the emulator's 10-minute window count, sampled each second)."""
    samples = [s for s in watch.samples if s["t"] <= until] or watch.samples
    last = samples[-1]
    steps = [
        (b["global_limited"] - a["global_limited"]) / max(b["t"] - a["t"], 1e-3) for a, b in itertools.pairwise(samples)
    ]
    peak = max(steps) if steps else None
    per_minute: Counter[int] = Counter()
    for a, b in itertools.pairwise(samples):
        if b["invalid_window"] > a["invalid_window"]:
            per_minute[int(b["t"] // 60)] += b["invalid_window"] - a["invalid_window"]
    minutes = int(last["t"] // 60) + 1
    invalid = sum(per_minute.values())
    return {
        "seconds": last["t"],
        "requests": last["requests"],
        "global_limited_requests": last["global_limited"],
        "requests_per_second": round(last["requests"] / last["t"], 1) if last["t"] else None,
        "global_limited_per_second": round(last["global_limited"] / last["t"], 1) if last["t"] else None,
        "peak_global_limited_per_second": round(peak, 1) if peak is not None else None,
        "rate_limited": last["rate_limited"],
        "role_changes": last["role_changes"],
        "invalid_requests": invalid,
        "invalid_per_minute": [per_minute.get(m, 0) for m in range(minutes)],
        "invalid_per_minute_mean": round(invalid / max(last["t"] / 60, 1.0), 1),
        "invalid_per_minute_max": max(per_minute.values(), default=0),
        "invalid_window_max": max(s["invalid_window"] for s in samples),
        "banned_ever": any(s["banned"] for s in samples),
    }


async def run(dsn: str, communities: int, workdir: Path, seed: int = 7) -> dict[str, Any]:
    rng = random.Random(seed)
    settings = load_settings(ROOT / "config" / "settings.yaml", {})
    out: dict[str, Any] = {
        "communities": communities,
        "members_per_community": MEMBERS,
        "thresholds": {"fedaykin": F, "naib": N, "at_risk": R, "waitlist_end": W},
        "backend": "postgres (no Scylla copy)",
        "settings": {
            "roles_debounce_s": settings["roles"]["debounce_seconds"],
            "roles_sweep_s": settings["roles"]["sweep_seconds"],
            "roles_concurrency": settings["roles"]["concurrency"],
            "requests_per_second": settings["discord"]["requests_per_second"],
            "dms_per_second": settings["alerts"]["dms_per_second"],
            "community_cache_s": settings["communities"]["cache_seconds"],
            "background_pool": settings["postgres"]["background_pool_max_size"],
        },
    }
    emulator = DiscordEmulator(shard_count=SHARDS)
    await emulator.start()
    bots = Bots()
    stop_commands = asyncio.Event()
    watch: Watch | None = None
    command_task: asyncio.Task[None] | None = None
    own_cpu = time.process_time()
    try:
        guilds = _emulated(emulator, communities, rng)
        out["refusing"] = sum(1 for g in guilds if g.refusing)
        out["subscribed"] = sum(len(g.subscribed) for g in guilds)
        t0 = time.perf_counter()
        async with AsyncConnectionPool(dsn, min_size=1, max_size=SEED_IN_FLIGHT, open=False) as pool:
            await pool.open(wait=True)
            await _seed(pool, guilds)
            out["seed_seconds"] = round(time.perf_counter() - t0, 1)
            log.info("fleet: %s communities seeded in %.1fs", communities, out["seed_seconds"])

            ports = [_free_port() for _ in range(SHARDS)]
            started = time.perf_counter()
            watch = Watch(emulator, guilds, started)
            for g in guilds:
                watch.track(g.gid, started)
            watch.start()
            window = botload.Window()
            await bots.start(dsn, emulator, workdir, ports)
            await emulator.wait_for_shards(set(range(SHARDS)), timeout=120)
            await emulator.wait_for_commands({"position", "threshold"}, timeout=120)
            out["connected_s"] = round(time.perf_counter() - started, 2)
            log.info("fleet: both shards connected after %.1fs", out["connected_s"])
            commands = Commands(emulator, guilds, random.Random(seed + 1))
            command_task = asyncio.get_running_loop().create_task(commands.run(stop_commands))

            limit = settle_limit(communities)
            await watch.wait(limit)
            out["settle"] = _settle_summary(watch, guilds, started)
            out["settle"]["limit_s"] = limit
            counts = await _db_counts(pool)
            out["settle"]["syncs_run"] = counts["syncs_run"]
            out["settle"]["syncs_with_changes"] = _log_synced(bots)
            log.info("fleet: settle %s", out["settle"])
            await _check_alive(bots)

            commands.window = "wave"
            wave_started = time.perf_counter()
            out["wave"], changed, order = await _wave(guilds, ports, pool, watch, rng)
            await watch.wait(limit)
            out["wave"] |= _settle_summary(watch, guilds, wave_started, only=changed)
            out["wave"]["limit_s"] = limit
            out["wave"]["p50_by_write_order_s"] = _by_write_order(watch, order, changed)
            wave_end = time.perf_counter() - started
            out["machine"] = window.result()
            after = await _db_counts(pool)
            out["wave"]["syncs_run"] = after["syncs_run"] - counts["syncs_run"]
            out["wave"]["syncs_with_changes"] = _log_synced(bots) - out["settle"]["syncs_with_changes"]
            log.info("fleet: wave %s", out["wave"])

            stop_commands.set()
            await command_task
            out["commands"] = commands.result()
            out["dm_wait_s"] = await _dm_quiet(emulator, guilds)
            out["alerts_due_at_end"] = (await _db_counts(pool))["alerts_due"]
            await watch.stop()
            out["wrong_at_end"] = sum(
                1 for g in guilds for u, roles in g.expected().items() if emulator.member_roles(g.gid, u) != roles
            )
            async with pool.connection() as conn, conn.cursor(row_factory=tuple_row) as cur:
                await cur.execute("SELECT count(*) FROM routing_latches")
                row = await cur.fetchone()
                out["latches"] = row[0] if row else None
        out["traffic"] = _traffic(watch, wave_end)
        out["traffic_after_wave"] = _traffic(watch, float("inf"))
        out["dms"] = _dms(emulator, guilds)
        out["bot_cpu_seconds"] = bots.cpu_seconds()
        out["bench_cpu_seconds"] = round(time.process_time() - own_cpu, 1)
        lag = summary(watch.lag_ms)
        out["emulator_loop_lag_ms"] = {k: lag[k] for k in ("p50", "p99", "max")}
    except Exception as exc:  # what was measured before stays in the result, with the error
        log.exception("fleet phase failed")
        out["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        stop_commands.set()
        if command_task is not None and not command_task.done():
            command_task.cancel()
        if watch is not None:
            with contextlib.suppress(Exception):
                await watch.stop()
        out["stop_seconds"] = await bots.stop()
        out["bot_logs"] = [str(p) for p in bots.logs]
        out["log_counts"] = bots.log_counts()
        out["banned"] = emulator.banned
        out["violations"] = emulator.violations[:20]
        out["violation_count"] = len(emulator.violations)
        out["unknown_routes"] = sorted(set(emulator.unknown_routes))[:10]
        await emulator.stop()
    return out


async def _check_alive(bots: Bots) -> None:
    dead = [i for i, code in enumerate(bots.exited()) if code is not None]
    if dead:
        raise RuntimeError(f"bot process(es) for shard(s) {dead} exited ({bots.exited()}): see {bots.logs}")


async def _wave(
    guilds: list[Guild], ports: list[int], pool: Any, watch: Watch, rng: random.Random
) -> tuple[dict[str, Any], set[int], list[int]]:
    """New scores for three members of every community through the doors, then every fifth community's
    fedaykin count raised; each community's clock starts at its own last write. Also returns the
    communities whose oracle the wave changed (the others are at their roles already) and the order in
    which the communities' last writes were done."""
    before = {g.gid: g.expected() for g in guilds}
    changing = {g.gid for g in guilds[::THRESHOLD_EVERY]}
    posted: list[float] = []
    errors: list[str] = []
    order: list[int] = []  # communities in the order their last write was done
    gate = asyncio.Semaphore(POSTS_IN_FLIGHT)
    started = time.perf_counter()

    async def post(http: aiohttp.ClientSession, k: int, g: Guild) -> None:
        items = []
        for user in rng.sample(g.users, MOVED):
            g.scores[user] = _new_score(g, rng)
            items.append(
                {"member": str(user), "board": "conviction", "value": str(g.scores[user]), "event_type": "token_hold"}
            )
        url = f"http://127.0.0.1:{ports[k % len(ports)]}/v1/guilds/{g.gid}/scores"
        async with gate:
            t0 = time.perf_counter()
            async with http.post(url, json=items, headers={"Authorization": f"Bearer {g.token}"}) as answer:
                body = await answer.text()
            posted.append((time.perf_counter() - t0) * 1000)
        if answer.status != 200:
            errors.append(f"{answer.status} {body[:200]}")
        if g.gid not in changing:
            watch.track(g.gid, time.perf_counter())
            order.append(g.gid)

    async with aiohttp.ClientSession() as http:
        await asyncio.gather(*(post(http, k, g) for k, g in enumerate(guilds)))
    posts_s = time.perf_counter() - started
    admin = CommunityWrites(pool)
    for g in guilds[::THRESHOLD_EVERY]:
        g.fedaykin = F + 1
        await admin.upsert_community(g.community())
        watch.track(g.gid, time.perf_counter())
        order.append(g.gid)
    changed = {g.gid for g in guilds if g.expected() != before[g.gid]}
    return (
        {
            "score_updates": MOVED * len(guilds),
            "posts": len(guilds),
            "post_ms": summary(posted),
            "post_errors": len(errors),
            "post_error_examples": errors[:3],
            "posts_s": round(posts_s, 2),
            "threshold_changes": len(changing),
            "writes_s": round(time.perf_counter() - started, 2),
            "changed": len(changed),
        },
        changed,
        order,
    )


async def _dm_quiet(emulator: DiscordEmulator, guilds: list[Guild]) -> float:
    """After the wave: wait for the alert DMs until none came for `DM_QUIET` s (at most `DM_WAIT`)."""
    users = {u for g in guilds for u in g.subscribed}
    started = time.perf_counter()
    count, changed = -1, started
    while time.perf_counter() - started < DM_WAIT:
        now = sum(len(emulator.dms_to(u)) for u in users)
        if now != count:
            count, changed = now, time.perf_counter()
        elif time.perf_counter() - changed >= DM_QUIET:
            break
        await asyncio.sleep(1.0)
    return round(time.perf_counter() - started, 1)
