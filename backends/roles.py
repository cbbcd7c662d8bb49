"""The living community's records, shared by the stores that keep them and the code that acts on them:
a community's role configuration, members on the first positions, a member's recorded standing, and
who asked for alerts (docs/domain.md, "Roles and alerts")."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from uuid import UUID

ROLE_KINDS = ("naib", "fedaykin", "at_risk", "waiting")


@dataclass(frozen=True)
class RoleConfig:
    community_id: int
    naib: int | None = None
    fedaykin: int | None = None
    at_risk: int | None = None
    waiting: int | None = None
    minimum_balance: Decimal | None = None
    rule_id: str = "holders"

    def role(self, kind: str) -> int | None:
        return getattr(self, kind)  # type: ignore[no-any-return]

    @property
    def role_ids(self) -> set[int]:
        return {r for kind in ROLE_KINDS if (r := self.role(kind)) is not None}


@dataclass(frozen=True)
class Ranked:
    """A member on the board's first W positions who has a Discord account."""

    discord_user_id: int
    profile_id: UUID
    position: int
    conviction: Decimal


@dataclass(frozen=True)
class Standing:
    discord_user_id: int
    status: str  # naib | fedaykin | at_risk | waiting | none
    position: int | None
    roles: frozenset[int] = field(default_factory=frozenset)
    changed_at: datetime | None = None


@dataclass(frozen=True)
class Subscription:
    enabled: bool
    last_sent_at: datetime | None
    note: str | None
    last_loss_sent_at: datetime | None = None


@dataclass(frozen=True)
class DueAlert:
    """An alert DM recorded as due and not yet taken by Discord."""

    community_id: int
    discord_user_id: int
    content: str
    urgent: bool
    attempts: int = 0
