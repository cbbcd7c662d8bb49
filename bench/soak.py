"""Flat over time: a soak of steady commands, feed writes and rebuilds on one community.

Deployed as the freshness phase is (bench/staleness.py), with the commands served by the same process:
one bot process (`bench.botproc --background`, the production container pointed at the Discord emulator)
answers the interactions, runs the background work `sietch run` starts (the outbox relay) and the score
feed's HTTP door, with `recalculation.in_bot: false`; a `sietch rebuilds` process beside it rebuilds the
snapshots of the boards the writes change, with the shipped settings.

For the whole soak, open loop (a slow answer never delays the next dispatch): members invoke /position,
/threshold and /leaderboard in turn at a steady rate (RATE), each timed from dispatch to the visible answer
(bench/botload.py's emulator and members); score updates go to the door at the same rate, one per request
with the community's feed token (bench/staleness.py's FeedDoor), each giving a member of the board a new
random score. Every SAMPLE_SECONDS the bot process's RSS (its process tree), TCP connections (split by
the remote port: PostgreSQL, CQL, the rest) and open file descriptors are read, the rebuild process's too.

The result is one row per minute (medians of that minute's samples; command p50/p99 of the commands
dispatched in it) and bench/flatness.py's verdict on the growth of RSS, connections and command p99.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import psutil
from psycopg.conninfo import conninfo_to_dict

from backends.protocol import Community
from bench import botload, flatness, staleness
from bench.data import Members
from bench.env import ROOT, cql_port
from bench.measure import Sample, summary
from bot.app.app import App
from bot.app.settings import load_settings
from tests.emulator import DiscordEmulator

log = logging.getLogger("bench.soak")

# Interactions per second, and as many score updates through the door: what the machine sustains beside a
# 1M board rebuilt back to back, so a slow minute shows as latency, not as a queue. At 30 a second each,
# with a rebuild taking one of the two cores and the CQL node the other, answers fell behind within
# minutes and the run measured its own backlog (answers past Discord's window, pool waits past 10 s).
RATE = 10.0
SAMPLE_SECONDS = 10.0
COMMANDS = (("position",), ("threshold",), ("leaderboard", "conviction"))  # name and sub-command
COMMAND_TIMEOUT = 30.0
WRITES_IN_FLIGHT = 256  # a bound for safety only, as in bench/staleness.py
MIB = 1024 * 1024


@dataclass
class Load:
    """What the soak's commands and writes got, each stamped with its dispatch time since the start."""

    started: float  # the event loop's clock
    commands: list[tuple[float, float]] = field(default_factory=list)  # (dispatched at, ms) answered
    outcomes: list[tuple[float, str]] = field(default_factory=list)  # (dispatched at, outcome) of every one
    writes: list[tuple[float, float]] = field(default_factory=list)  # (dispatched at, ms) acknowledged
    write_errors: list[tuple[float, str]] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    window: botload.Window | None = None  # CPU of the machine and of this process (the emulator, the load)
    machine: dict[str, Any] = field(default_factory=dict)

    def since(self) -> float:
        return asyncio.get_running_loop().time() - self.started

    def example(self, text: str) -> None:
        if len(self.examples) < 5:
            self.examples.append(text[:300])

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)


async def steady(rate: float, seconds: float, each: Callable[[int], None], t0: float) -> None:
    """`each(n)` at `t0 + n / rate` (the event loop's clock) for `seconds`: a fixed schedule, open loop (never
    waiting for an answer)."""
    loop = asyncio.get_running_loop()
    n = 0
    while (due := t0 + n / rate) < t0 + seconds:
        await asyncio.sleep(max(0.0, due - loop.time()))
        each(n)
        n += 1


