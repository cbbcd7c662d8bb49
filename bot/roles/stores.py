"""What roles and alerts need from the source of truth: each community's role configuration, its first
positions, the standings recorded at the last sync, what Discord refused, and who asked for alerts.
PostgreSQL implements them (`backends/postgres/standing.py`); the assembly hands them in."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from backends.copies import FloorMove
from backends.roles import DueAlert, Ranked, RoleConfig, Standing, Subscription


class Subscriptions(Protocol):
    """Who asked for alert DMs, and when each was last sent one."""

    async def subscription(self, community_id: int, user: int) -> Subscription | None: ...

    async def subscriptions(self, community_id: int, users: Sequence[int]) -> dict[int, Subscription]: ...

    async def subscribe(self, community_id: int, user: int, enabled: bool, note: str | None = None) -> None: ...

    async def put_due(self, community_id: int, alerts: Sequence[tuple[int, str, bool]]) -> None:
        """Record (user, content, urgent) alerts as due; a member's newer alert replaces one not sent yet."""

    async def due(self, limit: int, claim_seconds: float = 300.0) -> list[DueAlert]:
        """The oldest due alerts, across communities, claimed by this process for `claim_seconds`."""

    async def delivered(self, alert: DueAlert, at: datetime) -> None:
        """Discord took the DM: no longer due, and it counts against the member's caps."""

    async def release(self, alerts: Sequence[DueAlert]) -> None:
        """Give back claimed alerts not tried (the process stops)."""

    async def not_delivered(self, alert: DueAlert, *, drop: bool) -> None: ...


class StandingStore(Subscriptions, Protocol):
    async def role_config(self, community_id: int) -> RoleConfig: ...

    async def put_role_config(self, config: RoleConfig) -> FloorMove | None:
        """Set the community's roles; what Discord said of its roles before is forgotten. A new minimum
        balance that moved the naib seats says how the copy floor moved (the copies learn of it directly)."""

    async def seated(self, community_id: int) -> set[int]:
        """The Discord accounts of the naib seat holders."""

    async def first_positions(self, community_id: int, last: int) -> list[Ranked]:
        """Positions 1..`last` on the conviction board, the members among them with a Discord account."""

    async def standings(self, community_id: int) -> dict[int, Standing]: ...

    async def standings_of(self, community_id: int, users: Sequence[int] | None) -> dict[int, Standing]: ...

    async def put_standings(self, community_id: int, standings: Sequence[Standing], gone: Sequence[int]) -> None: ...

    async def note_problems(self, community_id: int, problems: Sequence[tuple[int, int, str]]) -> None: ...

    async def clear_problems(self, community_id: int, done: Sequence[tuple[int, int]]) -> None: ...

    async def recent_problems(self, community_id: int, since: datetime) -> set[tuple[int, int]]: ...

    async def unknown_roles(self, community_id: int) -> set[int]:
        """Roles Discord said it does not know, since the community's roles were last set."""

    async def problems(self, community_id: int, limit: int = 20) -> tuple[list[tuple[int, int, str]], int]:
        """The latest problems (user, role, problem) and how many there are."""


class FollowedCommunities(Protocol):
    async def versions(self) -> dict[int, int]:
        """Score version of every community with roles configured or an alert subscriber."""
