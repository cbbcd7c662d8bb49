"""A large `sietch scores apply`: its pace at two file sizes, its peak memory, and how long it holds back the
community's other writes.

    .venv/bin/python -m bench.bulk --members 100000 --lines 100000,1000000 [--json out.json]

An embedded PostgreSQL of its own (`.run/bench-bulk/postgres`, a database per run, dropped after);
`sietch migrate` and `sietch import` of N members; then, per size, a JSON Lines file of that many updates
(members all over the board, `set` and `add` on both boards, a tx hash on a third of them) applied by
`sietch scores apply FILE` as a process of its own, as an admin runs it. While it runs, this process
writes one update to the same community every PROBE_EVERY seconds as the HTTP door does (held while the
file's bulk write has the community) and times each answer: the longest is how long the file held the
community's other writes back. The held ones are settled after, and counted by outcome. Lines per second
at each size show whether the pace is steady as files grow.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from bench.measure import summary
from bench.rss import postgres_database, run_measured, write_csv

ROOT = Path(__file__).resolve().parents[1]
PG_DIR = ROOT / ".run" / "bench-bulk" / "postgres"
PROBE_EVERY = 0.2
FIRST_MEMBER = 700_000_000_000_000_000  # bench/rss.py's first Discord id


def write_updates(path: Path, guild: int, members: int, lines: int, seed: int = 1) -> None:
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as out:
        for lo in range(0, lines, 10_000):
            block = []
            for i in range(lo, min(lo + 10_000, lines)):
                item: dict[str, Any] = {
                    "guild": guild,
                    "member": str(FIRST_MEMBER + rng.randrange(members)),
                    "board": rng.choice(("conviction", "activity")),
                    "value": f"{rng.randrange(1, 10**6)}.{rng.randrange(100):02d}",
                    "mode": rng.choice(("set", "add")),
                    "event_type": "token_hold",
                }
                if i % 3 == 0:
                    item["tx_hash"] = f"0x{seed:02x}{i:030x}"
                block.append(json.dumps(item) + "\n")
            out.write("".join(block))


async def _probe(dsn: str, guild: int, done: asyncio.Event) -> dict[str, Any]:
    """One update to the community every PROBE_EVERY seconds until `done`, as the HTTP door writes it (held
    while a bulk write has the community); each one's seconds until answered. Then the held ones are
    settled, as a bot process does, and counted by outcome."""
    from psycopg_pool import AsyncConnectionPool

    from backends.postgres.backend import PostgresBackend
    from backends.protocol import ScoreUpdate

    timings: list[float] = []
    held = 0
    async with AsyncConnectionPool(dsn, min_size=1, max_size=2, open=False) as pool:
        backend = PostgresBackend(pool)
        async with pool.connection() as conn:
            cur = await conn.execute(
                "SELECT profile_id FROM profiles WHERE community_id = %s ORDER BY discord_user_id LIMIT 50", (guild,)
            )
            ids = [r[0] for r in await cur.fetchall()]
        n = 0
        while not done.is_set():
            n += 1
            update = ScoreUpdate(ids[n % len(ids)], "activity", Decimal(n), "manual_adjustment")
            started = time.perf_counter()
            outcome = await backend.apply_score_requests(guild, [[update]], enqueue=False)
            timings.append(time.perf_counter() - started)
            held += not isinstance(outcome, int)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), PROBE_EVERY)
        settled_at = time.perf_counter()
        states: dict[str, int] = {}
        while settled := await backend.settle_held(guild, enqueue=False):
            for s in settled:
                states[s.state] = states.get(s.state, 0) + 1
    return {
        "other_writes_ms": summary([t * 1000 for t in timings]),
        "held": held,
        "held_settled": states,
        "settle_seconds": round(time.perf_counter() - settled_at, 3),
    }


async def _apply_probed(
    args: list[str], env: dict[str, str], logs: Path, name: str, dsn: str, guild: int
) -> dict[str, Any]:
    done = asyncio.Event()
    probe = asyncio.create_task(_probe(dsn, guild, done))
    try:
        result = await asyncio.to_thread(run_measured, args, env, logs, name)
    finally:
        done.set()
    result |= await probe
    return result


def imported(dsn: str, guild: int, members: int, logs: Path) -> dict[str, str]:
    """`sietch migrate`, then `sietch import` of `members` members into `guild`, as an admin runs them;
    the environment they ran in, for the commands after."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIETCH_") and k != "DISCORD_TOKEN"}
    env["SIETCH_POSTGRES_DSN"] = dsn
    write_csv(logs / "members.csv", members)
    for step, args in (
        ("migrate", ["migrate"]),
        ("import", ["import", str(guild), str(logs / "members.csv"), "--name", "bench"]),
    ):
        outcome = run_measured(args, env, logs, step)
        if outcome["exit"] != 0:
            raise RuntimeError(f"{step} failed: {outcome}")
    return env


def measure(members: int, sizes: list[int], workdir: Path | None = None) -> dict[str, Any]:
    guild = random.getrandbits(62) | (1 << 60)
    name = f"sietch_bulk_{os.getpid()}_{random.randrange(16**6):06x}"
    result: dict[str, Any] = {"members": members, "guild": guild, "runs": []}
    with (
        postgres_database(None, name, PG_DIR) as dsn,
        tempfile.TemporaryDirectory(prefix="sietch-bulk-", dir=workdir) as tmp,
    ):
        logs = Path(tmp)
        env = imported(dsn, guild, members, logs)
        for lines in sizes:
            path = logs / f"updates-{lines}.jsonl"
            write_updates(path, guild, members, lines, seed=len(result["runs"]) + 1)
            run = asyncio.run(_apply_probed(["scores", "apply", str(path)], env, logs, f"apply-{lines}", dsn, guild))
            run["lines"] = lines
            run["lines_per_second"] = round(lines / run["seconds"]) if run["exit"] == 0 else None
            result["runs"].append(run)
            path.unlink()
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.bulk", description=__doc__.splitlines()[0])
    p.add_argument("--members", type=int, default=100_000)
    p.add_argument("--lines", default="100000,1000000", help="file sizes, comma-separated")
    p.add_argument("--json", type=Path, help="write the result here too")
    a = p.parse_args(argv)
    result = measure(a.members, [int(s) for s in a.lines.split(",") if s.strip()])
    text = json.dumps(result, indent=1, default=str)
    print(text)
    if a.json:
        a.json.write_text(text)
    return 0 if all(r["exit"] == 0 for r in result["runs"]) else 1


if __name__ == "__main__":
    sys.exit(main())
