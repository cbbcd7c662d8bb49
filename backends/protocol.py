"""The one Protocol every storage backend implements, its records and its errors.

The operations are primitive reads and writes; every formula of the domain (distances, thresholds,
waitlists, pages) lives once in `bot.domain.service`, above this Protocol.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Literal, Protocol, runtime_checkable
from uuid import UUID

Board = Literal["conviction", "activity"]
BOARDS: tuple[Board, ...] = ("conviction", "activity")

# Scores are exact at any magnitude a wallet can hold (and far beyond); past this, a value is a mistake.
MAX_SCORE_EXPONENT = 1000

EventType = Literal["token_hold", "nft_ownership", "activity_bonus", "manual_adjustment", "decay", "migration"]
EVENT_TYPES: tuple[EventType, ...] = (
    "token_hold",
    "nft_ownership",
    "activity_bonus",
    "manual_adjustment",
    "decay",
    "migration",
)


# --- errors -------------------------------------------------------------------------------------


class BackendError(Exception):
    """Base of every error a backend raises; the router decides fallback on these types."""


class BackendUnavailable(BackendError):
    """The store cannot be reached (connection refused, pool closed, node down)."""


class BackendConflict(BackendUnavailable):
    """The store refused the request for contention with another transaction (a serialization failure or a
    deadlock); the same request may succeed if tried again. A kind of unavailability, so whoever already
    treats the store as briefly away keeps doing so."""


class BackendTimeout(BackendError):
    """The store did not answer within its time budget."""


class NotConfigured(BackendError):
    """The community (guild) has no configuration in this store."""


class InvalidInput(BackendError):
    """A write or query was given values the domain does not allow."""


@dataclass
class LocalWait:
    """Whether a call is waiting, right now, for a resource of this process (a pooled connection) rather
    than for its store: a call cut off then says nothing about the store's health. A backend sets it
    through `LOCAL_WAIT` around such waits; whoever started the call reads it."""

    waiting: bool = False


LOCAL_WAIT: ContextVar[LocalWait | None] = ContextVar("sietch_local_wait", default=None)


# --- records ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Community:
    """One guild and its per-community thresholds (docs/domain.md, "Words": F, N, R, W)."""

    community_id: int
    name: str = ""
    fedaykin: int = 69
    naib: int = 7
    at_risk: int = 63
    waitlist_end: int = 100
    page_size: int = 10
    rate_limit_per_minute: int = 10

    def __post_init__(self) -> None:
        if not 1 <= self.naib <= self.fedaykin:
            raise InvalidInput(f"naib ({self.naib}) must be between 1 and fedaykin ({self.fedaykin})")
        if not 0 <= self.at_risk <= self.fedaykin:
            raise InvalidInput(f"at_risk ({self.at_risk}) must be between 0 and fedaykin ({self.fedaykin})")
        if self.waitlist_end < self.fedaykin:
            raise InvalidInput(f"waitlist_end ({self.waitlist_end}) must be >= fedaykin ({self.fedaykin})")
        if not 1 <= self.page_size <= 100:
            raise InvalidInput(f"page_size ({self.page_size}) must be between 1 and 100")
        if self.rate_limit_per_minute < 1:
            raise InvalidInput("rate_limit_per_minute must be at least 1")


@dataclass(frozen=True)
class Profile:
    """One member of one community."""

    profile_id: UUID
    community_id: int
    joined_at: datetime
    discord_user_id: int | None = None
    wallet_address: str | None = None
    nym: str | None = None


@dataclass(frozen=True)
class ScoreRecord:
    profile_id: UUID
    conviction: Decimal
    activity: Decimal
    updated_at: datetime

    def on(self, board: Board) -> Decimal:
        return self.conviction if board == "conviction" else self.activity


@dataclass(frozen=True)
class RankedEntry:
    """One row of a board: the profile at `rank` with its score on that board."""

    rank: int
    profile_id: UUID
    score: Decimal
    nym: str | None = None
    wallet_address: str | None = None


@dataclass(frozen=True)
class PositionRows:
    """What /position reads: the caller's profile (None when not a member), their conviction entry and
    the entries beside it (None when not ranked), and the entry at the rank asked for when they rank
    below it (None otherwise)."""

    profile: Profile | None
    above: RankedEntry | None = None
    me: RankedEntry | None = None
    below: RankedEntry | None = None
    entry: RankedEntry | None = None


@dataclass(frozen=True)
class ThresholdRows:
    """What /threshold reads: the members ranked on the conviction board, its entries at ranks
    first..last (fewer past the end), and the snapshot they come from."""

    ranked: int
    rows: list[RankedEntry]
    snapshot: SnapshotInfo


@dataclass(frozen=True)
class SnapshotInfo:
    """When a board's data was true and from which score version; live stores say `live=True`. A snapshot
    store also says when the snapshot itself was built (changes applied on top since move `as_of` on)."""

    as_of: datetime
    score_version: int
    live: bool
    built_at: datetime | None = None


@dataclass(frozen=True)
class EligibilityResult:
    profile_id: UUID
    rule_id: str
    eligible: bool
    balance: Decimal
    checked_at: datetime


@dataclass(frozen=True)
class ScoreUpdate:
    """A write to one board of one profile: `mode="set"` stores `value`, `mode="add"` adds it."""

    profile_id: UUID
    board: Board
    value: Decimal
    event_type: EventType
    mode: Literal["set", "add"] = "set"
    tx_hash: str | None = None
    at: datetime | None = None  # when it happened (the event's time in history); None: when applied

    def __post_init__(self) -> None:
        if self.board not in BOARDS:
            raise InvalidInput(f"unknown board {self.board!r}")
        if self.event_type not in EVENT_TYPES:
            raise InvalidInput(f"unknown event type {self.event_type!r}")
        if self.mode not in ("set", "add"):
            raise InvalidInput(f"unknown mode {self.mode!r}")
        if not isinstance(self.value, Decimal) or not self.value.is_finite():
            raise InvalidInput(f"score value must be a finite Decimal, got {self.value!r}")
        if self.value and not -MAX_SCORE_EXPONENT <= self.value.adjusted() <= MAX_SCORE_EXPONENT:
            raise InvalidInput(f"score value {self.value} is out of range (at most {MAX_SCORE_EXPONENT} digits)")


@dataclass(frozen=True)
class MemberState:
    """A member's full state at one score version: what a copy of the source of truth stores (`badges`:
    how many badges the member holds)."""

    profile: Profile
    conviction: Decimal
    activity: Decimal
    updated_at: datetime
    badges: int = 0


# The badge types (docs/domain.md, "Badges"); any other is refused, so a typo cannot start a new badge.
BADGE_TYPES: tuple[str, ...] = (
    "og",
    "veteran",
    "elder",
    "naib_ascended",
    "fedaykin_initiated",
    "usul_ascended",
    "first_maker",
    "desert_active",
    "sietch_engaged",
    "water_sharer",
    "former_naib",
    "founding_naib",
)
MAX_BADGE_REASON = 200

BadgeAction = Literal["award", "revoke"]
BADGE_ACTIONS: tuple[BadgeAction, ...] = ("award", "revoke")


@dataclass(frozen=True)
class BadgeChange:
    """An award or a revocation of one badge type for one member (docs/domain.md, "Badges")."""

    profile_id: UUID
    action: BadgeAction
    badge_type: str
    reason: str | None = None

    def __post_init__(self) -> None:
        if self.action not in BADGE_ACTIONS:
            raise InvalidInput(f"unknown badge action {self.action!r} (award or revoke)")
        problem = badge_type_problem(self.badge_type) or badge_reason_problem(self.reason)
        if problem:
            raise InvalidInput(problem)


def badge_type_problem(badge_type: str) -> str | None:
    """None when the type is one of BADGE_TYPES, else what is wrong with it."""
    if badge_type in BADGE_TYPES:
        return None
    return f"unknown badge type {badge_type!r} (one of: {', '.join(BADGE_TYPES)})"


def badge_reason_problem(reason: str | None) -> str | None:
    if reason is None:
        return None
    if "\n" in reason or "\r" in reason:
        return "a badge reason is one line"
    if len(reason) > MAX_BADGE_REASON:
        return f"a badge reason is at most {MAX_BADGE_REASON} characters, got {len(reason)}"
    return None


@dataclass(frozen=True)
class BadgeEntry:
    """A member holding badges, as the badge board lists them: `held` badges not revoked."""

    profile_id: UUID
    joined_at: datetime
    held: int
    nym: str | None = None
    wallet_address: str | None = None


@dataclass(frozen=True)
class BadgeFacts:
    """What the badge board says of its community: every member, and its launch (the earliest `joined_at`
    it ever had; None before its first member)."""

    members: int
    launched_at: datetime | None


@dataclass(frozen=True)
class Seat:
    """A naib seat's holder: their current term began at `seated_at`, their first at `first_seated_at`."""

    profile_id: UUID
    seated_at: datetime
    first_seated_at: datetime
    nym: str | None = None
    wallet_address: str | None = None