async def _command(
    emulator: DiscordEmulator, load: Load, at: float, command: tuple[str, ...], guild_id: int, member: Any
) -> None:
    """`at`: when the schedule dispatched it, which decides its minute (the task may start a little later)."""
    t0 = time.perf_counter()
    name = " ".join(command)
    try:
        inter = emulator.invoke(*command, guild_id=guild_id, user=member)
        message = await inter.done(timeout=COMMAND_TIMEOUT)
    except TimeoutError as exc:
        load.outcomes.append((at, "unanswered"))
        load.example(f"/{name}: {exc}")
        return
    except Exception as exc:  # the command was not dispatched (not registered, the bot gone)
        load.outcomes.append((at, "not_dispatched"))
        load.example(f"/{name}: {type(exc).__name__}: {exc}")
        return
    load.commands.append((at, (time.perf_counter() - t0) * 1000))
    failed = any(e.get("title") == "Error" for e in message.embeds)
    load.outcomes.append((at, "error" if failed else "ok"))


async def _write(
    door: staleness.FeedDoor, gate: asyncio.Semaphore, load: Load, at: float, member: str, value: Decimal
) -> None:
    t0 = time.perf_counter()
    try:
        async with gate:
            await door.post(member, value)
    except Exception as exc:  # counted and reported; the soak goes on
        load.write_errors.append((at, f"{type(exc).__name__}: {exc}"[:300]))
        return
    load.writes.append((at, (time.perf_counter() - t0) * 1000))


class Probe:
    """RSS, CPU, connections and descriptors of a process and its children, every SAMPLE_SECONDS.

    `connections` counts what the process opened: TCP connections to the stores and the emulator, and its
    Unix sockets (PostgreSQL's when the DSN names a socket directory, as the embedded server's does, and
    the event loop's own pair). The connections the feed's clients open to the door (`feed_clients`) are
    counted apart: their number is the load generator's keep-alive pool, not the bot's."""

    def __init__(self, pid: int, ports: dict[int, str], door_port: int | None = None) -> None:
        self.process = psutil.Process(pid)
        self.ports = ports  # remote port -> name, for the connections' split
        self.door_port = door_port
        self.samples: list[dict[str, Any]] = []
        self.cpu: tuple[float, float] | None = None  # (at, CPU seconds) of the previous sample

    def tree(self) -> list[Any]:
        return [self.process, *self.process.children(recursive=True)]

    def sample(self, at: float) -> None:
        rss, fds, cpu = 0, 0, 0.0
        kinds: Counter[str] = Counter()
        try:
            for p in self.tree():
                rss += int(p.memory_info().rss)
                fds += int(p.num_fds())
                times = p.cpu_times()
                cpu += float(times.user) + float(times.system)
                for conn in p.net_connections(kind="tcp"):
                    if conn.raddr:  # the feed door's listening socket is not a connection
                        kinds[self._kind(conn)] += 1
                kinds["unix"] += len(p.net_connections(kind="unix"))
        except psutil.Error:  # the process is gone: the soak notices on its own
            return
        cores = None if self.cpu is None else (cpu - self.cpu[1]) / max(at - self.cpu[0], 1e-6)
        self.cpu = (at, cpu)
        opened = [*self.ports.values(), "unix", "other"]
        self.samples.append(
            {
                "at_s": round(at, 1),
                "rss_mib": round(rss / MIB, 1),
                "connections": sum(kinds[k] for k in opened),
                **{k: kinds.get(k, 0) for k in [*opened, "feed_clients"]},
                "fds": fds,
                "cores": None if cores is None else round(cores, 2),
            }
        )

    def _kind(self, conn: Any) -> str:
        if self.door_port is not None and int(conn.laddr.port) == self.door_port:
            return "feed_clients"
        return self.ports.get(int(conn.raddr.port), "other")


async def _probe_loop(probes: list[Probe], load: Load, stop: asyncio.Event) -> None:
    minute = -1  # a line in the log once a minute, for a soak watched as it runs
    while not stop.is_set():
        at = load.since()
        for probe in probes:
            probe.sample(at)
        if int(at // 60) != minute and probes[0].samples:
            minute = int(at // 60)
            answered = [ms for t, ms in load.commands if t >= at - 60]
            log.info(
                "soak at %.0f s: %s, p99 of the last minute's answers %s ms",
                at,
                probes[0].samples[-1],
                flatness.percentile(answered, 0.99),
            )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), SAMPLE_SECONDS)


