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
from backends.postgres.identify import IdentifySlots
from backends.postgres.ingest import IngestDirectory
from backends.postgres.latches import LatchTable
from backends.postgres.leases import AdvisoryLeases, ExpiringLeases
from backends.postgres.process_reports import ProcessReports
from backends.postgres.standing import FollowedCommunities, StandingStore
from bot.app import factories
from bot.app.background import BackgroundWork
from bot.app.client import build_bot
from bot.app.metrics import Metrics
from bot.app.metrics_server import MetricsServer
from bot.app.migration_page import MigrationPage
from bot.app.process_report import ProcessReporter
from bot.discord.dispatch import CommandDispatcher
from bot.discord.extensions import CogDependencies
from bot.discord.pace import RequestGuard
from bot.discord.ratelimit import RateLimiter
from bot.domain.service import HotPathService
from bot.feed.apply import ScoreFeed
from bot.feed.badges import BadgeFeed
from bot.feed.held import HeldSettling
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
    pool: providers.Dependency[Any] = providers.Dependency()  # the source of truth's pool for commands
    background_pool: providers.Dependency[Any] = providers.Dependency()  # ...and for everything else
    cql: providers.Object[Any] = providers.Object(None)  # the CQL session, when Scylla is configured
    # Whose HTTP session role changes and DMs go through (the bot, for `sietch run`); None: no Discord.
    discord_client: providers.Object[Any] = providers.Object(None)
    metrics = providers.Singleton(Metrics)

    # --- the source of truth's stores: what commands read on `pool`, the rest on `background_pool` ----
    latch_table = providers.Singleton(LatchTable, pool)
    copy_source = providers.Singleton(PostgresCopySource, pool)  # readiness, on every routed command
    commands_standing = providers.Singleton(StandingStore, pool)  # /alerts, /roles status
    community_writes = providers.Singleton(CommunityWrites, background_pool)
    standing_store = providers.Singleton(StandingStore, background_pool)
    followed = providers.Singleton(FollowedCommunities, background_pool)
    ingest = providers.Singleton(IngestDirectory, background_pool)
    outbox = providers.Singleton(PostgresCopySource, background_pool)  # the relay's, the migration page's
    process_reports = providers.Singleton(ProcessReports, background_pool)
    # One process at a time rebuilds a community's boards (holding a connection: the rebuild needs no
    # other) or syncs its roles (holding none: a sync reads as it goes).
    rebuild_leases = providers.Singleton(AdvisoryLeases, background_pool)
    sync_leases = providers.Singleton(ExpiringLeases, background_pool)

    # --- the backend registry: name → provider, the source of truth first (the reference of shadow reads,
    # the first fallback); every list of backend names derives from it --------------------------------
    postgres_backend = providers.Singleton(PostgresBackend, pool)  # its `outbox` is set below the class
    scylla_backend = providers.Singleton(
        factories.scylla_backend,
        cql,
        config.scylla.keyspace,
        config.scylla.snapshot_pointer_ttl_seconds,
        config.recalculation.max_busy_share,
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
        factories.outbox_relay, outbox, replicas, config.writes.mode, config.writes.retry_interval_seconds
    )
    source_writes = providers.Singleton(PostgresBackend, background_pool)  # score writes: the feed's
    writer = providers.Singleton(
        ScoreWriter, source_writes, relay, mode=flag_store.provided.writes_mode, default_mode=config.writes.mode
    )
    services = providers.Singleton(
        factories.hot_path_services,
        backends,
        writer,
        eligibility_ttl=config.eligibility.cache_ttl_seconds,
        community_ttl=config.communities.cache_seconds,
    )
    source_service = providers.Callable(factories.source_of_truth, services)
    # The source of truth as background work reads it (role syncs): on the background pool.
    background_source = providers.Singleton(
        HotPathService,
        source_writes,
        eligibility_ttl_seconds=config.eligibility.cache_ttl_seconds,
        writer=writer,
        community_ttl_seconds=config.communities.cache_seconds,
    )

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
        standing=commands_standing,
    )
    request_guard = providers.Singleton(
        RequestGuard, metrics, slow_down_after=config.discord.invalid_requests_slow_down_after
    )
    bot = providers.Singleton(
        build_bot,
        cog_dependencies,
        request_guard,
        providers.Singleton(IdentifySlots, background_pool),
        guild_ready_timeout=config.discord.guild_ready_timeout,
        shard_count=config.discord.shard_count,
        shard_ids=config.discord.shard_ids,
        requests_per_second=config.discord.requests_per_second,
        max_concurrency=config.discord.max_concurrency,
    )
    members = providers.Singleton(factories.member_routes, discord_client)

    # --- the living community: the score feed, roles and alerts ----------------------------------------------
    alert_sender = providers.Singleton(
        AlertSender,
        standing_store,
        members,
        period_seconds=config.alerts.period_seconds,
        loss_period_seconds=config.alerts.loss_period_seconds,
        per_second=providers.Callable(
            factories.dm_share, config.alerts.dms_per_second, config.discord.shard_count, config.discord.shard_ids
        ),
    )
    role_sync = providers.Singleton(
        RoleSync,
        standing_store,
        background_source,
        members,
        alert_sender,
        debounce_seconds=config.roles.debounce_seconds,
        interval_seconds=config.roles.sweep_seconds,
        leases=sync_leases,
        followed=followed,
        concurrency=config.roles.concurrency,
    )
    score_feed = providers.Singleton(
        ScoreFeed,
        ingest,
        writer,
        services=providers.Callable(factories.every_service, services, background_source),
        moved=role_sync.provided.schedule,
    )
    badge_feed = providers.Singleton(BadgeFeed, ingest, writer)
    feed_server = providers.Singleton(
        FeedServer,
        score_feed,
        ingest,
        badges=badge_feed,
        host=config.feed.host,
        port=config.feed.port,
        max_body_bytes=config.feed.max_body_bytes,
        max_items=config.feed.max_batch,
        requests_per_minute=config.feed.requests_per_minute,
        idle_timeout_seconds=config.feed.idle_timeout_seconds,
        read_timeout_seconds=config.feed.read_timeout_seconds,
    )

    # --- background work and what watches it ------------------------------------------------------------------
    rebuilds = providers.Singleton(
        factories.snapshot_rebuilds,
        replicas,
        config.recalculation.interval_seconds,
        rebuild_leases,
        rebuilt=role_sync.provided.schedule,
    )
    process_reporter = providers.Singleton(
        ProcessReporter,
        process_reports,
        metrics.provided.recent,
        breakers,
        shards=config.discord.shard_ids,
        interval_seconds=config.metrics.report_seconds,
    )
    background = providers.Singleton(
        BackgroundWork,
        relay,
        providers.Callable(factories.rebuilt_here, rebuilds, config.recalculation.in_bot),
        role_sync,
        metrics,
        providers.Callable(factories.delivering, alert_sender, members),
        process_reporter,
        providers.Singleton(HeldSettling, score_feed),
        drain_seconds=config.writes.drain_on_shutdown_seconds,
        stale_after_seconds=config.health.stale_after_seconds,
    )
    # The migration page decides as `router` does, reading readiness on the background pool.
    page_router = providers.Singleton(
        Router,
        backend_names,
        flag_store,
        breakers,
        rollback,
        providers.Singleton(Readiness, outbox, replicas, max_lag_seconds=config.readiness.max_lag_seconds),
        reference=config.routing.reference_backend,
    )
    migration_page = providers.Singleton(
        MigrationPage, page_router, outbox, page_router.provided.readiness, services, process_reports
    )
    metrics_server = providers.Singleton(
        MetricsServer,
        metrics,
        config.metrics.host,
        config.metrics.port,
        providers.Callable(factories.health_report, background.provided.heartbeats, breakers),
        page=migration_page,
        page_token=config.metrics.page_token,
    )


# The source of truth queues score events for the copies when the registry holds any (known only once the
# registry is): the write path says so itself; this is for writes applied to the backend directly.
for _source in (Application.postgres_backend, Application.source_writes):
    _source.add_kwargs(
        outbox=providers.Callable(factories.copies_wait, Application.config.writes.mode, Application.backend_names)
    )
