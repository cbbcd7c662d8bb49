"""The CQL node stops mid-run: Scylla-routed commands are answered from PostgreSQL in time, the breaker
opens, and it closes again once the node is back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.cogs.conftest import BotHarness, bot_settings, flags_yaml, running_bot
from tests.cogs.test_routing import served_by
from tests.conftest import SpareNode
from tests.emulator import DiscordEmulator

ALL_ON_SCYLLA = flags_yaml(
    "postgres", position={"backend": "scylla"}, threshold={"backend": "scylla"}, leaderboard={"backend": "scylla"}
)


@pytest.fixture
async def on_spare_node(
    emulator: DiscordEmulator, postgres_dsn: str, guilds: int, tmp_path: Path, spare_cql_node: SpareNode
) -> AsyncIterator[BotHarness]:
    flags_path = tmp_path / "flags.yaml"
    flags_path.write_text(ALL_ON_SCYLLA)
    overrides = bot_settings(postgres_dsn, flags_path, spare_cql_node.settings) | {
        "SIETCH_BREAKER_FAILURES": "3",
        "SIETCH_BREAKER_COOL_DOWN_SECONDS": "1",
    }
    async with running_bot(emulator, guilds, flags_path, overrides, "scylla") as h:
        yield h


async def test_commands_fall_back_and_the_breaker_opens_and_recovers(
    on_spare_node: BotHarness, spare_cql_node: SpareNode
) -> None:
    h = on_spare_node
    await h.configure(rate_limit_per_minute=10_000)
    users = await h.seed([900 - i for i in range(30)])
    user = h.user(users[4])
    breaker = h.container.breakers()["scylla"]
    assert (await served_by(h, "position", user=user))[0] == "scylla"

    await asyncio.to_thread(spare_cql_node.run, "stop")
    try:
        for command, path in [("position", ()), ("threshold", ()), ("leaderboard", ("conviction",))] * 3:
            interaction = h.emulator.invoke(command, *path, guild_id=h.guild_id, user=user)
            message = await interaction.done()
            assert interaction.responded_at is not None and interaction.responded_at < 3
            assert message.embeds[0]["title"] != "Error", message.embeds
        assert breaker.state in ("open", "half_open")
        assert h.container.metrics().fallback_counts[("position", "scylla", "postgres")] >= 1
        backend, message = await served_by(h, "position", user=user)
        assert backend == "postgres" and message.embeds[0]["fields"][0]["value"] == "**#5**"
    finally:
        await asyncio.to_thread(spare_cql_node.run, "start")

    deadline = time.monotonic() + 60
    while True:
        backend, message = await served_by(h, "position", user=user)
        assert message.embeds[0]["fields"][0]["value"] == "**#5**"
        if backend == "scylla" and breaker.state == "closed":
            break
        assert time.monotonic() < deadline, f"breaker still {breaker.state} a minute after the node came back"
        await asyncio.sleep(0.5)
