"""The one place that shows how Sietch is assembled: settings → databases → backends → routing → bot.

Backends are registered by name in `backends` (the first is the source of truth and the reference for
shadow reads); every other piece works from that registry. Tests replace pieces with `.override()`.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any, cast

from dependency_injector import containers, providers
from psycopg_pool import AsyncConnectionPool

from backends.copies import CopySource, Replica, replica_of
from backends.postgres.backend import PostgresBackend
from backends.postgres.community_writes import CommunityWrites
from backends.postgres.embedded import start_embedded
from backends.postgres.export import PostgresCopySource
from backends.postgres.ingest import IngestDirectory
from backends.postgres.latches import LatchTable
from backends.postgres.leases import AdvisoryLeases
from backends.postgres.standing import FollowedCommunities, StandingStore
from backends.protocol import Backend
from backends.scylla.backend import ScyllaBackend
from backends.scylla.session import CqlSession, CqlSettings, connect
from bot.app.background import BackgroundWork
from bot.app.client import build_bot
from bot.app.metrics import Metrics
from bot.app.metrics_server import MetricsServer
from bot.discord.dispatch import CommandDispatcher
from bot.discord.ratelimit import RateLimiter
from bot.domain.service import HotPathService
from bot.feed.apply import ScoreFeed
from bot.feed.http import FeedServer
from bot.replication.rebuilds import Leases, SnapshotRebuilds
from bot.replication.relay import OutboxRelay
from bot.replication.writes import ScoreWriter
from bot.roles.alerts import AlertSender
from bot.roles.sync import RoleSync
from bot.routing.breaker import CircuitBreaker
from bot.routing.flag_store import FlagStore
from bot.routing.flags import FlagWatcher
from bot.routing.readiness import Readiness
from bot.routing.rollback import RollbackMonitor
from bot.routing.router import COMMANDS, Router
from bot.routing.serving import Responder
from bot.routing.shadow import ShadowComparator


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
    """The CQL cluster's settings, or None when Scylla is not configured (no contact points)."""
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


def scylla_backend(cql: CqlSession | None, keyspace: str, pointer_ttl: float) -> ScyllaBackend | None:
    return ScyllaBackend(cql, keyspace, pointer_ttl=pointer_ttl) if cql is not None else None


def registered(**backends: Backend | None) -> dict[str, Backend]:
    """The registry: every configured backend by name, in the order given (the source of truth first)."""
    return {name: backend for name, backend in backends.items() if backend is not None}


def configured(**present: object) -> list[str]:
    """The registry's names, from the settings alone (no database opened): those configured."""
    return [name for name, value in present.items() if value]


def queues_for_copies(mode: str, names: list[str]) -> bool:
    """Whether score events wait in the outbox: writes are dual and a backend besides the source is configured."""
    return mode == "dual" and len(names) > 1


def replicas(backends: Mapping[str, Backend]) -> dict[str, Replica]:
    """The backends that serve from a copy, by name, with their copy interface."""
    return {name: r for name, backend in backends.items() if (r := replica_of(backend)) is not None}


def outbox_relay(source: CopySource, replicas: Mapping[str, Replica], mode: str, interval: float) -> OutboxRelay | None:
    """Score events wait in the outbox only when a copy is there to receive them and writes are dual."""
    if mode != "dual" or not replicas:
        return None
    return OutboxRelay(source, replicas, interval_seconds=interval)


def snapshot_rebuilds(
    replicas: Mapping[str, Replica], interval: float, leases: Leases, rebuilt: Callable[[int], None]
) -> SnapshotRebuilds | None:
    return SnapshotRebuilds(replicas, interval, leases, rebuilt) if replicas else None


def in_bot(rebuilds: SnapshotRebuilds | None, here: bool) -> SnapshotRebuilds | None:
    """The rebuilds `sietch run` does: none when a `sietch rebuilds` process does them."""
    return rebuilds if here else None


def source_service(services: Mapping[str, HotPathService]) -> HotPathService:
    """The source of truth's service: roles and alerts follow PostgreSQL, whatever serves the commands."""
    return services["postgres"]


def services(
    backends: Mapping[str, Backend], writer: ScoreWriter, eligibility_ttl: int, community_ttl: float
) -> dict[str, HotPathService]:
    """One hot-path service per backend, all handing score writes to the same write path."""
    return {
        name: HotPathService(
            backend, eligibility_ttl_seconds=eligibility_ttl, writer=writer, community_ttl_seconds=community_ttl
        )
        for name, backend in backends.items()
    }


def breakers(
    names: list[str], settings: dict[str, Any], on_change: Callable[[str, str], None]
) -> dict[str, CircuitBreaker]:
    return {
        name: CircuitBreaker(
            name,
            failures=settings["failures"],
            window_seconds=settings["window_seconds"],
            cool_down_seconds=settings["cool_down_seconds"],
            on_change=on_change,
        )
        for name in names
    }


def health_report(breakers: Mapping[str, CircuitBreaker]) -> Callable[[], dict[str, Any]]:
    """What /healthz adds to "ok": each backend's breaker state."""
    return lambda: {"breakers": {name: b.state for name, b in breakers.items()}}


