"""Bot-level throughput: many concurrent /threshold and /position interactions through the real bot.

The bot runs in a process of its own (`bench.botproc`: the production container, real cogs, the real
nextcord client); this process runs the Discord emulator (`tests.emulator`) and the load: it dispatches
a fixed number of interactions with a fixed number in flight and times each from dispatch to the
visible answer. Throughput is therefore that of one bot process.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import env as bench_env
from bench.env import ROOT, cql_port
from bench.measure import Sample, summary
from tests.emulator import DiscordEmulator

COMMANDS = {"position", "threshold", "leaderboard", "backends"}


def flags_text(backend: str) -> str:
    return f"default_backend: {backend}\ncommands:\n  position: {{}}\n  threshold: {{}}\n  leaderboard: {{}}\n"


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
    emulator = DiscordEmulator()
    await emulator.start()
    emulator.add_guild(guild_id, name="Bench")
    flags = workdir / f"flags-{backend}.yaml"
    flags.write_text(flags_text(backend))
    env = {
        **os.environ,
        "SIETCH_POSTGRES_DSN": dsn,
        "SIETCH_SCYLLA_HOSTS": "127.0.0.1",
        "SIETCH_SCYLLA_PORT": str(cql_port()),
        "SIETCH_SCYLLA_KEYSPACE": bench_env.KEYSPACE,
        "SIETCH_FLAGS_PATH": str(flags),
        "SIETCH_METRICS_PORT": "0",
        "SIETCH_DISCORD_GUILD_READY_TIMEOUT": "0.05",
        "SIETCH_LOGGING_LEVEL": "WARNING",
    }
    log = (workdir / f"bot-{backend}.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.botproc", emulator.base_url, emulator.token],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    spy: subprocess.Popen[bytes] | None = None
    try:
        await emulator.wait_for_commands(COMMANDS, timeout=60)
        users = {uid: emulator.member(uid, f"m{uid}") for uid in set(sample.user_ids)}
        members = [users[uid] for uid in sample.user_ids]
        # a short warm-up: connections opened, statements prepared, caches filled
        await _fire(emulator, guild_id, members, 100, 10)
        if profile_to is not None:
            py_spy = Path(sys.executable).with_name("py-spy")
            spy = subprocess.Popen(
                [
                    str(py_spy),
                    "record",
                    "--pid",
                    str(proc.pid),
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
            await asyncio.sleep(1.0)
        started = time.perf_counter()
        latencies, kinds, bad = await _fire(emulator, guild_id, members, total, concurrency)
        elapsed = time.perf_counter() - started
    finally:
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                spy.wait(timeout=30)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        await emulator.stop()
    by_kind = {k: summary([ms for ms, kk in zip(latencies, kinds, strict=True) if kk == k]) for k in set(kinds)}
    return {
        "backend": backend,
        "interactions": total,
        "concurrency": concurrency,
        "seconds": round(elapsed, 2),
        "per_second": round(total / elapsed, 1),
        "latency_ms": summary(latencies),
        "by_command": by_kind,
        "error_answers": bad,
        "violations": len(emulator.violations),
        "deferred": sum(1 for i in emulator.interactions.values() if i.deferred),
    }


async def _fire(
    emulator: DiscordEmulator, guild_id: int, members: list[Any], total: int, concurrency: int
) -> tuple[list[float], list[str], int]:
    """`total` interactions, alternating /position and /threshold, at most `concurrency` in flight."""
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    kinds: list[str] = []
    bad = 0

    async def one(i: int) -> None:
        nonlocal bad
        async with gate:
            name = "position" if i % 2 == 0 else "threshold"
            t0 = loop.time()
            inter = emulator.invoke(name, guild_id=guild_id, user=members[i % len(members)])
            message = await inter.done(timeout=30)
            latencies.append((loop.time() - t0) * 1000)
            kinds.append(name)
            if any(e.get("title") == "Error" for e in message.embeds):
                bad += 1

    await asyncio.gather(*(one(i) for i in range(total)))
    return latencies, kinds, bad
