"""PostgreSQL stops and comes back under load: Scylla-served commands keep answering, PostgreSQL-served
ones give the clear error embed (or the other backend's answer where fallback is on), and the pool
reconnects without a bot restart."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from backends.postgres.embedded import start_embedded
from backends.postgres.migrations import migrate
from backends.scylla.session import CqlSettings
from bot.domain import messages
from tests.cogs.conftest import BotHarness, bot_settings, flags_yaml, running_bot
from tests.emulator import DiscordEmulator
from tests.fixtures.postgres_dirs import postgres_data_dir


class OwnPostgres:
    """An embedded PostgreSQL of this test's own, which it may stop and start again."""

    def __init__(self, data_dir: Path) -> None:
        self.dsn, self.server = start_embedded(data_dir)

    def _pid(self) -> int | None:
        pid_file = Path(self.server.pgdata) / "postmaster.pid"
        return int(pid_file.read_text().split()[0]) if pid_file.exists() else None

    def stop(self) -> None:
        pid = self._pid()
        assert pid is not None
        os.kill(pid, signal.SIGINT)  # PostgreSQL's fast shutdown: clients are cut off at once
        deadline = time.monotonic() + 30
        while Path(f"/proc/{pid}").exists():
            assert time.monotonic() < deadline, "PostgreSQL did not stop"
            time.sleep(0.05)

    def start(self) -> None:
        self.server.ensure_postgres_running()


@pytest.fixture
def own_postgres() -> Iterator[OwnPostgres]:
    """In this session's `.run/test-postgres/` directory (not under pytest's temp root: see there)."""
    with postgres_data_dir("own-pg") as data_dir:
        pg = OwnPostgres(data_dir)
        yield pg
        pg.server.cleanup()


@pytest.fixture
async def bot_on_own_postgres(
    emulator: DiscordEmulator,
    own_postgres: OwnPostgres,
    guilds: int,
    tmp_path: Path,
    cql_node: CqlSettings,
    cql_session: object,
) -> AsyncIterator[BotHarness]:
    await migrate(own_postgres.dsn)
    flags_path = tmp_path / "flags.yaml"
    flags_path.write_text(
        flags_yaml(
            "postgres",
            position={"backend": "scylla"},
            threshold={"backend": "postgres", "fallback": False},
            leaderboard={"backend": "postgres", "fallback": True},
        )
    )
    overrides = bot_settings(own_postgres.dsn, flags_path, cql_node) | {
        "SIETCH_POSTGRES_POOL_TIMEOUT_SECONDS": "0.5",
        "SIETCH_BREAKER_COOL_DOWN_SECONDS": "1",
    }
    async with running_bot(emulator, guilds, flags_path, overrides, "postgres") as h:
        yield h


async def ask(h: BotHarness, command: str, *path: str, user: Any) -> tuple[Any, Any]:
    interaction = h.emulator.invoke(command, *path, guild_id=h.guild_id, user=user)
    message = await interaction.done(timeout=5)
    assert interaction.responded_at is not None and interaction.responded_at < 3, f"/{command} answered late"
    if interaction.followups:
        message = interaction.followups[-1]
    return interaction, message


async def test_a_postgres_outage_under_load(bot_on_own_postgres: BotHarness, own_postgres: OwnPostgres) -> None:
    h = bot_on_own_postgres
    await h.configure(rate_limit_per_minute=100_000)
    users = await h.seed([800 - i for i in range(100)])
    member = h.user(users[9])
    _, before = await ask(h, "threshold", user=member)
    assert before.embeds[0]["title"] == "⛩️ The Threshold"

    await asyncio.to_thread(own_postgres.stop)
    try:
        for _ in range(4):  # rounds of concurrent interactions while the database is down
            results = await asyncio.gather(
                ask(h, "position", user=member),
                ask(h, "threshold", user=member),
                ask(h, "leaderboard", "conviction", user=member),
            )
            (_, position), (_, threshold), (_, board) = results
            assert position.embeds[0]["fields"][0]["value"] == "**#10**"  # Scylla serves it
            assert threshold.ephemeral and threshold.embeds[0]["description"] == messages.FAILED["threshold"]
            assert board.embeds[0]["title"] == "📊 Conviction Leaderboard"  # the fallback answered
    finally:
        await asyncio.to_thread(own_postgres.start)

    deadline = time.monotonic() + 30
    while True:  # the same bot, no restart: the pool replaces its dead connections
        _, threshold = await ask(h, "threshold", user=member)
        if threshold.embeds[0]["title"] == "⛩️ The Threshold":
            break
        assert time.monotonic() < deadline, "PostgreSQL-served commands did not recover"
        await asyncio.sleep(0.5)
    assert "Eligible: **69** members" in threshold.embeds[0]["fields"][1]["value"]
