"""A burst bigger than the connection pool while the database is held up: every interaction is answered
with its data (deferred where it had to wait), none with an error, while PostgreSQL is the only backend
that can answer."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.cogs.conftest import bot_settings, flags_yaml, running_bot
from tests.cogs.test_failures import blocked_communities
from tests.emulator import DiscordEmulator

BURST = 300


async def test_a_burst_through_a_small_pool_is_answered_not_failed(
    emulator: DiscordEmulator, postgres_dsn: str, guilds: int, tmp_path: Path
) -> None:
    flags_path = tmp_path / "flags.yaml"
    flags_path.write_text(flags_yaml("postgres"))
    settings = bot_settings(postgres_dsn, flags_path, None) | {"SIETCH_POSTGRES_POOL_MAX_SIZE": "4"}
    async with running_bot(emulator, guilds, flags_path, settings, "postgres") as h:
        await h.configure(rate_limit_per_minute=1000)
        users = await h.seed([1000 - i for i in range(BURST)])
        lock = await blocked_communities(postgres_dsn)  # every read waits 2.5 s: the pool fills, the burst queues
        interactions = [
            emulator.invoke(command, guild_id=guilds, user=h.user(users[i]))
            for i in range(BURST)
            for command in (("position", "threshold")[i % 2],)
        ]
        await asyncio.sleep(2.5)  # the slowness under test
        await lock.rollback()
        await lock.close()
        messages = await asyncio.gather(*(i.done(timeout=60) for i in interactions))
        outcomes = h.container.metrics().outcomes
        assert sum(n for (_, _, outcome), n in outcomes.items() if outcome == "error") == 0, outcomes
        titles = {m.embeds[0]["title"] for m in messages}
        assert titles == {"📍 Your Position", "⛩️ The Threshold"}, titles
        assert emulator.violations == []
        assert sum(1 for i in interactions if i.deferred) > BURST // 2  # they waited, and said so in time
