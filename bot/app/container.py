"""What Sietch is made of, in one place: the source of truth's stores, the backend registry, writes and
copies, routing, the living community (feed, roles, alerts) and the Discord side.

Every provider is synchronous: the databases are opened before (`bot.app.databases`) and handed in as
`pool` and `cql`. `bot.app.app.App` opens them, builds this container and runs what it holds. Only this
package names concrete backends; everything else sees the Protocols.
"""

from __future__ import annotations

from typing import Any

from dependency_injector import containers, providers

from backends.postgres.backend import PostgresBackend
from backends.postgres.community_writes import CommunityWrites
from backends.postgres.export import PostgresCopySource
from backends.postgres.ingest import IngestDirectory
from backends.postgres.latches import LatchTable
from backends.postgres.leases import AdvisoryLeases
from backends.postgres.standing import FollowedCommunities, StandingStore
from bot.app import factories
from bot.app.background import BackgroundWork
from bot.app.client import build_bot
from bot.app.metrics import Metrics
from bot.app.metrics_server import MetricsServer
from bot.discord.dispatch import CommandDispatcher
from bot.discord.extensions import CogDependencies
from bot.discord.ratelimit import RateLimiter
from bot.feed.apply import ScoreFeed
from bot.feed.http import FeedServer
from bot.replication.writes import ScoreWriter
from bot.roles.alerts import AlertSender
from bot.roles.sync import RoleSync
from bot.routing.flag_store import FlagStore
from bot.routing.flags import FlagWatcher
from bot.routing.readiness import Readiness
from bot.routing.rollback import RollbackMonitor
from bot.routing.router import COMMANDS, Router
from bot.routing.serving import Responder
from bot.routing.shadow import ShadowComparator


