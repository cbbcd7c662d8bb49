"""Freshness of the Scylla answers under writes: acknowledged score update -> the Scylla answer shows it.

The application's freshness machinery runs as shipped, deployed as the README advises for large
communities: a bot process (`bench.botproc --background-only`, the production container with
`config/settings.yaml` and the benchmark's database and keyspace) runs the background work `sietch run`
starts (the outbox relay) and the score feed's HTTP door, with `recalculation.in_bot: false`; a
`sietch rebuilds` process beside it does the periodic snapshot rebuilds (default settings). This process
posts score updates to that door at a steady rate, one update per request with the community's feed token, as an indexer
would (`POST /v1/guilds/G/scores`: PostgreSQL, then the outbox, which the process's relay copies); an
update is acknowledged when the door answers 200 (durable in PostgreSQL). Each update moves one member to a new score
nobody else was given (up or down, never to zero). The Scylla service is then asked, with a fresh
`TenantContext` per read, for that member's rank until the answer carries the new score; the time from
acknowledgement to that read is the update's staleness. A seen answer is also checked for a rank
consistent with its score (the neighbours in the same snapshot order around it).

Polling: a read costs the node a few milliseconds of a core it shares with the writes and a rebuild of
the whole board, so the reads cannot keep every waiting update read closely (about 100 reads/s at 1M
under a rebuild: two per update at 50 updates/s). Every TIMED_EVERY-th
update is therefore timed closely: read again TIMED_REREAD_SECONDS after each read, before any other
update, its staleness is exact to within the time since its previous answered read was sent (the read
gap, reported). The rest are checked with the reads left over (leaving KEPT_FOR_TIMED readers free, each
read again REREAD_SECONDS later, the oldest first): every one must be seen, with a consistent rank, and
its time is an upper bound (reported apart). READERS readers run side by side; a slow read holds up only
its own reader.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import math
import random
import re
import signal
import socket
import subprocess
import sys
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Any
from uuid import UUID

import aiohttp

from backends.protocol import BackendError, Community, TenantContext
from bench import botload
from bench.cpu import CpuLedger, cql_node_pid, postgres_pid
from bench.data import Members
from bench.env import ROOT
from bench.measure import summary
from bot.app.app import App
from bot.app.settings import load_settings

log = logging.getLogger("bench.staleness")

# Score updates under way at once: a bound for safety only, far above the schedule's needs (50/s at a few
# seconds per acknowledgement at worst), so the writes keep their rate as an indexer's would however
# slowly the door answers.
IN_FLIGHT = 256
READERS = 32  # reads of waiting updates under way at once
KEPT_FOR_TIMED = 8  # readers the other updates leave free (about as many timed updates wait at a time)
TIMED_EVERY = 20  # every 20th update is timed closely (2.5/s of 50/s: 600 over a 240 s phase)
TIMED_REREAD_SECONDS = 0.25  # a timed update is read again this long after its previous read
REREAD_SECONDS = 1.0  # any other update is read again this long after its previous read at the soonest
BUILT = re.compile(
    r"^(?P<at>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+) .*snapshot built guild=(?P<guild>\d+) board=(?P<board>\w+)"
    r".*ranked=(?P<ranked>\d+) seconds=(?P<seconds>[\d.]+)"
)


@dataclass
class Update:
    n: int
    member: int  # index into Members
    profile_id: UUID
    old_cents: int
    new_cents: int
    dispatched: float
    acked: float | None = None
    seen: float | None = None
    apply_ms: float | None = None
    rank_ok: bool | None = None
    error: str | None = None

    @property
    def value(self) -> Decimal:
        return Decimal(self.new_cents).scaleb(-2)


class FeedDoor:
    """The score feed's HTTP door as an indexer uses it: one update per request."""

    def __init__(self, http: aiohttp.ClientSession, url: str) -> None:
        self.http = http
        self.url = url

    async def post(self, member: str, value: Decimal) -> None:
        item = {"member": member, "board": "conviction", "value": str(value), "event_type": "manual_adjustment"}
        async with self.http.post(self.url, json=[item]) as answer:
            if answer.status != 200:
                raise RuntimeError(f"the feed answered {answer.status}: {(await answer.text())[:200]}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def door_env(dsn: str, flags: Path, rate: float) -> dict[str, str]:
    """A bot process's environment with the score feed's door open on a free port (SIETCH_FEED_PORT) and
    the rebuilds left to a `sietch rebuilds` process, as the README advises for large communities."""
    env = botload.bot_env(dsn, flags)
    env["SIETCH_FEED_PORT"] = str(_free_port())
    env["SIETCH_FEED_REQUESTS_PER_MINUTE"] = str(int(rate * 60 * 4))  # the door's own limit is not measured
    env["SIETCH_RECALCULATION_IN_BOT"] = "false"
    return env


def start_rebuilds(env: dict[str, str], log_file: IO[str]) -> subprocess.Popen[bytes]:
    """`sietch rebuilds` with the bot's settings, logging each snapshot built with its seconds (`built_snapshots`)."""
    return subprocess.Popen(
        [sys.executable, "-m", "bot", "rebuilds"],
        cwd=ROOT,
        env=env | {"SIETCH_LOGGING_LEVEL": "INFO"},
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )


def stop_processes(*procs: subprocess.Popen[bytes]) -> None:
    """SIGTERM to all at once (they stop side by side), then a minute each before a kill."""
    for each in procs:
        each.send_signal(signal.SIGTERM)
    for each in procs:
        try:
            each.wait(timeout=60)
        except subprocess.TimeoutExpired:
            each.kill()
            each.wait()


def default_grace(seconds: float) -> float:
    """How long to keep looking after the last update: a rebuild interval and a large rebuild or two."""
    return max(90.0, 1.25 * seconds)


async def run(
    dsn: str,
    c: Community,
    m: Members,
    seconds: float,
    rate: float,
    workdir: Path,
    grace: float | None = None,
    seed: int = 11,
) -> dict[str, Any]:
    grace = default_grace(seconds) if grace is None else grace
    flags = workdir / "flags-staleness.yaml"
    flags.write_text(botload.flags_text("postgres"))
    env = door_env(dsn, flags, rate)
    settings = load_settings(ROOT / "config" / "settings.yaml", env)
    ready = workdir / "background.ready"
    ready.unlink(missing_ok=True)
    log_path = workdir / "background.log"
    rebuild_log = workdir / "rebuilds.log"
    phase_wall = time.time()
    with log_path.open("w") as out, rebuild_log.open("w") as rebuild_out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.botproc", "--background-only", "--ready", str(ready)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        rebuilder = start_rebuilds(env, rebuild_out)
        stack = AsyncExitStack()
        try:
            app = await stack.enter_async_context(App.open(settings, migrate=False))
            token = await app.ingest.new_token(c.community_id)
            await _wait_ready(proc, ready, log_path)
            services = app.services
            door = f"http://127.0.0.1:{env['SIETCH_FEED_PORT']}/v1/guilds/{c.community_id}/scores"
            connector = aiohttp.TCPConnector(limit=IN_FLIGHT)
            async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}, connector=connector) as http:
                writes = FeedDoor(http, door)
                processes: dict[str, int | None] = {"bot": proc.pid, "rebuilds": rebuilder.pid}
                cpu = CpuLedger(processes | {"cql_node": cql_node_pid(), "postgres": postgres_pid()}, own="benchmark")
                cpu.start()
                result = await _measure(writes, services["scylla"], c, m, seconds, rate, grace, seed)
                result["cores"] = cpu.stop()
        finally:
            stop_processes(proc, rebuilder)
            with contextlib.suppress(Exception):
                await stack.aclose()
    result["rebuilds"] = built_snapshots(rebuild_log, c.community_id, phase_wall)
    result["settings"] = {
        "recalculation": settings.get("recalculation"),
        "writes": {k: v for k, v in settings.get("writes", {}).items()},
        "scylla.snapshot_pointer_ttl_seconds": settings.get("scylla", {}).get("snapshot_pointer_ttl_seconds"),
    }
    result["community_size"] = m.size
    result["shape"] = m.shape
    result["guild"] = c.community_id
    result["log"] = str(log_path)
    return result


