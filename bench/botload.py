"""Bot-level throughput: many concurrent /threshold and /position interactions through the real bot.

The bot runs in processes of its own (`bench.botproc`: the production container, real cogs, the real
nextcord client); this process runs the Discord emulator (`tests.emulator`) and the load: it dispatches
a fixed number of interactions with a fixed number in flight and times each from dispatch to the
visible answer. `run_load` measures one bot process; `run_two` two processes, each one shard of a
two-shard bot (`discord.shard_count=2`, `discord.shard_ids=[0]` and `[1]`), with the interactions
spread over guilds on both shards.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from bench import env as bench_env
from bench.env import ROOT, cql_port
from bench.measure import Sample, summary
from tests.emulator import DiscordEmulator

COMMANDS = {"position", "threshold", "leaderboard", "backends"}
SHARDS = 2


@dataclass
class Target:
    """A guild the load goes to, and the members who send its interactions."""

    guild_id: int
    sample: Sample


def flags_text(backend: str) -> str:
    return f"default_backend: {backend}\ncommands:\n  position: {{}}\n  threshold: {{}}\n  leaderboard: {{}}\n"


def bot_env(dsn: str, flags: Path, **extra: str) -> dict[str, str]:
    """The environment of a bot process: the benchmark's database, keyspace and flag file."""
    return {
        **os.environ,
        "SIETCH_POSTGRES_DSN": dsn,
        "SIETCH_SCYLLA_HOSTS": "127.0.0.1",
        "SIETCH_SCYLLA_PORT": str(cql_port()),
        "SIETCH_SCYLLA_KEYSPACE": bench_env.KEYSPACE,
        "SIETCH_FLAGS_PATH": str(flags),
        "SIETCH_METRICS_PORT": "0",
        "SIETCH_DISCORD_GUILD_READY_TIMEOUT": "0.05",
        "SIETCH_LOGGING_LEVEL": "WARNING",
        **extra,
    }


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far (Linux /proc), None where unavailable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_ticks() -> tuple[int, int] | None:
    """(busy, total) CPU ticks of the whole machine so far (Linux /proc/stat), None where unavailable."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields[:8]) - idle, sum(fields[:8])


class Window:
    """CPU use over the timed part: the whole machine's, and this process's (the emulator and the load)."""

    def __init__(self) -> None:
        self.machine = machine_ticks()
        self.own = time.process_time()
        self.started = time.perf_counter()

    def result(self) -> dict[str, Any]:
        elapsed = time.perf_counter() - self.started
        end = machine_ticks()
        out: dict[str, Any] = {
            "emulator_cores": round((time.process_time() - self.own) / elapsed, 2) if elapsed else None,
            "machine_busy_cores": None,
        }
        if self.machine is not None and end is not None and end[1] > self.machine[1]:
            busy = (end[0] - self.machine[0]) / (end[1] - self.machine[1])
            out["machine_busy_cores"] = round(busy * (os.cpu_count() or 1), 2)
        return out


class BotProcess:
    """One `bench.botproc` subprocess and its log and stats files."""

    def __init__(
        self,
        emulator: DiscordEmulator,
        env: dict[str, str],
        log_path: Path,
        stats_path: Path,
        *,
        background: bool = False,
    ) -> None:
        """`background`: the process also runs the background work `sietch run` starts."""
        self.stats_path = stats_path
        stats_path.unlink(missing_ok=True)
        self.log: IO[str] = log_path.open("w")
        command = [sys.executable, "-m", "bench.botproc", emulator.base_url, emulator.token, "--stats", str(stats_path)]
        self.proc = subprocess.Popen(
            [*command, *(["--background"] if background else [])],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.cpu_start: float | None = None
        self.cpu_used: float | None = None

    def mark(self) -> None:
        self.cpu_start = cpu_seconds(self.proc.pid)

    def measure(self) -> None:
        end = cpu_seconds(self.proc.pid)
        self.cpu_used = end - self.cpu_start if end is not None and self.cpu_start is not None else None

    def stop(self) -> dict[str, Any]:
        """SIGTERM, wait, and what the process says it answered."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        try:
            stats: dict[str, Any] = json.loads(self.stats_path.read_text())
        except (OSError, ValueError):
            stats = {"answered": None, "by": []}
        return stats


