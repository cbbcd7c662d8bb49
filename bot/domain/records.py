"""What the hot-path service answers: the records the embeds are built from (docs/domain.md, "Operations")."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from uuid import UUID

from backends.protocol import Board
from bot.domain.badges import TenureCategory
from bot.domain.formatting import Tier
from bot.domain.progression import ProgressionTier


@dataclass(frozen=True)
class PositionData:
    position: int
    conviction: Decimal
    distance_to_above: Decimal | None
    distance_to_below: Decimal | None
    distance_to_entry: Decimal | None
    is_naib: bool
    is_fedaykin: bool
    is_at_risk: bool


@dataclass(frozen=True)
class WaitlistEntry:
    position: int
    profile_id: UUID
    name: str
    conviction: Decimal
    distance_to_entry: Decimal


@dataclass(frozen=True)
class ThresholdData:
    ranked: int
    eligible_count: int
    waitlist_count: int
    entry_threshold: Decimal
    gap_to_entry: Decimal | None
    as_of: datetime
    fedaykin: int
    waitlist_end: int


@dataclass(frozen=True)
class LeaderboardEntry:
    rank: int
    profile_id: UUID
    nym: str
    score: Decimal
    tier: Tier


@dataclass(frozen=True)
class LeaderboardPage:
    board: Board
    entries: list[LeaderboardEntry]
    page: int
    page_size: int
    total: int
    has_more: bool

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.page_size))


@dataclass(frozen=True)
class TierEntry:
    """One member of the tier progression board: their tier, the next one and the distance to it."""

    rank: int
    profile_id: UUID
    name: str
    conviction: Decimal
    tier: ProgressionTier
    next_tier: ProgressionTier
    distance: Decimal


@dataclass(frozen=True)
class TierBoard:
    """What /leaderboard tiers shows: the board's first entries, the caller's own entry (None: not on the
    board) and how many members the board holds."""

    entries: list[TierEntry]
    caller: TierEntry | None
    total: int


@dataclass(frozen=True)
class BadgeBoardEntry:
    """One member of the badge board: their rank (equal counts share one), count, progression tier and
    tenure category."""

    rank: int
    profile_id: UUID
    name: str
    held: int
    tier: ProgressionTier
    tenure: TenureCategory


@dataclass(frozen=True)
class BadgeBoard:
    """What /leaderboard badges shows: the first entries, the caller's rank when they hold a badge and are
    not among them (else None), and every member of the community."""

    entries: list[BadgeBoardEntry]
    caller_rank: int | None
    members: int


@dataclass(frozen=True)
class EligibilityRule:
    rule_id: str
    minimum_balance: Decimal
    chain: str | None = None
    contract: str | None = None


@dataclass(frozen=True)
class Eligibility:
    eligible: bool
    balance: Decimal
    checked_at: datetime
    from_cache: bool


@dataclass(frozen=True)
class ThresholdView:
    """What /threshold shows: the entry bar and the head of the waiting pool."""

    threshold: ThresholdData
    waitlist: list[WaitlistEntry]


@dataclass(frozen=True)
class LeaderboardView:
    """What /leaderboard shows: one page of a board and the caller's own entry (None: not ranked)."""

    page: LeaderboardPage
    caller: LeaderboardEntry | None


@dataclass(frozen=True)
class CouncilSeat:
    """A seat as /naib shows it: its number in seat order, its holder, their rank on the conviction board
    (None: not on the board this answer read), when their current term began, whether founding."""

    seat: int
    profile_id: UUID
    name: str
    rank: int | None
    seated_at: datetime
    founding: bool


@dataclass(frozen=True)
class FormerNaib:
    """A former member as /naib former shows them: their terms added up, how many, when the last ended."""

    profile_id: UUID
    name: str
    tenure: timedelta
    terms: int
    left_at: datetime


@dataclass(frozen=True)
class NaibCouncil:
    """What /naib shows: the seats in seat order, N and F, the first former members and how many there
    are, and `as_of`, the moment of the answer (tenures are counted to it)."""

    seats: list[CouncilSeat]
    naib: int
    fedaykin: int
    former: list[FormerNaib]
    former_count: int
    as_of: datetime