async def _wait_ready(proc: subprocess.Popen[bytes], ready: Path, log_path: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not ready.exists():
        if proc.poll() is not None:
            tail = log_path.read_text()[-2000:] if log_path.exists() else ""
            raise RuntimeError(f"the background process exited with {proc.returncode}:\n{tail}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"the background process was not up after {timeout:.0f}s")
        await asyncio.sleep(0.1)


async def _measure(
    writes: Any, reads: Any, c: Community, m: Members, seconds: float, rate: float, grace: float, seed: int
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    rng = random.Random(seed)
    gid = c.community_id
    ranked = list(m.ranked)
    busy: set[int] = set()  # members with an update not seen yet: one at a time per member
    used: set[int] = set()
    updates: list[Update] = []
    pending: dict[int, Update] = {}  # acknowledged, not seen yet, in acknowledgement order
    # heaps of pending updates that may be read now, oldest acknowledgement first: the timed ones, the rest
    due_timed: list[int] = []
    due_checked: list[int] = []
    resting: list[tuple[float, int]] = []  # heap of (time it may be read again, update) after a read
    gate = asyncio.Semaphore(IN_FLIGHT)
    poll: dict[str, Any] = {
        "reads": 0,
        "read_errors": 0,
        "read_error_example": None,
    }
    gaps: dict[bool, list[float]] = {True: [], False: []}  # timed or not: each seen, the time since its last read
    tasks: list[asyncio.Task[None]] = []
    write_window = [seconds]
    moves = {"up": 0, "down": 0}
    done_writing = asyncio.Event()

    def ctx() -> TenantContext:
        return TenantContext(gid).with_community(c)

    def timed(n: int) -> bool:
        return n % TIMED_EVERY == 0

    def make_due(n: int) -> None:
        heapq.heappush(due_timed if timed(n) else due_checked, n)

    def pick() -> Update | None:
        if len(busy) >= 0.9 * len(ranked):
            return None
        while (i := rng.choice(ranked)) in busy:
            pass
        old = m.conviction[i]
        up = rng.random() < 0.5
        new = max(1, round(old * (rng.uniform(1.1, 4.0) if up else rng.uniform(0.25, 0.9))))
        while new == old or new in used:
            new += 1
        moves["up" if new > old else "down"] += 1
        used.add(new)
        busy.add(i)
        m.conviction[i] = new
        return Update(len(updates), i, m.profile_ids[i], old, new, loop.time())

    async def apply(u: Update) -> None:
        try:
            member = str(m.user_ids[u.member]) if m.user_ids[u.member] is not None else m.wallets[u.member]
            await writes.post(member, u.value)
        except Exception as exc:  # counted and reported; the run goes on
            u.error = f"{type(exc).__name__}: {exc}"
            busy.discard(u.member)
            return
        finally:
            gate.release()
        u.acked = loop.time()
        u.apply_ms = (u.acked - u.dispatched) * 1000
        pending[u.n] = u
        make_due(u.n)

    async def write_loop() -> None:
        """One update every 1/rate s for `seconds`; when IN_FLIGHT are under way the next waits for one to
        finish (the schedule then falls behind, and the achieved rate says so)."""
        interval = 1.0 / rate
        t0 = loop.time()
        end = t0 + seconds
        n = 0
        while (due := t0 + n * interval) < end:
            await asyncio.sleep(max(0.0, due - loop.time()))
            await gate.acquire()
            if loop.time() >= end:
                gate.release()
                break
            u = pick()
            if u is None:
                gate.release()
                break
            u.dispatched = loop.time()
            updates.append(u)
            tasks.append(asyncio.create_task(apply(u)))
            n += 1
        write_window[0] = min(loop.time(), end) - t0
        await asyncio.gather(*tasks)
        done_writing.set()

    async def check(u: Update) -> bool | None:
        """Whether the answer carries the update (None: the read failed)."""
        read_ctx = ctx()
        try:
            entry = await reads.get_rank(read_ctx, u.profile_id, "conviction")
        except BackendError as exc:  # a read that failed (a timeout on a busy node): asked again next round
            poll["read_errors"] += 1
            poll["read_error_example"] = poll["read_error_example"] or f"{type(exc).__name__}: {exc}"[:300]
            return None
        now = loop.time()
        poll["reads"] += 1
        if entry is None or entry.score != u.value or u.n not in pending:
            return False
        u.seen = now
        del pending[u.n]
        busy.discard(u.member)
        # the rank agrees with the score: the same snapshot orders the neighbours around it
        try:
            above, me, below = await reads.backend.get_neighbours(read_ctx, "conviction", u.profile_id)
        except BackendError:
            poll["read_errors"] += 1
            return True
        u.rank_ok = (
            me is not None
            and me.rank == entry.rank
            and me.score == u.value
            and (above is None or above.score >= me.score)
            and (below is None or below.score <= me.score)
        )
        return True

    async def poll_loop() -> None:
        """Every reader takes the oldest due timed update, else (leaving KEPT_FOR_TIMED readers free) the
        oldest due other one; heaps keep each pick O(log n) however far behind the reads are."""
        last_sent: dict[int, float] = {}  # when the update's last read that answered was sent
        give_up = math.inf  # set when the writing is done
        checking = 0  # readers on an update that is not timed

        def take(heap: list[int]) -> Update | None:
            while heap:
                u = pending.get(heapq.heappop(heap))
                if u is not None:
                    return u
            return None

        def next_due() -> Update | None:
            now = loop.time()
            while resting and resting[0][0] <= now:
                make_due(heapq.heappop(resting)[1])
            u = take(due_timed)
            if u is None and checking < READERS - KEPT_FOR_TIMED:
                u = take(due_checked)
            return u

        async def reader() -> None:
            nonlocal give_up, checking
            while True:
                if done_writing.is_set():
                    give_up = min(give_up, loop.time() + grace)
                    if not pending or loop.time() > give_up:
                        return
                u = next_due()
                if u is None:
                    await asyncio.sleep(0.01)
                    continue
                is_timed = timed(u.n)
                checking += not is_timed
                # The update was not visible at some moment of its previous answered read: the time since
                # that read was sent bounds how late this one's time is.
                previous = last_sent.get(u.n, u.acked)
                sent = loop.time()
                try:
                    answered = await check(u)
                    if answered is not None:
                        last_sent[u.n] = sent
                    if answered and previous is not None and u.seen is not None:
                        gaps[is_timed].append(u.seen - previous)
                finally:
                    checking -= not is_timed
                    if u.n in pending:
                        again = TIMED_REREAD_SECONDS if is_timed else REREAD_SECONDS
                        heapq.heappush(resting, (loop.time() + again, u.n))

        await asyncio.gather(*(reader() for _ in range(READERS)))

    began = loop.time()
    loops = [asyncio.create_task(write_loop()), asyncio.create_task(poll_loop())]
    try:
        await asyncio.gather(*loops)
    finally:  # on a failure, nothing of this phase keeps running into the next one
        for task in [*loops, *tasks]:
            task.cancel()
        await asyncio.gather(*loops, *tasks, return_exceptions=True)
    ended = loop.time()
    acked = [u for u in updates if u.acked is not None]
    seen = [u for u in acked if u.seen is not None]
    unseen = [u for u in acked if u.seen is None]
    timed_acked = [u for u in acked if timed(u.n)]
    timed_seen = [u for u in timed_acked if u.seen is not None]

    def staleness(of: list[Update]) -> dict[str, float] | None:
        times = [u.seen - u.acked for u in of if u.acked is not None and u.seen is not None]
        return summary(times) if times else None

    return {
        "rate_target": rate,
        "seconds": seconds,
        "grace_seconds": grace,
        "elapsed_s": round(ended - began, 1),
        "updates": len(updates),
        "acknowledged": len(acked),
        "errors": len(updates) - len(acked),
        "error_examples": sorted({u.error for u in updates if u.error})[:3],
        "achieved_rate": round(len(updates) / write_window[0], 1) if write_window[0] > 0 else None,
        "acknowledged_rate": round(len(acked) / write_window[0], 1) if write_window[0] > 0 else None,
        "in_flight_limit": IN_FLIGHT,
        "moves": moves,
        "seen": len(seen),
        "not_seen": len(unseen),
        "not_seen_waited_s": summary([(ended - u.acked) for u in unseen if u.acked is not None]) if unseen else None,
        "staleness_s": staleness(timed_seen),
        "staleness_upper_s": staleness(seen),
        "timed": {
            "every": TIMED_EVERY,
            "reread_s": TIMED_REREAD_SECONDS,
            "acknowledged": len(timed_acked),
            "seen": len(timed_seen),
            "not_seen": len(timed_acked) - len(timed_seen),
            "apply_ms": summary([u.apply_ms for u in timed_acked if u.apply_ms is not None]) if timed_acked else None,
            "rank_inconsistent": sum(1 for u in timed_seen if u.rank_ok is False),
        },
        "reread_s": REREAD_SECONDS,
        "apply_ms": summary([u.apply_ms for u in acked if u.apply_ms is not None]),
        "rank_inconsistent": sum(1 for u in seen if u.rank_ok is False),
        "poll": poll
        | {
            "reads_per_s": round(poll["reads"] / (ended - began), 1) if ended > began else None,
            "read_gap_s": summary(gaps[True]) if gaps[True] else None,
            "read_gap_checked_s": summary(gaps[False]) if gaps[False] else None,
        },
    }


def built_snapshots(log_path: Path, guild: int, phase_wall: float) -> list[dict[str, Any]]:
    """The snapshots the rebuild process built for the guild, from its log."""
    out: list[dict[str, Any]] = []
    with contextlib.suppress(OSError):
        for line in log_path.read_text().splitlines():
            hit = BUILT.search(line)
            if hit is None or int(hit["guild"]) != guild:
                continue
            with contextlib.suppress(ValueError):
                finished = datetime.strptime(hit["at"], "%Y-%m-%d %H:%M:%S,%f").timestamp()
                out.append(
                    {
                        "board": hit["board"],
                        "ranked": int(hit["ranked"]),
                        "seconds": float(hit["seconds"]),
                        "finished_at_s": round(finished - phase_wall, 1),
                    }
                )
    return out