@dataclass(frozen=True)
class FormerSeat:
    """A member who held a seat and holds none now: their terms added up (`tenure`), how many, when the
    last one ended."""

    profile_id: UUID
    first_seated_at: datetime
    tenure: timedelta
    terms: int
    left_at: datetime
    nym: str | None = None
    wallet_address: str | None = None


# The former members a council keeps (and `get_council` gives at most): what /naib former shows.
FORMER_KEPT = 25


@dataclass(frozen=True)
class Council:
    """A community's naib council (docs/domain.md, "Naib seats"): the seats (in profile id order; seat
    order needs the convictions, read from the board), the first former members in their order and how
    many there are, the community's first seat time, and the score version of the last seat change."""

    seats: tuple[Seat, ...] = ()
    former: tuple[FormerSeat, ...] = ()
    former_count: int = 0
    first_seated_at: datetime | None = None
    version: int = 0


@dataclass(frozen=True)
class ScoreEvent:
    """One applied score update, as kept in score history."""

    event_id: int
    profile_id: UUID
    board: Board
    event_type: EventType
    delta: Decimal
    value_after: Decimal
    tx_hash: str | None
    created_at: datetime


@dataclass(frozen=True)
class TenantContext:
    """Who is asking, in which community; the first argument of every operation."""

    community_id: int
    user_id: int | None = None
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    community: Community | None = None
    # Per-request state a backend keeps so every read of one request sees the same snapshot.
    pins: dict[object, object] = field(default_factory=dict, compare=False, repr=False)

    @property
    def guild_id(self) -> int:
        return self.community_id

    def with_community(self, community: Community) -> TenantContext:
        return TenantContext(self.community_id, self.user_id, self.request_id, self.started_at, community, self.pins)