def _minutes(load: Load, bot: Probe, rebuilds: Probe, minutes: int) -> list[dict[str, Any]]:
    """One row per minute: the samples' medians, the commands' and writes' counts and percentiles."""
    latencies = flatness.by_minute(load.commands, minutes)
    writes = flatness.by_minute(load.writes, minutes)
    outcomes: list[Counter[str]] = [Counter() for _ in range(minutes)]
    for at, outcome in load.outcomes:
        if 0 <= at < minutes * 60:
            outcomes[int(at // 60)][outcome] += 1
    write_errors = flatness.by_minute(((at, 1.0) for at, _ in load.write_errors), minutes)

    def sampled(probe: Probe, key: str) -> list[float | None]:
        grouped = flatness.by_minute(((s["at_s"], s[key]) for s in probe.samples), minutes)
        return [_round(flatness.median(g)) for g in grouped]

    keys = [k for k in (bot.samples[0] if bot.samples else {}) if k != "at_s"]
    columns = {k: sampled(bot, k) for k in keys}
    rebuild_rss = sampled(rebuilds, "rss_mib") if rebuilds.samples else [None] * minutes
    rebuild_conns = sampled(rebuilds, "connections") if rebuilds.samples else [None] * minutes
    rows = []
    for i in range(minutes):
        lat = latencies[i]
        rows.append(
            {
                "minute": i + 1,
                **{k: columns[k][i] for k in keys},
                "commands": sum(outcomes[i].values()),
                "answered": len(lat),
                "errors": outcomes[i]["error"],
                "unanswered": outcomes[i]["unanswered"] + outcomes[i]["not_dispatched"],
                "p50_ms": _round(flatness.percentile(lat, 0.50)),
                "p99_ms": _round(flatness.percentile(lat, 0.99)),
                "writes": len(writes[i]),
                "write_errors": len(write_errors[i]),
                "write_p99_ms": _round(flatness.percentile(writes[i], 0.99)),
                "rebuilds_rss_mib": rebuild_rss[i],
                "rebuilds_connections": rebuild_conns[i],
            }
        )
    return rows


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 2)


def _postgres_port(dsn: str) -> int:
    return int(conninfo_to_dict(dsn).get("port") or 5432)


async def run(
    dsn: str,
    c: Community,
    m: Members,
    sample: Sample,
    minutes: int,
    workdir: Path,
    backend: str = "scylla",
    seed: int = 13,
    rate: float = RATE,
) -> dict[str, Any]:
    gid = c.community_id
    emulator = DiscordEmulator()
    await emulator.start()
    emulator.add_guild(gid, name="Soak")
    flags = workdir / f"flags-soak-{backend}.yaml"
    flags.write_text(botload.flags_text(backend))
    env = staleness.door_env(dsn, flags, rate)
    settings = load_settings(ROOT / "config" / "settings.yaml", env)
    name = f"soak-{backend}"
    phase_wall = time.time()
    bot = botload.BotProcess(emulator, env, workdir / f"{name}.log", workdir / f"{name}.json", background=True)
    rebuild_log = workdir / f"{name}-rebuilds.log"
    with rebuild_log.open("w") as rebuild_out:
        rebuilder = staleness.start_rebuilds(env, rebuild_out)
        try:
            async with App.open(settings, migrate=False) as app:
                token = await app.ingest.new_token(gid)
            await emulator.wait_for_commands(botload.COMMANDS, timeout=60)
            ports = {_postgres_port(dsn): "postgres", cql_port(): "cql"}
            probes = [Probe(bot.proc.pid, ports, int(env["SIETCH_FEED_PORT"])), Probe(rebuilder.pid, ports)]
            members = botload.interaction_members(emulator, [botload.Target(gid, sample)])
            door_url = f"http://127.0.0.1:{env['SIETCH_FEED_PORT']}/v1/guilds/{gid}/scores"
            connector = aiohttp.TCPConnector(limit=WRITES_IN_FLIGHT)
            async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}, connector=connector) as http:
                door = staleness.FeedDoor(http, door_url)
                load = await _soak(emulator, door, members, m, probes, minutes * 60.0, gid, seed, rate)
        finally:
            stats = bot.stop()
            staleness.stop_processes(rebuilder)
            await emulator.stop()
    series = _minutes(load, probes[0], probes[1], minutes)
    outcomes = Counter(outcome for _, outcome in load.outcomes)
    rebuilt = staleness.built_snapshots(rebuild_log, gid, phase_wall)
    return {
        "backend": backend,
        "community_size": m.size,
        "shape": m.shape,
        "guild": gid,
        "minutes": minutes,
        "command_rate": rate,
        "commands_each": [" ".join(c) for c in COMMANDS],
        "feed_rate": rate,
        "sample_seconds": SAMPLE_SECONDS,
        "series": series,
        "verdict": flatness.verdict(series),
        "commands": {
            "sent": len(load.outcomes),
            "latency_ms": summary([ms for _, ms in load.commands]),
            **{k: outcomes.get(k, 0) for k in ("ok", "error", "unanswered", "not_dispatched")},
            "examples": load.examples,
        },
        "writes": {
            "sent": len(load.writes) + len(load.write_errors),
            "acknowledged": len(load.writes),
            "errors": len(load.write_errors),
            "error_examples": sorted({e for _, e in load.write_errors})[:3],
            "apply_ms": summary([ms for _, ms in load.writes]),
        },
        "rebuilds": {
            "count": len(rebuilt),
            "seconds": summary([r["seconds"] for r in rebuilt]) if rebuilt else None,
        },
        "violations": len(emulator.violations),
        "machine": load.machine,
        "answered_by_process": stats.get("answered"),
        "samples": {"bot": probes[0].samples, "rebuilds": probes[1].samples},
        "logs": [str(workdir / f"{name}.log"), str(rebuild_log)],
    }


