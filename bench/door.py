"""The score feed's HTTP door alone: how many updates a second it makes durable, with nothing else in the
process (no background work, no copies, no Discord).

    .venv/bin/python -m bench.door --members 100000 --batches 500,5000 [--seconds 20] [--json out.json]

An embedded PostgreSQL of its own (`.run/bench-bulk/postgres`, a database per run, dropped after);
`sietch migrate` and `sietch import` of N members; then the door (`bot.feed.http.FeedServer` on the
application's own score feed) in this process, posted batches of activity points added to members all
over the board, each update with a tx hash of its own, by a few clients in flight for a fixed time. An
answer 200 means the batch is durable in PostgreSQL. `bench/feed.py` measures the same door inside a
whole bot process, background work included.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.bulk import FIRST_MEMBER, PG_DIR, imported
from bench.measure import summary
from bench.rss import postgres_database

IN_FLIGHT = 4


async def _post_for(dsn: str, guild: int, members: int, batch: int, seconds: float) -> dict[str, Any]:
    from aiohttp.test_utils import TestClient, TestServer
    from psycopg_pool import AsyncConnectionPool

    from bot.feed.http import FeedServer
    from tests.wiring import app

    async with AsyncConnectionPool(dsn, min_size=IN_FLIGHT, max_size=10, open=False) as pool:
        container = app(pool)
        token = await container.ingest().new_token(guild)
        door = FeedServer(container.score_feed(), container.ingest(), requests_per_minute=10**9)
        rng = random.Random(batch)
        sent = 0
        times: list[float] = []
        async with TestClient(TestServer(door.app())) as client:
            end = time.perf_counter() + seconds

            async def client_loop() -> None:
                nonlocal sent
                while time.perf_counter() < end:
                    body = []
                    for _ in range(batch):
                        sent += 1
                        member = str(FIRST_MEMBER + rng.randrange(members))
                        body.append(
                            {"member": member, "board": "activity", "value": "1", "mode": "add",
                             "event_type": "activity_bonus", "tx_hash": f"0x{batch:x}_{sent:x}"}
                        )  # fmt: skip
                    started = time.perf_counter()
                    headers = {"Authorization": f"Bearer {token}"}
                    async with client.post(f"/v1/guilds/{guild}/scores", json=body, headers=headers) as answer:
                        if answer.status != 200:
                            raise RuntimeError(f"the door answered {answer.status}: {await answer.text()}")
                    times.append(time.perf_counter() - started)

            began = time.perf_counter()
            await asyncio.gather(*(client_loop() for _ in range(IN_FLIGHT)))
            elapsed = time.perf_counter() - began
    return {
        "batch": batch,
        "in_flight": IN_FLIGHT,
        "seconds": round(elapsed, 1),
        "updates_acknowledged": len(times) * batch,
        "updates_per_second": round(len(times) * batch / elapsed),
        "request_ms": summary([t * 1000 for t in times]),
    }


def measure(members: int, batches: list[int], seconds: float) -> dict[str, Any]:
    guild = random.getrandbits(62) | (1 << 60)
    name = f"sietch_door_{os.getpid()}_{random.randrange(16**6):06x}"
    result: dict[str, Any] = {"members": members, "runs": []}
    with postgres_database(None, name, PG_DIR) as dsn, tempfile.TemporaryDirectory(prefix="sietch-door-") as tmp:
        imported(dsn, guild, members, Path(tmp))
        for batch in batches:
            result["runs"].append(asyncio.run(_post_for(dsn, guild, members, batch, seconds)))
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.door", description=__doc__.splitlines()[0])
    p.add_argument("--members", type=int, default=100_000)
    p.add_argument("--batches", default="500,5000", help="updates per request, comma-separated")
    p.add_argument("--seconds", type=float, default=20.0, help="how long each batch size is posted")
    p.add_argument("--json", type=Path, help="write the result here too")
    a = p.parse_args(argv)
    result = measure(a.members, [int(s) for s in a.batches.split(",") if s.strip()], a.seconds)
    text = json.dumps(result, indent=1)
    print(text)
    if a.json:
        a.json.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