class Container(containers.DeclarativeContainer):
    config = providers.Configuration(strict=True)

    # --- databases -------------------------------------------------------------------------------
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

    # --- backends: the registry ------------------------------------------------------------------
    backend_names = providers.Callable(configured, postgres=True, scylla=config.scylla.hosts)
    postgres_backend = providers.Singleton(
        PostgresBackend,
        pool=postgres_pool,
        outbox=providers.Callable(queues_for_copies, config.writes.mode, backend_names),
    )
    scylla_backend = providers.Singleton(
        scylla_backend, cql_session, config.scylla.keyspace, config.scylla.snapshot_pointer_ttl_seconds
    )
    backends = providers.Callable(registered, postgres=postgres_backend, scylla=scylla_backend)
    replicas = providers.Callable(replicas, backends)
    copy_source = providers.Singleton(PostgresCopySource, postgres_backend)
    community_writes = providers.Singleton(CommunityWrites, pool=postgres_pool)
    latch_table = providers.Singleton(LatchTable, postgres_backend)
    metrics = providers.Singleton(Metrics)

    # --- the flag file ---------------------------------------------------------------------------
    flag_store = providers.Singleton(
        FlagStore,
        config.flags.path,
        backends=backend_names,
        commands=COMMANDS,
        fallback_backend=config.routing.default_backend,
        on_reload=metrics.provided.reload,
    )
    flag_watcher = providers.Singleton(
        FlagWatcher, flag_store.provided.path, flag_store.provided.reload, interval=config.flags.poll_seconds
    )

    # --- writes and copies -----------------------------------------------------------------------
    relay = providers.Singleton(
        outbox_relay, copy_source, replicas, config.writes.mode, config.writes.retry_interval_seconds
    )
    writer = providers.Singleton(
        ScoreWriter, postgres_backend, relay, mode=flag_store.provided.writes_mode, default_mode=config.writes.mode
    )
    # Shared by every bot process on this database: one process at a time rebuilds a community.
    rebuild_leases = providers.Singleton(AdvisoryLeases, postgres_backend)

    services = providers.Singleton(
        services,
        backends,
        writer,
        eligibility_ttl=config.eligibility.cache_ttl_seconds,
        community_ttl=config.communities.cache_seconds,
    )

    # --- the living community: the score feed, roles and alerts ---------------------------------------
    ingest = providers.Singleton(IngestDirectory, pool=postgres_pool)
    standing_store = providers.Singleton(StandingStore, pool=postgres_pool)
    # The Discord side (`DiscordMembers` on the bot's HTTP client) is attached by `sietch run`.
    alert_sender = providers.Singleton(AlertSender, standing_store, None, period_seconds=config.alerts.period_seconds)
    role_sync = providers.Singleton(
        RoleSync,
        standing_store,
        providers.Callable(source_service, services),
        None,
        alert_sender,
        debounce_seconds=config.roles.debounce_seconds,
        interval_seconds=config.roles.sweep_seconds,
        leases=rebuild_leases,
        followed=providers.Singleton(FollowedCommunities, pool=postgres_pool),
    )
    score_feed = providers.Singleton(
        ScoreFeed, ingest, writer, services=services.provided.values.call(), moved=role_sync.provided.schedule
    )
    feed_server = providers.Singleton(
        FeedServer,
        score_feed,
        ingest,
        host=config.feed.host,
        port=config.feed.port,
        max_body_bytes=config.feed.max_body_bytes,
        max_items=config.feed.max_batch,
        requests_per_minute=config.feed.requests_per_minute,
    )

    rebuilds = providers.Singleton(
        snapshot_rebuilds,
        replicas,
        config.recalculation.interval_seconds,
        rebuild_leases,
        rebuilt=role_sync.provided.schedule,
    )
    background = providers.Singleton(
        BackgroundWork,
        relay=relay,
        rebuilds=providers.Callable(in_bot, rebuilds, config.recalculation.in_bot),
        drain_seconds=config.writes.drain_on_shutdown_seconds,
        roles=role_sync,
    )

    # --- routing ---------------------------------------------------------------------------------
    breakers = providers.Singleton(breakers, backend_names, config.breaker, metrics.provided.breaker)
    rollback = providers.Singleton(RollbackMonitor, latch_table, flag_store.provided.auto_rollback)
    readiness = providers.Singleton(Readiness, copy_source, replicas, max_lag_seconds=config.readiness.max_lag_seconds)
    router = providers.Singleton(
        Router,
        services=services,
        flags=flag_store,
        breakers=breakers,
        rollback=rollback,
        readiness=readiness,
        reference=config.routing.reference_backend,
    )
    responder = providers.Singleton(
        Responder, router, observer=metrics, patience_seconds=config.discord.answer_within_seconds
    )
    shadow = providers.Singleton(ShadowComparator, router, observer=metrics, concurrency=config.shadow.concurrency)

    # --- Discord ---------------------------------------------------------------------------------
    limiter = providers.Singleton(RateLimiter)
    dispatcher = providers.Singleton(
        CommandDispatcher,
        responder=responder,
        limiter=limiter,
        observer=metrics,
        shadow=shadow,
        defer_after_seconds=config.discord.defer_after_seconds,
    )
    metrics_server = providers.Singleton(
        MetricsServer, metrics, config.metrics.host, config.metrics.port, providers.Callable(health_report, breakers)
    )
    bot = providers.Factory(
        build_bot,
        dispatcher=dispatcher,
        guild_ready_timeout=config.discord.guild_ready_timeout,
        shard_count=config.discord.shard_count,
        shard_ids=config.discord.shard_ids,
        standing=standing_store,
        source=providers.Callable(source_service, services),
        limiter=limiter,
    )


async def resolved[T](provider: providers.Provider[T]) -> T:
    """A provider's value: awaited when it depends on an async resource (the pools, the CQL session),
    as it is otherwise (dependency-injector returns either, whatever the provider's type says)."""
    value: Any = provider()
    return cast(T, await value if inspect.isawaitable(value) else value)


def make_container(settings: dict[str, Any]) -> Container:
    container = Container()
    container.config.from_dict(settings)
    return container