# --- the Protocol -------------------------------------------------------------------------------


@runtime_checkable
class Backend(Protocol):
    """What the hot-path service reads from a store. Ranks are 1-based, ordering per docs/domain.md, "Ordering".

    Score writes are not part of it: they go to the source of truth (`ScoreSource`) and reach the
    other stores from there (see `bot.replication.writes`).
    """

    name: str
    # Whether one request's independent reads may run side by side: a copy's reads share nothing, while
    # on PostgreSQL each would hold a pooled connection of its own (one per command is the budget).
    concurrent_reads: bool

    async def health(self) -> None:
        """Return when the store answers; raise BackendUnavailable otherwise."""

    async def get_community(self, ctx: TenantContext) -> Community | None: ...

    async def get_profile_by_user(self, ctx: TenantContext, discord_user_id: int) -> Profile | None: ...

    async def get_score(self, ctx: TenantContext, profile_id: UUID) -> ScoreRecord | None: ...

    async def get_scores(self, ctx: TenantContext, profile_ids: Sequence[UUID]) -> dict[UUID, ScoreRecord]: ...

    async def get_rank(self, ctx: TenantContext, board: Board, profile_id: UUID) -> RankedEntry | None:
        """The profile's entry on the board, or None when it is not ranked (score <= 0 or absent)."""

    async def get_neighbours(
        self, ctx: TenantContext, board: Board, profile_id: UUID
    ) -> tuple[RankedEntry | None, RankedEntry | None, RankedEntry | None]:
        """(the entry above, the profile's own entry, the entry below); all None when it is not ranked."""

    async def get_range(self, ctx: TenantContext, board: Board, first_rank: int, last_rank: int) -> list[RankedEntry]:
        """Entries with first_rank <= rank <= last_rank, in rank order; fewer (or none) past the end."""

    async def get_position_rows(self, ctx: TenantContext, discord_user_id: int, entry_rank: int) -> PositionRows:
        """/position's reads in one: `get_profile_by_user`, its conviction `get_neighbours`, and the
        conviction entry at `entry_rank` when the member ranks below it (`backends.position_rows`
        composes them; a store that can read them at once should)."""

    async def get_threshold_rows(self, ctx: TenantContext, first_rank: int, last_rank: int) -> ThresholdRows:
        """/threshold's reads in one: `count_ranked`, `get_range` of ranks first..last (none when fewer
        than `first_rank` are ranked) and `snapshot_info`, all of the conviction board
        (`backends.position_rows` composes them; a store that can read them at once should)."""

    async def count_ranked(self, ctx: TenantContext, board: Board) -> int: ...

    async def count_above(self, ctx: TenantContext, board: Board, score: Decimal, *, inclusive: bool = False) -> int:
        """The ranked members whose score is above `score` (at or above it when `inclusive`): ranks 1..n of
        the board, read from the same board as `get_range` and `get_rank`."""

    async def snapshot_info(self, ctx: TenantContext, board: Board) -> SnapshotInfo: ...

    async def get_eligibility(self, ctx: TenantContext, profile_id: UUID, rule_id: str) -> EligibilityResult | None:
        """A cached result younger than its time to live, or None."""

    async def put_eligibility(self, ctx: TenantContext, result: EligibilityResult, ttl_seconds: int) -> None: ...

    async def delete_eligibility(self, ctx: TenantContext, profile_id: UUID, rule_id: str | None = None) -> None:
        """Remove the cached result of one rule, or of every rule when rule_id is None."""

    async def recalculate(self, ctx: TenantContext, board: Board) -> int:
        """Rebuild what the board is read from; return the number of ranked entries."""

    async def get_badge_board(self, ctx: TenantContext, limit: int) -> list[BadgeEntry]:
        """The first `limit` members holding a badge: most badges first, then `joined_at`, then profile id."""

    async def get_badge_count(self, ctx: TenantContext, profile_id: UUID) -> int:
        """The badges the member holds (0 for a member with none, or no member)."""

    async def count_badge_holders_above(self, ctx: TenantContext, held: int) -> int:
        """The members holding more than `held` badges."""

    async def get_badge_facts(self, ctx: TenantContext) -> BadgeFacts: ...

    async def get_council(self, ctx: TenantContext, former_limit: int = FORMER_KEPT) -> Council:
        """The naib council, with at most `former_limit` (up to FORMER_KEPT) former members."""


