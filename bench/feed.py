"""The score feed under load, and how soon roles follow it.

A bot process of its own (`bench.botproc --background`: the real nextcord client against the emulator,
the background work `sietch run` starts, the feed's HTTP door, the shipped settings) serves a community
whose roles are configured; the emulator holds the guild's roles (below the bot's own) and the members on
the first positions. This process then:

- **throughput**: posts batches of updates (activity points added to members all over the board, each with
  a transaction hash of its own) to the door for a fixed time with a few requests in flight, and counts the
  updates acknowledged (200: durable in PostgreSQL) per second, with each request's time;
- **update -> role**: moves one member from far down the board to the top with a single update, and times
  the acknowledgement, then the moment the emulator's guild state shows the member holding the naib role
  (the debounce window, the sync and Discord's member-role route), several times in turn.
"""

from __future__ import annotations

import asyncio
import socket
import time
from contextlib import AsyncExitStack
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp

from backends.protocol import Community
from backends.roles import RoleConfig
from bench import botload
from bench.data import Members
from bench.env import ROOT
from bench.measure import summary
from bot.app.app import App
from bot.app.settings import load_settings
from tests.emulator import DiscordEmulator

BATCH = 500
IN_FLIGHT = 4
MOVES = 8
MOVERS_FROM_RANK = 5000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _member(m: Members, i: int) -> str:
    return str(m.user_ids[i]) if m.user_ids[i] is not None else m.wallets[i]


async def run(dsn: str, c: Community, m: Members, workdir: Path, seconds: float = 20.0) -> dict[str, Any]:
    gid = c.community_id
    port = _free_port()
    flags = workdir / "flags-feed.yaml"
    flags.write_text(botload.flags_text("postgres"))
    env = botload.bot_env(dsn, flags, SIETCH_FEED_PORT=str(port), SIETCH_FEED_REQUESTS_PER_MINUTE="1000000")
    stack = AsyncExitStack()
    app = await stack.enter_async_context(
        App.open(load_settings(ROOT / "config" / "settings.yaml", env), migrate=False)
    )
    emulator = DiscordEmulator()
    await emulator.start()
    bot: botload.BotProcess | None = None
    try:
        emulator.add_guild(gid, name="Bench")
        emulator.give_bot_role(gid, emulator.add_role(gid, "Sietch", 10))
        roles = {
            kind: emulator.add_role(gid, kind, p)
            for kind, p in (("naib", 5), ("fedaykin", 4), ("at_risk", 3), ("waiting", 2))
        }
        start = min(MOVERS_FROM_RANK, len(m.ranked) // 2)  # far below the waiting pool
        movers = [m.ranked[start + 97 * k] for k in range(MOVES) if start + 97 * k < len(m.ranked)]
        for i in [*m.ranked[: c.waitlist_end + MOVES + 10], *movers]:
            if m.user_ids[i] is not None:
                emulator.add_member(gid, m.user_ids[i])
        await app.standing_store.put_role_config(
            RoleConfig(gid, roles["naib"], roles["fedaykin"], roles["at_risk"], roles["waiting"])
        )
        token = await app.ingest.new_token(gid)
        settings = load_settings(ROOT / "config" / "settings.yaml", env)
        bot = botload.BotProcess(emulator, env, workdir / "bot-feed.log", workdir / "bot-feed.json", background=True)
        top = m.user_ids[m.ranked[0]]
        await _until(lambda: roles["naib"] in emulator.member_roles(gid, top), 120, "the first role sync")
        url = f"http://127.0.0.1:{port}/v1/guilds/{gid}/scores"
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http:
            throughput = await _throughput(http, url, m, seconds)
            moves = await _moves(http, url, m, movers, emulator, gid, roles["naib"])
    finally:
        if bot is not None:
            bot.stop()
        await emulator.stop()
        await stack.aclose()
    return {
        "community_size": m.size,
        "shape": m.shape,
        "throughput": throughput,
        "update_to_role": moves,
        "debounce_seconds": settings["roles"]["debounce_seconds"],
        "role_changes": len(emulator.role_changes),
        "violations": emulator.violations[:5],
    }


async def _until(check: Any, timeout: float, what: str) -> float:
    started = time.perf_counter()
    while not check():
        if time.perf_counter() - started > timeout:
            raise TimeoutError(f"{what}: not within {timeout:.0f}s")
        await asyncio.sleep(0.02)
    return time.perf_counter()


async def _throughput(http: aiohttp.ClientSession, url: str, m: Members, seconds: float) -> dict[str, Any]:
    acked = 0
    request_ms: list[float] = []
    errors: list[str] = []
    n = 0
    end = time.perf_counter() + seconds

    async def worker(w: int) -> None:
        nonlocal acked, n
        while time.perf_counter() < end:
            n += 1
            batch = [
                {
                    "member": _member(m, m.ranked[(n * BATCH + k * 7919) % len(m.ranked)]),
                    "board": "activity",
                    "value": "1",
                    "mode": "add",
                    "event_type": "activity_bonus",
                    "tx_hash": f"0xbench{w}-{n}-{k}",
                }
                for k in range(BATCH)
            ]
            t0 = time.perf_counter()
            async with http.post(url, json=batch) as answer:
                body = await answer.text()
            if answer.status == 200:
                acked += BATCH
                request_ms.append((time.perf_counter() - t0) * 1000)
            else:
                errors.append(f"{answer.status} {body[:200]}")

    started = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(IN_FLIGHT)))
    elapsed = time.perf_counter() - started
    return {
        "batch": BATCH,
        "in_flight": IN_FLIGHT,
        "seconds": round(elapsed, 1),
        "acknowledged": acked,
        "per_second": round(acked / elapsed, 1),
        "request_ms": summary(request_ms),
        "errors": len(errors),
        "error_examples": errors[:3],
    }


async def _moves(
    http: aiohttp.ClientSession, url: str, m: Members, movers: list[int], emulator: DiscordEmulator, gid: int, naib: int
) -> dict[str, Any]:
    top = Decimal(m.conviction[m.ranked[0]]).scaleb(-2)
    acked_ms: list[float] = []
    role_s: list[float] = []
    for k, i in enumerate(movers):
        value = top + 1000 * (k + 1)  # above everyone, including the movers before
        item = {"member": _member(m, i), "board": "conviction", "value": str(value), "event_type": "token_hold"}
        t0 = time.perf_counter()
        async with http.post(url, json=[item]) as answer:
            assert answer.status == 200, await answer.text()
        acked_ms.append((time.perf_counter() - t0) * 1000)
        seen = await _until(lambda i=i: naib in emulator.member_roles(gid, m.user_ids[i]), 120, "the naib role")
        role_s.append(seen - t0)
    return {"moves": len(movers), "acknowledged_ms": summary(acked_ms), "role_seconds": summary(role_s)}