async def _soak(
    emulator: DiscordEmulator,
    door: staleness.FeedDoor,
    members: list[tuple[int, Any]],
    m: Members,
    probes: list[Probe],
    seconds: float,
    gid: int,
    seed: int,
    rate: float,
) -> Load:
    """The steady commands and writes, sampled all along; the answers still due are waited for at the end."""
    rng = random.Random(seed)
    ranked = list(m.ranked)
    top = max(m.conviction[i] for i in ranked)
    gate = asyncio.Semaphore(WRITES_IN_FLIGHT)
    load = Load(asyncio.get_running_loop().time())

    def command(n: int) -> None:
        guild_id, member = members[n % len(members)]
        load.spawn(_command(emulator, load, n / rate, COMMANDS[n % len(COMMANDS)], guild_id, member))

    def write(n: int) -> None:
        i = rng.choice(ranked)
        member = str(m.user_ids[i]) if m.user_ids[i] is not None else m.wallets[i]
        load.spawn(_write(door, gate, load, n / rate, member, Decimal(rng.randint(1, top)).scaleb(-2)))

    load.window = botload.Window()
    stop = asyncio.Event()
    sampler = asyncio.create_task(_probe_loop(probes, load, stop))
    try:
        await asyncio.gather(steady(rate, seconds, command, load.started), steady(rate, seconds, write, load.started))
        load.machine = load.window.result()
        if load.tasks:
            await asyncio.wait(list(load.tasks), timeout=COMMAND_TIMEOUT + 5)
    finally:
        stop.set()
        await sampler
        left = list(load.tasks)
        for task in left:
            task.cancel()
        await asyncio.gather(*left, return_exceptions=True)
    log.info("soak of guild %s done: %d commands, %d writes", gid, len(load.outcomes), len(load.writes))
    return load
