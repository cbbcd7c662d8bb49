"""The pieces the container builds with more than a constructor call: the backend registry's entries,
one hot-path service and one breaker per backend, and the work that exists only when a copy does."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from backends.copies import CopySource, Replica, replica_of
from backends.protocol import Backend
from backends.scylla.backend import ScyllaBackend
from backends.scylla.session import CqlSession
from bot.app.health import Heartbeats
from bot.discord.members import DiscordMembers
from bot.discord.pace import shard_fraction
from bot.domain.service import HotPathService
from bot.replication.rebuilds import Leases, SnapshotRebuilds
from bot.replication.relay import OutboxRelay
from bot.replication.writes import ScoreWriter
from bot.roles.alerts import AlertSender
from bot.routing.breaker import CircuitBreaker


@dataclass(frozen=True)
class Registered:
    """One entry of the backend registry: whether its settings are there, and how to build it (only
    called for a configured backend)."""

    configured: bool
    build: Callable[[], Backend]


def configured_names(registry: Mapping[str, Registered]) -> list[str]:
    """The names of the configured backends, in registry order (the source of truth first)."""
    return [name for name, entry in registry.items() if entry.configured]


def built(registry: Mapping[str, Registered]) -> dict[str, Backend]:
    return {name: entry.build() for name, entry in registry.items() if entry.configured}


def copies_wait(mode: str, names: list[str]) -> bool:
    """Whether score events wait in the outbox: writes are dual and a backend besides the source is configured."""
    return mode == "dual" and len(names) > 1


def scylla_backend(cql: CqlSession | None, keyspace: str, pointer_ttl: float, busy_share: float) -> ScyllaBackend:
    if cql is None:
        raise RuntimeError("scylla is configured (scylla.hosts) but no CQL session was opened")
    return ScyllaBackend(cql, keyspace, pointer_ttl=pointer_ttl, busy_share=busy_share)


def replicas(backends: Mapping[str, Backend]) -> dict[str, Replica]:
    """The backends that serve from a copy, by name, with their copy interface."""
    return {name: r for name, backend in backends.items() if (r := replica_of(backend)) is not None}


def hot_path_services(
    backends: Mapping[str, Backend], writer: ScoreWriter, eligibility_ttl: int, community_ttl: float
) -> dict[str, HotPathService]:
    """One hot-path service per backend, all handing score writes to the same write path."""
    return {
        name: HotPathService(
            backend, eligibility_ttl_seconds=eligibility_ttl, writer=writer, community_ttl_seconds=community_ttl
        )
        for name, backend in backends.items()
    }


def source_of_truth(services: Mapping[str, HotPathService]) -> HotPathService:
    """The registry's first: roles and alerts follow the source of truth, whatever serves the commands."""
    return next(iter(services.values()))


def every_service(services: Mapping[str, HotPathService], *others: HotPathService) -> list[HotPathService]:
    """Every hot-path service of the process (each keeps its own eligibility cache)."""
    return [*services.values(), *others]


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


def outbox_relay(source: CopySource, replicas: Mapping[str, Replica], mode: str, interval: float) -> OutboxRelay | None:
    """Score events wait in the outbox only when a copy is there to receive them and writes are dual."""
    if mode != "dual" or not replicas:
        return None
    return OutboxRelay(source, replicas, interval_seconds=interval)


def snapshot_rebuilds(
    replicas: Mapping[str, Replica], interval: float, leases: Leases, rebuilt: Callable[[int], None]
) -> SnapshotRebuilds | None:
    return SnapshotRebuilds(replicas, interval, leases, rebuilt) if replicas else None


def rebuilt_here(rebuilds: SnapshotRebuilds | None, in_bot: bool) -> SnapshotRebuilds | None:
    """The rebuilds `sietch run` does: none when a `sietch rebuilds` process does them."""
    return rebuilds if in_bot else None


def dm_share(per_second: float, shard_count: int, shard_ids: list[int]) -> float:
    """This process's DMs per second: the bot's pace split by the shards it runs (Discord limits how fast
    the bot as a whole opens DMs, whichever process asks)."""
    return per_second * shard_fraction(shard_count, shard_ids)


def delivering(alerts: AlertSender, members: DiscordMembers | None) -> AlertSender | None:
    """The alert DMs' delivery loop runs where there is a Discord client to send them."""
    return alerts if members is not None else None


def member_routes(client: Any) -> DiscordMembers | None:
    """Discord's member-role and DM routes on the client's HTTP session; none without a client."""
    return DiscordMembers(lambda: client.http) if client is not None else None


def health_report(
    heartbeats: Heartbeats, breakers: Mapping[str, CircuitBreaker]
) -> Callable[[], tuple[bool, dict[str, Any]]]:
    """What /healthz says: healthy while every background loop succeeded recently; each loop and breaker."""

    def report() -> tuple[bool, dict[str, Any]]:
        healthy, loops = heartbeats.report()
        return healthy, {"loops": loops, "breakers": {name: b.state for name, b in breakers.items()}}

    return report