class Application(containers.DeclarativeContainer):
    config = providers.Configuration(strict=True)
    pool: providers.Dependency[Any] = providers.Dependency()  # the source of truth's connection pool
    cql: providers.Object[Any] = providers.Object(None)  # the CQL session, when Scylla is configured
    # Whose HTTP session role changes and DMs go through (the bot, for `sietch run`); None: no Discord.
    discord_client: providers.Object[Any] = providers.Object(None)
    metrics = providers.Singleton(Metrics)

    # --- the source of truth's stores ----------------------------------------------------------------
    community_writes = providers.Singleton(CommunityWrites, pool)
    standing_store = providers.Singleton(StandingStore, pool)
    followed = providers.Singleton(FollowedCommunities, pool)
    ingest = providers.Singleton(IngestDirectory, pool)
    latch_table = providers.Singleton(LatchTable, pool)
    leases = providers.Singleton(AdvisoryLeases, pool)  # one process at a time rebuilds or syncs a community
    copy_source = providers.Singleton(PostgresCopySource, pool)

    # --- the backend registry: name → provider, the source of truth first (the reference of shadow reads,
    # the first fallback); every list of backend names derives from it --------------------------------
    postgres_backend = providers.Singleton(PostgresBackend, pool)  # its `outbox` is set below the class
    scylla_backend = providers.Singleton(
        factories.scylla_backend, cql, config.scylla.keyspace, config.scylla.snapshot_pointer_ttl_seconds
    )
    registry = providers.Dict(
        postgres=providers.Factory(factories.Registered, configured=True, build=postgres_backend.provider),
        scylla=providers.Factory(
            factories.Registered, configured=config.scylla.hosts.as_(bool), build=scylla_backend.provider
        ),
    )
    backend_names = providers.Callable(factories.configured_names, registry)
    backends = providers.Singleton(factories.built, registry)
    replicas = providers.Callable(factories.replicas, backends)

    # --- writes and copies -----------------------------------------------------------------------------
    flag_store = providers.Singleton(
        FlagStore,
        config.flags.path,
        backends=backend_names,
        commands=COMMANDS,
        fallback_backend=config.routing.default_backend,
        on_reload=metrics.provided.reload,
    )
    relay = providers.Singleton(
        factories.outbox_relay, copy_source, replicas, config.writes.mode, config.writes.retry_interval_seconds
    )
    writer = providers.Singleton(
        ScoreWriter, postgres_backend, relay, mode=flag_store.provided.writes_mode, default_mode=config.writes.mode
    )
    services = providers.Singleton(
        factories.hot_path_services,
        backends,
        writer,
        eligibility_ttl=config.eligibility.cache_ttl_seconds,
        community_ttl=config.communities.cache_seconds,
    )
    source_service = providers.Callable(factories.source_of_truth, services)

    # --- routing -------------------------------------------------------------------------------------------
    flag_watcher = providers.Singleton(
        FlagWatcher, flag_store.provided.path, flag_store.provided.reload, interval=config.flags.poll_seconds
    )
    breakers = providers.Singleton(factories.breakers, backend_names, config.breaker, metrics.provided.breaker)
    rollback = providers.Singleton(RollbackMonitor, latch_table, flag_store.provided.auto_rollback)
    readiness = providers.Singleton(Readiness, copy_source, replicas, max_lag_seconds=config.readiness.max_lag_seconds)
    router = providers.Singleton(
        Router,
        backend_names,
        flag_store,
        breakers,
        rollback,
        readiness,
        reference=config.routing.reference_backend,
    )
    responder = providers.Singleton(
        Responder,
        services,
        router,
        breakers,
        rollback,
        metrics,
        patience_seconds=config.discord.answer_within_seconds,
    )
    shadow = providers.Singleton(
        ShadowComparator,
        services,
        rollback,
        metrics,
        reference=config.routing.reference_backend,
        concurrency=config.shadow.concurrency,
    )

    # --- the Discord side ------------------------------------------------------------------------------------
    limiter = providers.Singleton(RateLimiter)
    dispatcher = providers.Singleton(
        CommandDispatcher,
        router,
        responder,
        shadow,
        limiter,
        metrics,
        defer_after_seconds=config.discord.defer_after_seconds,
    )
    cog_dependencies = providers.Singleton(
        CogDependencies,
        dispatcher=dispatcher,
        services=services,
        source=source_service,
        standing=standing_store,
        limiter=limiter,
    )
    bot = providers.Singleton(
        build_bot,
        cog_dependencies,
        guild_ready_timeout=config.discord.guild_ready_timeout,
        shard_count=config.discord.shard_count,
        shard_ids=config.discord.shard_ids,
    )
    members = providers.Singleton(factories.member_routes, discord_client)

    # --- the living community: the score feed, roles and alerts ----------------------------------------------
    alert_sender = providers.Singleton(
        AlertSender, standing_store, members, period_seconds=config.alerts.period_seconds
    )
    role_sync = providers.Singleton(
        RoleSync,
        standing_store,
        source_service,
        members,
        alert_sender,
        debounce_seconds=config.roles.debounce_seconds,
        interval_seconds=config.roles.sweep_seconds,
        leases=leases,
        followed=followed,
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

    # --- background work and what watches it ------------------------------------------------------------------
    rebuilds = providers.Singleton(
        factories.snapshot_rebuilds,
        replicas,
        config.recalculation.interval_seconds,
        leases,
        rebuilt=role_sync.provided.schedule,
    )
    background = providers.Singleton(
        BackgroundWork,
        relay,
        providers.Callable(factories.rebuilt_here, rebuilds, config.recalculation.in_bot),
        role_sync,
        metrics,
        drain_seconds=config.writes.drain_on_shutdown_seconds,
        stale_after_seconds=config.health.stale_after_seconds,
    )
    metrics_server = providers.Singleton(
        MetricsServer,
        metrics,
        config.metrics.host,
        config.metrics.port,
        providers.Callable(factories.health_report, background.provided.heartbeats, breakers),
    )


# The source of truth queues score events for the copies when the registry holds any (known only once the
# registry is): the write path says so itself; this is for writes applied to the backend directly.
Application.postgres_backend.add_kwargs(
    outbox=providers.Callable(factories.copies_wait, Application.config.writes.mode, Application.backend_names)
)