@runtime_checkable
class ScoreSource(Protocol):
    """The store score updates are applied to first: the source of truth."""

    async def apply_score_updates(
        self, ctx: TenantContext, updates: Sequence[ScoreUpdate], *, enqueue: bool | None = None
    ) -> int:
        """Apply the updates in order, append them to score history; return the new score version.

        `enqueue` says whether copies are waiting for these updates (an outbox); None: the store decides.
        """

    async def apply_score_batches(self, batches: ScoreBatches, *, enqueue: bool | None = None) -> dict[int, int]:
        """`apply_score_updates` of every (community id, updates) batch, read lazily one after another, in
        one transaction; returns each community's new score version."""


@dataclass(frozen=True)
class BadgeOutcome:
    """What a list of badge changes did: the community's score version after it, and for each change
    whether it changed anything (an award of a held type, a revocation of one not held: no)."""

    score_version: int
    changed: list[bool]


@runtime_checkable
class BadgeSource(Protocol):
    """The store badge changes are applied to first: the source of truth."""

    async def apply_badge_changes(
        self, ctx: TenantContext, changes: Sequence[BadgeChange], *, enqueue: bool | None = None
    ) -> BadgeOutcome:
        """Apply the changes in order, all or none; `enqueue` as for score updates."""


@dataclass(frozen=True)
class HeldWrite:
    """A door's request taken while a bulk write had its community: durable, applied whole after the bulk
    write and after every request held before it (`HeldWrites`)."""

    write_id: int


@dataclass(frozen=True)
class HeldOutcome:
    """Where a held request stands: `state` queued, applied (with the score version it made) or refused
    (with why; nothing of it was written)."""

    write_id: int
    community_id: int
    kind: Literal["scores", "badges"]
    items: int
    state: Literal["queued", "applied", "refused"]
    queued_at: datetime
    done_at: datetime | None = None
    score_version: int | None = None
    error: str | None = None
    profiles: frozenset[UUID] = frozenset()  # the members a settled score write named


@runtime_checkable
class HeldWrites(Protocol):
    """A source of truth that can hold a door's request while a bulk write has its community, instead of
    making it wait for the bulk write's commit (`backends.postgres.held_writes`)."""

    async def apply_score_requests(
        self, community_id: int, requests: Sequence[Sequence[ScoreUpdate]], *, enqueue: bool | None = None
    ) -> int | list[HeldWrite]:
        """The requests' updates in one transaction (their new score version), or, while the community's
        writes are held, each request held whole (one `HeldWrite` each, in order) and nothing applied."""

    async def apply_or_hold_badges(
        self, ctx: TenantContext, changes: Sequence[BadgeChange], *, enqueue: bool | None = None
    ) -> BadgeOutcome | HeldWrite:
        """`BadgeSource.apply_badge_changes`, or the changes held whole while the community's writes are."""

    async def settle_held(self, community_id: int, *, enqueue: bool | None = None) -> list[HeldOutcome]:
        """Apply the community's oldest held requests in order, a bounded number in one transaction, each
        whole or refused alone; none while a bulk write has it. Returns what was settled."""

    async def held_communities(self) -> list[int]:
        """The communities with held requests waiting."""

    async def held_outcome(self, community_id: int, write_id: int) -> HeldOutcome | None:
        """A held request of the community, while its outcome is kept."""


# Score updates by community, from a list or from a stream read while the writes go on.
ScoreBatches = Iterable[tuple[int, Sequence["ScoreUpdate"]]] | AsyncIterable[tuple[int, Sequence["ScoreUpdate"]]]


async def each_batch(batches: ScoreBatches) -> AsyncIterator[tuple[int, Sequence[ScoreUpdate]]]:
    if isinstance(batches, AsyncIterable):
        async for batch in batches:
            yield batch
    else:
        for batch in batches:
            yield batch


def utcnow() -> datetime:
    return datetime.now(UTC)