def _py_spy(pid: int, profile_to: Path) -> subprocess.Popen[bytes]:
    py_spy = Path(sys.executable).with_name("py-spy")
    return subprocess.Popen(
        [
            str(py_spy),
            "record",
            "--pid",
            str(pid),
            "--format",
            "raw",
            "--rate",
            "200",
            "--output",
            str(profile_to),
            "--nonblocking",
            "--full-filenames",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _cpu_fields(cpu: float | None, elapsed: float, interactions: int) -> dict[str, Any]:
    if cpu is None:
        return {"cpu_seconds": None, "cores_used": None, "cpu_ms_per_interaction": None}
    return {
        "cpu_seconds": round(cpu, 2),
        "cores_used": round(cpu / elapsed, 2),
        "cpu_ms_per_interaction": round(cpu * 1000 / interactions, 2) if interactions else None,
    }


async def run_load(
    dsn: str,
    guild_id: int,
    sample: Sample,
    backend: str,
    total: int,
    concurrency: int,
    workdir: Path,
    profile_to: Path | None = None,
) -> dict[str, Any]:
    """One bot process, `total` interactions on one guild."""
    emulator = DiscordEmulator()
    await emulator.start()
    emulator.add_guild(guild_id, name="Bench")
    flags = workdir / f"flags-{backend}.yaml"
    flags.write_text(flags_text(backend))
    bot = BotProcess(emulator, bot_env(dsn, flags), workdir / f"bot-{backend}.log", workdir / f"bot-{backend}.json")
    spy: subprocess.Popen[bytes] | None = None
    targets = [Target(guild_id, sample)]
    try:
        await emulator.wait_for_commands(COMMANDS, timeout=60)
        members = interaction_members(emulator, targets)
        # a short warm-up: connections opened, statements prepared, caches filled
        await _fire(emulator, members, 100, 10)
        if profile_to is not None:
            spy = _py_spy(bot.proc.pid, profile_to)
            await asyncio.sleep(1.0)
        bot.mark()
        window = Window()
        started = time.perf_counter()
        fired = await _fire(emulator, members, total, concurrency)
        elapsed = time.perf_counter() - started
        cpu = window.result()
        bot.measure()
    finally:
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                spy.wait(timeout=30)
        stats = bot.stop()
        await emulator.stop()
    return {
        "backend": backend,
        "processes": 1,
        "interactions": total,
        "concurrency": concurrency,
        "seconds": round(elapsed, 2),
        "per_second": round(len(fired.latencies) / elapsed, 1),
        **_answers(fired, emulator),
        "answered_by_process": [stats.get("answered")],
        **cpu,
    } | _cpu_fields(bot.cpu_used, elapsed, len(fired.latencies))


def _answers(fired: Fired, emulator: DiscordEmulator) -> dict[str, Any]:
    return {
        "latency_ms": summary(fired.latencies),
        "by_command": _by_kind(fired.latencies, fired.kinds),
        "error_answers": fired.error_answers,
        "unanswered": fired.unanswered,
        "unanswered_examples": fired.unanswered_examples,
        "violations": len(emulator.violations),
        "deferred": sum(1 for i in emulator.interactions.values() if i.deferred),
    }


def shard_of(guild_id: int, shards: int = SHARDS) -> int:
    return (guild_id >> 22) % shards


def shard_settings_missing() -> str | None:
    """Why a two-shard bot cannot be configured yet, or None when the settings are there."""
    from bot.app.settings import load_settings

    discord = load_settings(ROOT / "config" / "settings.yaml", {}).get("discord", {})
    missing = [key for key in ("shard_count", "shard_ids") if key not in discord]
    if missing:
        return "config/settings.yaml has no " + " / ".join(f"discord.{k}" for k in missing) + " setting yet"
    return None


def _emulator_for_shards() -> DiscordEmulator:
    """The emulator, told the shard count where its constructor takes one."""
    params = inspect.signature(DiscordEmulator).parameters
    return DiscordEmulator(shard_count=SHARDS) if "shard_count" in params else DiscordEmulator()


async def run_two(
    dsn: str, targets: list[Target], backend: str, total: int, concurrency: int, workdir: Path
) -> dict[str, Any]:
    """Two bot processes, shard 0 and shard 1 of a two-shard bot; `total` interactions spread over the
    guilds of `targets` (which must cover both shards). Returns {"not_run": reason} when the bot or the
    emulator cannot run shards yet."""
    reason = shard_settings_missing()
    if reason:
        return {"not_run": reason}
    shards = {shard_of(t.guild_id) for t in targets}
    if shards != set(range(SHARDS)):
        return {"not_run": f"the guilds measured cover shards {sorted(shards)} only"}
    emulator = _emulator_for_shards()
    await emulator.start()
    for t in targets:
        emulator.add_guild(t.guild_id, name=f"Bench shard {shard_of(t.guild_id)}")
    flags = workdir / f"flags-{backend}.yaml"
    flags.write_text(flags_text(backend))
    bots: list[BotProcess] = []
    stats: list[dict[str, Any]] = []
    try:
        for shard in range(SHARDS):
            env = bot_env(dsn, flags, SIETCH_DISCORD_SHARD_COUNT=str(SHARDS), SIETCH_DISCORD_SHARD_IDS=str(shard))
            name = f"bot2-{backend}-shard{shard}"
            bots.append(BotProcess(emulator, env, workdir / f"{name}.log", workdir / f"{name}.json"))
        await emulator.wait_for_commands(COMMANDS, timeout=60)
        if not await _identified_shards(emulator, timeout=60):
            return {"not_run": "the bot processes did not IDENTIFY with a shard: the bot does not shard yet"}
        members = interaction_members(emulator, targets)
        warm = await _fire(emulator, members, 50 * len(targets), 10, timeout=15)
        silent = [t.guild_id for t in targets if not warm.per_guild.get(t.guild_id)]
        if silent:
            return {
                "not_run": f"no interaction of guild(s) {silent} was answered: the emulator does not route by shard yet"
            }
        for b in bots:
            b.mark()
        window = Window()
        started = time.perf_counter()
        fired = await _fire(emulator, members, total, concurrency)
        elapsed = time.perf_counter() - started
        cpu = window.result()
        for b in bots:
            b.measure()
    finally:
        stats = [b.stop() for b in bots]
        await emulator.stop()
    answered = [s.get("answered") for s in stats]
    timed = [sum(n for g, n in fired.per_guild.items() if shard_of(g) == shard) for shard in range(SHARDS)]
    result: dict[str, Any] = {
        "backend": backend,
        "processes": SHARDS,
        "interactions": total,
        "concurrency": concurrency,
        "guilds": {
            str(t.guild_id): {"shard": shard_of(t.guild_id), "answered": fired.per_guild.get(t.guild_id, 0)}
            for t in targets
        },
        "seconds": round(elapsed, 2),
        "per_second": round(len(fired.latencies) / elapsed, 1),
        **_answers(fired, emulator),
        **cpu,
        "answered_by_process": answered,
        # the timed answers of each process: those of the guilds on its shard (each process also reports
        # every command it answered, the warm-up included, as `answered_total`)
        "per_process": [
            {
                "shard": shard,
                "answered": timed[shard],
                "answered_total": answered[shard],
                "per_second": _rate(timed[shard], elapsed),
            }
            | _cpu_fields(b.cpu_used, elapsed, timed[shard])
            for shard, b in enumerate(bots)
        ],
    }
    counted = [a for a in answered if a is not None]
    if len(counted) == SHARDS and min(counted) < 0.1 * max(counted):
        # the emulator sent (nearly) everything to one connection: not a two-process measurement
        result["not_run"] = (
            f"the interactions reached one process only (answered per process: {answered}): "
            "the emulator does not route guild events by shard yet"
        )
    return result


def _rate(answered: int | None, elapsed: float) -> float | None:
    return round(answered / elapsed, 1) if answered is not None and elapsed else None


async def _identified_shards(emulator: DiscordEmulator, timeout: float) -> bool:
    """Both shards sent IDENTIFY with `shard: [id, count]`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = {tuple(d["shard"]) for d in emulator.identifies if isinstance(d.get("shard"), list)}
        if {(i, SHARDS) for i in range(SHARDS)} <= seen:
            await asyncio.sleep(0.5)  # READY and GUILD_CREATE for each shard
            return True
        if len(emulator.identifies) >= SHARDS and not seen:
            return False
        await asyncio.sleep(0.1)
    return False


def interaction_members(emulator: DiscordEmulator, targets: list[Target]) -> list[tuple[int, Any]]:
    """(guild, member) pairs, the targets interleaved: consecutive interactions go to different guilds."""
    users: dict[int, Any] = {}
    per_target: list[list[tuple[int, Any]]] = []
    for t in targets:
        pairs = []
        for uid in t.sample.user_ids:
            if uid not in users:
                users[uid] = emulator.member(uid, f"m{uid}")
            pairs.append((t.guild_id, users[uid]))
        per_target.append(pairs)
    longest = max(len(p) for p in per_target)
    return [p[i % len(p)] for i in range(longest) for p in per_target]


def _by_kind(latencies: list[float], kinds: list[str]) -> dict[str, Any]:
    return {k: summary([ms for ms, kk in zip(latencies, kinds, strict=True) if kk == k]) for k in set(kinds)}


@dataclass
class Fired:
    """What a burst of interactions got: latencies of the answered ones, and those never answered."""

    latencies: list[float]
    kinds: list[str]
    error_answers: int
    per_guild: dict[int, int]  # answered, by guild
    unanswered: int
    unanswered_examples: list[str]


async def _fire(
    emulator: DiscordEmulator, members: list[tuple[int, Any]], total: int, concurrency: int, timeout: float = 30
) -> Fired:
    """`total` interactions, /position and /threshold alternating per guild, at most `concurrency` in flight.

    An interaction with no visible answer within `timeout` (Discord refused a late first response, or the
    bot never answered) is counted as unanswered, with the emulator's reason."""
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(concurrency)
    out = Fired([], [], 0, {}, 0, [])
    guilds = len({g for g, _ in members})

    async def one(i: int) -> None:
        async with gate:
            guild_id, member = members[i % len(members)]
            name = "position" if (i // guilds) % 2 == 0 else "threshold"
            t0 = loop.time()
            inter = emulator.invoke(name, guild_id=guild_id, user=member)
            try:
                message = await inter.done(timeout=timeout)
            except TimeoutError as exc:
                out.unanswered += 1
                if len(out.unanswered_examples) < 3:
                    out.unanswered_examples.append(str(exc)[:300])
                return
            out.latencies.append((loop.time() - t0) * 1000)
            out.kinds.append(name)
            out.per_guild[guild_id] = out.per_guild.get(guild_id, 0) + 1
            if any(e.get("title") == "Error" for e in message.embeds):
                out.error_answers += 1

    await asyncio.gather(*(one(i) for i in range(total)))
    return out
