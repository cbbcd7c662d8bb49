"""The one place that shows how Sietch is assembled: settings → databases → backends → services → bot."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from dependency_injector import containers, providers
from psycopg_pool import AsyncConnectionPool

from backends.postgres.backend import PostgresBackend
from backends.postgres.community_writes import CommunityAdmin
from backends.postgres.embedded import start_embedded
from backends.postgres.latches import LatchTable
from backends.scylla.backend import ScyllaBackend
from backends.scylla.session import CqlSession, CqlSettings, connect
from bot.app.background import BackgroundWork
from bot.app.client import build_bot
from bot.app.metrics import Metrics
from bot.app.metrics_server import MetricsServer
from bot.discord.dispatch import CommandDispatcher
from bot.discord.ratelimit import RateLimiter
from bot.domain.service import HotPathService
from bot.replication.rebuilds import Recalculator
from bot.replication.relay import ScoreMirror
from bot.replication.writes import ScoreWriter
from bot.routing.breaker import CircuitBreaker
from bot.routing.flag_store import FlagStore
from bot.routing.flags import FlagWatcher
from bot.routing.readiness import Readiness
from bot.routing.rollback import RollbackMonitor
from bot.routing.router import COMMANDS, Router
from bot.routing.shadow import ShadowComparator

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
    # Each connection is checked when taken, so after a database restart the pool replaces dead ones
    # instead of handing them out.
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        timeout=timeout,
        open=False,
        check=AsyncConnectionPool.check_connection,
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
        lambda cql, keyspace, ttl: _if(cql, ScyllaBackend, cql, keyspace, pointer_ttl=ttl),
        cql_session,
        config.scylla.keyspace,
        config.scylla.snapshot_pointer_ttl_seconds,
    )

    # Score events wait in the outbox only when a copy is there to receive them.
    dual_writes = providers.Callable(
        lambda mode, scylla: mode == "dual" and scylla is not None, config.writes.mode, scylla_backend
    )
    postgres_backend = providers.Singleton(PostgresBackend, pool=postgres_pool, outbox=dual_writes)
    community_admin = providers.Singleton(CommunityAdmin, pool=postgres_pool)
    metrics = providers.Singleton(Metrics)

    # Backends that exist in this process: PostgreSQL always, Scylla when configured.
    backend_names = providers.Callable(lambda scylla: ["postgres", *(["scylla"] if scylla else [])], scylla_backend)
    flag_store = providers.Singleton(
        lambda path, names, default, metrics: FlagStore(
            Path(path), backends=names, commands=COMMANDS, fallback_backend=default, on_reload=metrics.reload
        ),
        config.flags.path,
        backend_names,
        config.routing.default_backend,
        metrics,
    )
    flag_watcher = providers.Singleton(
        lambda store, interval: FlagWatcher(store.path, store.reload, interval=interval),
        flag_store,
        config.flags.poll_seconds,
    )
    mirror = providers.Singleton(
        lambda dual, source, target, interval: ScoreMirror(source, target, interval_seconds=interval) if dual else None,
        dual_writes,
        postgres_backend,
        scylla_backend,
        config.writes.retry_interval_seconds,
    )
    writer = providers.Singleton(
        lambda source, mirror, store, default: ScoreWriter(source, mirror, lambda: store.current.writes or default),
        postgres_backend,
        mirror,
        flag_store,
        config.writes.mode,
    )
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
        community_ttl_seconds=config.communities.cache_seconds,
    )
    scylla_service = providers.Singleton(
        lambda backend, ttl, writer, community_ttl: _if(
            backend,
            HotPathService,
            backend,
            eligibility_ttl_seconds=ttl,
            writer=writer,
            community_ttl_seconds=community_ttl,
        ),
        scylla_backend,
        config.eligibility.cache_ttl_seconds,
        writer,
        config.communities.cache_seconds,
    )
    services = providers.Callable(available, postgres=postgres_service, scylla=scylla_service)

    breakers = providers.Singleton(
        lambda names, breaker, metrics: {
            name: CircuitBreaker(
                name,
                failures=breaker["failures"],
                window_seconds=breaker["window_seconds"],
                cool_down_seconds=breaker["cool_down_seconds"],
                on_change=metrics.breaker,
            )
            for name in names
        },
        backend_names,
        config.breaker,
        metrics,
    )
    rollback = providers.Singleton(
        lambda source, store: RollbackMonitor(LatchTable(source), lambda: store.current.auto_rollback),
        postgres_backend,
        flag_store,
    )
    readiness = providers.Singleton(
        lambda source, scylla, lag: _if(scylla, Readiness, source, scylla, max_lag_seconds=lag),
        postgres_backend,
        scylla_backend,
        config.readiness.max_lag_seconds,
    )
    router = providers.Singleton(
        Router, services=services, flags=flag_store, breakers=breakers, rollback=rollback, readiness=readiness
    )
    limiter = providers.Singleton(RateLimiter)
    shadow = providers.Singleton(
        ShadowComparator, router=router, metrics=metrics, concurrency=config.shadow.concurrency
    )
    dispatcher = providers.Singleton(
        CommandDispatcher,
        router=router,
        limiter=limiter,
        metrics=metrics,
        shadow=shadow,
        defer_after_seconds=config.discord.defer_after_seconds,
    )
    metrics_server = providers.Singleton(
        lambda metrics, host, port, breakers: MetricsServer(
            metrics, host, port, lambda: {"breakers": {n: b.state for n, b in breakers.items()}}
        ),
        metrics,
        config.metrics.host,
        config.metrics.port,
        breakers,
    )
    bot = providers.Factory(build_bot, dispatcher=dispatcher, guild_ready_timeout=config.discord.guild_ready_timeout)


def make_container(settings: dict[str, Any]) -> Container:
    container = Container()
    container.config.from_dict(settings)
    return container
