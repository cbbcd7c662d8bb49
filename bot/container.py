"""The one place that shows how Sietch is assembled: settings → database → backends → service → bot."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from dependency_injector import containers, providers
from psycopg_pool import AsyncConnectionPool

from backends.postgres.admin import CommunityAdmin
from backends.postgres.backend import PostgresBackend
from backends.postgres.embedded import start_embedded
from bot.client import build_bot
from bot.dispatch import CommandDispatcher
from bot.metrics import Metrics
from bot.ratelimit import RateLimiter
from bot.router import Router
from bot.service import HotPathService

log = logging.getLogger(__name__)


async def postgres_dsn(dsn: str, data_dir: str) -> AsyncIterator[str]:
    """The configured DSN, or an embedded server's when none is configured."""
    if dsn:
        yield dsn
        return
    embedded_dsn, server = await asyncio.to_thread(start_embedded, Path(data_dir))
    try:
        yield embedded_dsn
    finally:
        await asyncio.to_thread(server.cleanup)


async def postgres_pool(
    dsn: str, min_size: int, max_size: int, timeout: float
) -> AsyncIterator[AsyncConnectionPool[Any]]:
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        dsn, min_size=min_size, max_size=max_size, timeout=timeout, open=False
    )
    await pool.open(wait=True, timeout=30)
    try:
        yield pool
    finally:
        await pool.close()


class Container(containers.DeclarativeContainer):
    config = providers.Configuration(strict=True)

    postgres_dsn = providers.Resource(postgres_dsn, dsn=config.postgres.dsn, data_dir=config.postgres.data_dir)
    postgres_pool = providers.Resource(
        postgres_pool,
        dsn=postgres_dsn,
        min_size=config.postgres.pool_min_size,
        max_size=config.postgres.pool_max_size,
        timeout=config.postgres.pool_timeout_seconds,
    )
    postgres_backend = providers.Singleton(PostgresBackend, pool=postgres_pool)
    community_admin = providers.Singleton(CommunityAdmin, pool=postgres_pool)

    postgres_service = providers.Singleton(
        HotPathService, backend=postgres_backend, eligibility_ttl_seconds=config.eligibility.cache_ttl_seconds
    )
    services = providers.Dict(postgres=postgres_service)

    router = providers.Singleton(Router, services=services, default_backend=config.routing.default_backend)
    limiter = providers.Singleton(RateLimiter)
    metrics = providers.Singleton(Metrics)
    dispatcher = providers.Singleton(
        CommandDispatcher,
        router=router,
        limiter=limiter,
        metrics=metrics,
        defer_after_seconds=config.discord.defer_after_seconds,
    )
    bot = providers.Factory(build_bot, dispatcher=dispatcher, guild_ready_timeout=config.discord.guild_ready_timeout)


def make_container(settings: dict[str, Any]) -> Container:
    container = Container()
    container.config.from_dict(settings)
    return container
