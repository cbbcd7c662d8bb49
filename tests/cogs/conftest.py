"""The real bot (production container, real cogs, real nextcord client) against the Discord emulator."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import nextcord
import pytest
from nextcord.ext import commands

from backends.members import MemberRow
from backends.postgres.community_writes import CommunityWrites
from backends.protocol import Community
from backends.scylla.session import CqlSettings
from bot.app.app import App
from bot.app.container import Application
from bot.app.settings import load_settings
from bot.replication.backfill import backfill
from tests.emulator import DiscordEmulator
from tests.emulator.models import Member
from tests.wiring import MEMORY

SETTINGS = Path(__file__).parents[2] / "config" / "settings.yaml"
COMMAND_NAMES = {"position", "threshold", "leaderboard", "naib", "backends"}
EPOCH = datetime(2024, 1, 1, tzinfo=UTC)


def flags_yaml(default: str, **commands: dict[str, Any]) -> str:
    """A flag file routing everything to `default`, with per-command settings (e.g. fallback=False)."""
    lines = [f"default_backend: {default}", "commands:"]
    for name in sorted(COMMAND_NAMES - {"backends"}):
        settings = commands.get(name, {})
        body = ", ".join(f"{k}: {str(v).lower() if isinstance(v, bool) else v}" for k, v in settings.items())
        lines.append(f"  {name}: {{{body}}}")
    return "\n".join(lines) + "\n"


@dataclass
class BotHarness:
    emulator: DiscordEmulator
    bot: commands.Bot
    container: Application
    guild_id: int
    backend: str
    flags_path: Path
    errors: list[BaseException] = field(default_factory=list)

    async def set_flags(self, text: str) -> None:
        """Write the flag file and reload it at once (the watcher is not running in these tests)."""
        self.flags_path.write_text(text)
        accepted, changes = await self.container.flag_store().reload()
        assert accepted, changes

    async def admin(self) -> CommunityWrites:
        return self.container.community_writes()

    async def configure(self, guild_id: int | None = None, **settings: Any) -> None:
        gid = guild_id or self.guild_id
        community = Community(gid, name=f"guild {gid}", **settings)
        await (await self.admin()).upsert_community(community)
        await self._copy(gid)

    async def _copy(self, guild_id: int) -> None:
        """What an admin does before routing a guild to Scylla: backfill it."""
        source = self.container.copy_source()
        for replica in self.container.replicas().values():
            await backfill(source, replica, guild_id)

    async def seed(
        self,
        convictions: Sequence[int | str],
        *,
        guild_id: int | None = None,
        first_user_id: int = 5000,
        activities: Sequence[int] = (),
    ) -> list[int]:
        """Members with Discord ids first_user_id, +1, ... joining a second apart; returns their user ids."""
        rows = [
            MemberRow(
                discord_user_id=first_user_id + i,
                nym=f"member{i}",
                joined_at=EPOCH + timedelta(seconds=i),
                conviction=Decimal(str(c)),
                activity=Decimal(activities[i]) if i < len(activities) else Decimal(0),
            )
            for i, c in enumerate(convictions)
        ]
        await (await self.admin()).import_members(guild_id or self.guild_id, rows)
        await self._copy(guild_id or self.guild_id)
        return [first_user_id + i for i in range(len(rows))]

    def user(self, user_id: int, name: str = "someone", permissions: int = 0) -> Member:
        return self.emulator.member(user_id, name, permissions=permissions)

    async def call(self, name: str, *path: str, user: Member, guild_id: int | None = None, **options: Any) -> Any:
        interaction = self.emulator.invoke(name, *path, guild_id=guild_id or self.guild_id, user=user, **options)
        return await interaction.done(timeout=5)


@pytest.fixture
async def emulator() -> AsyncIterator[DiscordEmulator]:
    emu = DiscordEmulator()
    await emu.start()
    try:
        yield emu
    finally:
        await emu.stop()


@asynccontextmanager
async def running_bot(
    emulator: DiscordEmulator,
    guild_id: int,
    flags_path: Path,
    overrides: dict[str, str],
    backend: str,
    *,
    memory: bool = False,
) -> AsyncIterator[BotHarness]:
    """The production container and bot, started against the emulator, closed and checked afterwards.

    `memory=True` registers the in-memory reference backend as a third backend.
    """
    settings = load_settings(SETTINGS, overrides)
    opened = App.open(settings, discord=True, migrate=False, backends=MEMORY if memory else None)
    async with opened as app, _started(app, emulator, guild_id, backend, flags_path) as h:
        yield h
    assert h.errors == [], f"command errors: {h.errors!r}"
    assert emulator.unknown_routes == [], f"routes the emulator does not know: {emulator.unknown_routes}"
    assert emulator.violations == [], f"Discord rules broken: {emulator.violations}"


@asynccontextmanager
async def _started(
    app: App, emulator: DiscordEmulator, guild_id: int, backend: str, flags_path: Path
) -> AsyncIterator[BotHarness]:
    bot = app.bot
    h = BotHarness(emulator, bot, app.container, guild_id, backend, flags_path)

    async def record(interaction: nextcord.Interaction[Any], error: BaseException) -> None:
        h.errors.append(error)

    bot.add_listener(record, "on_application_command_error")
    start = asyncio.create_task(bot.start(emulator.token))
    ready = asyncio.create_task(_ready(bot, emulator))
    done, _ = await asyncio.wait({start, ready}, timeout=20, return_when=asyncio.FIRST_COMPLETED)
    if ready not in done:
        ready.cancel()
        if start in done:
            start.result()  # raises the start-up failure
        raise AssertionError("the bot did not become ready against the emulator")
    try:
        yield h
        await app.shadow.idle()
    finally:
        await bot.close()
        await asyncio.wait({start}, timeout=5)


def bot_settings(postgres_dsn: str, flags_path: Path, node: CqlSettings | None) -> dict[str, str]:
    overrides = {
        "SIETCH_POSTGRES_DSN": postgres_dsn,
        "SIETCH_DISCORD_GUILD_READY_TIMEOUT": "0.05",
        "SIETCH_FLAGS_PATH": str(flags_path),
        "SIETCH_METRICS_PORT": "0",
    }
    if node is not None:
        overrides |= {
            "SIETCH_SCYLLA_HOSTS": ",".join(node.hosts),
            "SIETCH_SCYLLA_PORT": str(node.port),
            "SIETCH_SCYLLA_KEYSPACE": node.keyspace,
        }
    return overrides


@pytest.fixture
def guilds(emulator: DiscordEmulator, new_guild_id: int, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(nextcord.http.Route, "BASE", emulator.base_url)
    emulator.add_guild(new_guild_id, name="Arrakis")
    emulator.add_guild(new_guild_id + 1, name="Caladan")
    return new_guild_id


@pytest.fixture(params=["postgres", "scylla"])
async def harness(
    request: pytest.FixtureRequest, emulator: DiscordEmulator, postgres_dsn: str, guilds: int, tmp_path: Path
) -> AsyncIterator[BotHarness]:
    """The bot with every command routed to one backend (the parameter); data always enters PostgreSQL."""
    flags_path = tmp_path / "flags.yaml"
    flags_path.write_text(flags_yaml(request.param))
    node: CqlSettings | None = None
    if request.param == "scylla":
        node = request.getfixturevalue("cql_node")
        request.getfixturevalue("cql_session")  # the keyspace exists and is migrated
    async with running_bot(
        emulator, guilds, flags_path, bot_settings(postgres_dsn, flags_path, node), request.param
    ) as h:
        yield h
        served_by = {backend for _, backend, outcome in h.container.metrics().outcomes if outcome == "ok"}
        assert served_by <= {request.param}, f"commands were served by {served_by}, not {request.param}"


@pytest.fixture
async def both(
    emulator: DiscordEmulator,
    postgres_dsn: str,
    guilds: int,
    tmp_path: Path,
    cql_node: CqlSettings,
    cql_session: object,
) -> AsyncIterator[BotHarness]:
    """The bot with both backends configured; the flag file (PostgreSQL by default) decides."""
    async with flag_routed_bot(emulator, postgres_dsn, guilds, tmp_path, cql_node) as h:
        yield h


@pytest.fixture
async def three(
    emulator: DiscordEmulator,
    postgres_dsn: str,
    guilds: int,
    tmp_path: Path,
    cql_node: CqlSettings,
    cql_session: object,
) -> AsyncIterator[BotHarness]:
    """As `both`, with the in-memory reference backend registered as a third backend."""
    async with flag_routed_bot(emulator, postgres_dsn, guilds, tmp_path, cql_node, memory=True) as h:
        yield h


@asynccontextmanager
async def flag_routed_bot(
    emulator: DiscordEmulator,
    postgres_dsn: str,
    guilds: int,
    tmp_path: Path,
    node: CqlSettings,
    *,
    memory: bool = False,
) -> AsyncIterator[BotHarness]:
    flags_path = tmp_path / "flags.yaml"
    flags_path.write_text(flags_yaml("postgres"))
    settings = bot_settings(postgres_dsn, flags_path, node)
    async with running_bot(emulator, guilds, flags_path, settings, "postgres", memory=memory) as h:
        yield h


async def _ready(bot: commands.Bot, emulator: DiscordEmulator) -> None:
    await bot.wait_until_ready()
    await emulator.wait_for_commands(COMMAND_NAMES, timeout=15)
