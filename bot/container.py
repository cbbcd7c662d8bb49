"""The one place that shows how Sietch is assembled: settings → databases → backends → services → bot."""

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
from backends.scylla.backend import ScyllaBackend
from backends.scylla.session import CqlSession, CqlSettings, connect
from bot.background import BackgroundWork
from bot.client import build_bot
from bot.dispatch import CommandDispatcher
from bot.metrics import Metrics
from bot.ratelimit import RateLimiter
from bot.recalculation import Recalculator
from bot.replication import ScoreMirror
from bot.router import Router
from bot.service import HotPathService
from bot.writes import ScoreWriter

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


def cql_settings(scylla: dict[str, Any]) -> CqlSettings | None:
    if not scylla["hosts"]:
        return None
    return CqlSettings(
        hosts=list(scylla["hosts"]),
        port=scylla["port"],
        keyspace=scylla["keyspace"],
        replication=dict(scylla["replication"]),
        consistency=scylla["consistency"],
        request_timeout_seconds=scylla["request_timeout_seconds"],
        local_dc=scylla["local_dc"],
    )


async def cql_session(settings: CqlSettings | None) -> AsyncIterator[CqlSession | None]:
    """A session to the configured cluster, or None when Scylla is not configured."""
    if settings is None:
        yield None
        return
    cluster, session = await asyncio.to_thread(connect, settings)
    try:
        yield CqlSession(session)
    finally:
        await asyncio.to_thread(cluster.shutdown)


def _if(present: object, build: Any, *args: Any, **kwargs: Any) -> Any:
    """`build(...)` when `present` is configured, else None: the Scylla half is optional."""
    return build(*args, **kwargs) if present is not None else None


def available(**services: HotPathService | None) -> dict[str, HotPathService]:
    return {name: service for name, service in services.items() if service is not None}


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
    cql_settings = providers.Callable(cql_settings, config.scylla)
    cql_session = providers.Resource(cql_session, cql_settings)
    scylla_backend = providers.Singleton(
        lambda cql, keyspace: _if(cql, ScyllaBackend, cql, keyspace), cql_session, config.scylla.keyspace
    )

    # Score events wait in the outbox only when a copy is there to receive them.
    dual_writes = providers.Callable(
        lambda mode, scylla: mode == "dual" and scylla is not None, config.writes.mode, scylla_backend
    )
    postgres_backend = providers.Singleton(PostgresBackend, pool=postgres_pool, outbox=dual_writes)
    community_admin = providers.Singleton(CommunityAdmin, pool=postgres_pool)
    mirror = providers.Singleton(
        lambda dual, source, target, interval: ScoreMirror(source, target, interval_seconds=interval) if dual else None,
        dual_writes,
        postgres_backend,
        scylla_backend,
        config.writes.retry_interval_seconds,
    )
    writer = providers.Singleton(ScoreWriter, source=postgres_backend, mirror=mirror)
    recalculator = providers.Singleton(
        lambda scylla, interval: _if(scylla, Recalculator, scylla, interval),
        scylla_backend,
        config.recalculation.interval_seconds,
    )
    background = providers.Singleton(
        BackgroundWork, mirror=mirror, recalculator=recalculator, drain_seconds=config.writes.drain_on_shutdown_seconds
    )

    postgres_service = providers.Singleton(
        HotPathService,
        backend=postgres_backend,
        eligibility_ttl_seconds=config.eligibility.cache_ttl_seconds,
        writer=writer,
    )
    scylla_service = providers.Singleton(
        lambda backend, ttl, writer: _if(backend, HotPathService, backend, eligibility_ttl_seconds=ttl, writer=writer),
        scylla_backend,
        config.eligibility.cache_ttl_seconds,
        writer,
    )
    services = providers.Callable(available, postgres=postgres_service, scylla=scylla_service)

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
