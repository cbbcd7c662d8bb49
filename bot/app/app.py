"""The application for one run: `App.open(settings)` opens the databases and assembles the container
(`bot.app.container`); the App hands out its parts, typed, and `run()` is `sietch run`: the bot, its
background work and its HTTP doors, started together and stopped in order.

    async with App.open(settings) as app:
        await app.run(token)
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from dependency_injector import providers

from backends.copies import CopySource, Replica
from backends.postgres.community_writes import CommunityWrites
from backends.postgres.ingest import IngestDirectory
from backends.postgres.latches import LatchTable
from backends.postgres.standing import StandingStore
from backends.protocol import Backend
from backends.scylla.session import CqlSession
from bot.app.background import BackgroundWork
from bot.app.client import DiscordBot
from bot.app.container import Application
from bot.app.databases import Databases, Pool, open_databases
from bot.app.factories import Registered
from bot.app.metrics import Metrics
from bot.app.metrics_server import MetricsServer
from bot.discord.dispatch import CommandDispatcher
from bot.domain.service import HotPathService
from bot.feed.apply import ScoreFeed
from bot.feed.badges import BadgeFeed
from bot.feed.http import FeedServer
from bot.replication.rebuilds import SnapshotRebuilds
from bot.replication.relay import OutboxRelay
from bot.replication.writes import ScoreWriter
from bot.roles.alerts import AlertSender
from bot.roles.sync import RoleSync
from bot.routing.flag_store import FlagStore
from bot.routing.flags import FlagWatcher
from bot.routing.router import Router
from bot.routing.shadow import ShadowComparator

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_SECONDS = 10.0  # Discord lets a deferred answer take 15 minutes; a restart should not


def assemble(
    settings: dict[str, Any],
    *,
    pool: Pool | None = None,
    background_pool: Pool | None = None,
    cql: CqlSession | None = None,
    discord: bool | Any = True,
    backends: Mapping[str, Callable[[], Backend]] | None = None,
) -> Application:
    """The container on open databases (nothing is opened here); `background_pool` defaults to `pool`.

    `discord`: True, the bot is the Discord client (`sietch run`); False, no Discord side (one-shot
    commands: role changes are planned, never made); or a logged-in client to make them with.
    `backends`: more backends to register after the configured ones, by name.
    """
    container = Application()
    container.config.from_dict(settings)
    if pool is not None:
        container.pool.override(providers.Object(pool))
        container.background_pool.override(providers.Object(background_pool or pool))
    container.cql.override(providers.Object(cql))
    client = container.bot if discord is True else providers.Object(discord or None)
    container.discord_client.override(client)
    for name, build in (backends or {}).items():
        container.registry.add_kwargs({name: providers.Factory(Registered, configured=True, build=build)})
    return container


class App:
    def __init__(self, container: Application, databases: Databases | None = None) -> None:
        self.container = container
        self.databases = databases
        self._closing: asyncio.Future[None] | None = None

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        settings: dict[str, Any],
        *,
        discord: bool | Any = False,
        migrate: bool = True,
        backends: Mapping[str, Callable[[], Backend]] | None = None,
    ) -> AsyncIterator[App]:
        """Open every configured database (applying pending migrations unless `migrate=False`), assemble,
        and close it all on the way out."""
        async with AsyncExitStack() as stack:
            databases = await open_databases(settings, stack, migrate=migrate)
            container = assemble(settings, pool=databases.pool, cql=databases.cql, discord=discord, backends=backends)
            yield cls(container, databases)

    # --- the parts ------------------------------------------------------------------------------------------
    @property
    def metrics(self) -> Metrics:
        return self.container.metrics()

    @property
    def backends(self) -> dict[str, Backend]:
        return self.container.backends()

    @property
    def backend_names(self) -> list[str]:
        return self.container.backend_names()

    @property
    def replicas(self) -> dict[str, Replica]:
        return self.container.replicas()

    @property
    def services(self) -> dict[str, HotPathService]:
        return self.container.services()

    @property
    def copy_source(self) -> CopySource:
        return self.container.copy_source()

    @property
    def community_writes(self) -> CommunityWrites:
        return self.container.community_writes()

    @property
    def standing_store(self) -> StandingStore:
        return self.container.standing_store()

    @property
    def ingest(self) -> IngestDirectory:
        return self.container.ingest()

    @property
    def latch_table(self) -> LatchTable:
        return self.container.latch_table()

    @property
    def writer(self) -> ScoreWriter:
        return self.container.writer()

    @property
    def relay(self) -> OutboxRelay | None:
        return self.container.relay()

    @property
    def rebuilds(self) -> SnapshotRebuilds | None:
        return self.container.rebuilds()

    @property
    def flag_store(self) -> FlagStore:
        return self.container.flag_store()

    @property
    def flag_watcher(self) -> FlagWatcher:
        return self.container.flag_watcher()

    @property
    def router(self) -> Router:
        return self.container.router()

    @property
    def shadow(self) -> ShadowComparator:
        return self.container.shadow()

    @property
    def dispatcher(self) -> CommandDispatcher:
        return self.container.dispatcher()

    @property
    def bot(self) -> DiscordBot:
        return self.container.bot()

    @property
    def role_sync(self) -> RoleSync:
        return self.container.role_sync()

    @property
    def alert_sender(self) -> AlertSender:
        return self.container.alert_sender()

    @property
    def score_feed(self) -> ScoreFeed:
        return self.container.score_feed()

    @property
    def badge_feed(self) -> BadgeFeed:
        return self.container.badge_feed()

    @property
    def feed_server(self) -> FeedServer:
        return self.container.feed_server()

    @property
    def background(self) -> BackgroundWork:
        return self.container.background()

    @property
    def metrics_server(self) -> MetricsServer:
        return self.container.metrics_server()

    # --- its life --------------------------------------------------------------------------------------------
    async def run(self, token: str) -> None:
        """`sietch run`: serve until SIGTERM or SIGINT (SIGHUP re-reads the flag file); raises
        `nextcord.LoginFailure` when Discord refuses the token.

        On a signal the interactions under way are answered while the background work stops (role syncs
        finish what they started, the outbox drains), both while the bot can still talk to Discord; then
        the bot disconnects. Bounded by the longest of `SHUTDOWN_GRACE_SECONDS` and the background's own
        bounds (see docs/operating.md)."""
        bot = self.bot
        loop = asyncio.get_running_loop()

        async def shut_down() -> None:
            log.info("stopping: answering the interactions under way first, background work stopping meanwhile")
            await asyncio.gather(self.dispatcher.drain(SHUTDOWN_GRACE_SECONDS), self.close())
            await bot.close()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda: asyncio.ensure_future(shut_down()))
        loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(self.flag_store.reload()))
        await self.start_beside_the_bot()
        try:
            await bot.start(token)
        finally:
            if not bot.is_closed():
                await bot.close()
            await self.close()

    async def start_beside_the_bot(self) -> None:
        """What runs next to the bot: background work, the flag file's watcher, /metrics, the feed's door."""
        self.background.start()
        self.flag_watcher.start()
        await self.flag_watcher.check_now()  # an edit saved between loading the file and starting the watcher
        await self.metrics_server.start()
        await self.feed_server.start()

    async def close(self) -> None:
        """Stop what `start_beside_the_bot` started, the outbox drained last (the databases close with
        `open`). Once: later calls wait for the first."""
        if self._closing is None:
            self._closing = asyncio.ensure_future(self._close())
        await asyncio.shield(self._closing)

    async def _close(self) -> None:
        await self.flag_watcher.stop()
        await self.feed_server.stop()
        await self.metrics_server.stop()
        await self.background.stop()
        log.info("stopped")
