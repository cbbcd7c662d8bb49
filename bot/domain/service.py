"""The hot-path service: every formula of docs/domain.md, written once above the backend Protocol."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from functools import partial
from typing import Protocol
from uuid import UUID

from cachetools import TTLCache

from backends.exact import subtract
from backends.protocol import (
    FORMER_KEPT,
    Backend,
    Board,
    Community,
    EligibilityResult,
    InvalidInput,
    NotConfigured,
    Profile,
    RankedEntry,
    ScoreRecord,
    ScoreSource,
    ScoreUpdate,
    Seat,
    TenantContext,
    utcnow,
)
from bot.domain.badges import badge_rank, tenure_category
from bot.domain.council import is_founding
from bot.domain.eligibility import BalanceChecker, MemoryEligibilityCache, conviction_balance
from bot.domain.formatting import display_name, tier
from bot.domain.progression import BAND_TIERS, Band, ProgressionTier, band_of, bands, conviction_tier
from bot.domain.records import (
    BadgeBoard,
    BadgeBoardEntry,
    CouncilSeat,
    Eligibility,
    EligibilityRule,
    FormerNaib,
    LeaderboardEntry,
    LeaderboardPage,
    NaibCouncil,
    PositionData,
    ThresholdData,
    ThresholdView,
    TierBoard,
    TierEntry,
    WaitlistEntry,
)

MAX_PAGE_SIZE = 100
COMMUNITIES_KEPT = 100_000  # settings cached per process; the least recent go first past that


class ScoreWrites(Protocol):
    """The score-update path the service hands writes to (`bot.replication.writes.ScoreWriter`)."""

    async def apply(self, ctx: TenantContext, updates: Sequence[ScoreUpdate]) -> int: ...


class _SourceOnly:
    """Writes straight to the source of truth, with no copy waiting for them."""

    def __init__(self, source: ScoreSource) -> None:
        self._source = source

    async def apply(self, ctx: TenantContext, updates: Sequence[ScoreUpdate]) -> int:
        return await self._source.apply_score_updates(ctx, updates, enqueue=False)


class HotPathService:
    """Answers positions, thresholds, waitlists and boards from one backend's primitive reads."""

    def __init__(
        self,
        backend: Backend,
        *,
        eligibility_ttl_seconds: int = 300,
        balance_checker: BalanceChecker | None = None,
        writer: ScoreWrites | None = None,
        community_ttl_seconds: float = 0.0,
    ) -> None:
        """`writer` is the score-update path; a service over the source of truth may leave it out.

        `community_ttl_seconds` > 0 keeps each community's settings that long in this process: every
        command reads them first, and they change rarely.
        """
        self.backend = backend
        self._communities: TTLCache[int, Community] | None = (
            TTLCache(COMMUNITIES_KEPT, community_ttl_seconds) if community_ttl_seconds > 0 else None
        )
        if writer is None and isinstance(backend, ScoreSource):
            writer = _SourceOnly(backend)
        self._writer = writer
        self._eligibility_ttl = eligibility_ttl_seconds
        self._eligibility_cache = MemoryEligibilityCache(eligibility_ttl_seconds)
        self._balance = balance_checker or conviction_balance(backend)

    @property
    def backend_name(self) -> str:
        return self.backend.name

    async def open_context(self, guild_id: int, user_id: int | None = None) -> TenantContext:
        """The tenant context with the community's settings; NotConfigured for an unknown guild."""
        bare = TenantContext(community_id=guild_id, user_id=user_id)
        cached = self._communities.get(guild_id) if self._communities is not None else None
        if cached is not None:
            return bare.with_community(cached)
        community = await self.backend.get_community(bare)
        if community is None:  # not cached: a guild configured a moment later is served at once
            raise NotConfigured(f"community {guild_id} is not configured")
        if self._communities is not None:
            self._communities[guild_id] = community
        return bare.with_community(community)

    async def get_profile_for_user(self, ctx: TenantContext, discord_user_id: int) -> Profile | None:
        return await self.backend.get_profile_by_user(ctx, discord_user_id)

    async def get_score(self, ctx: TenantContext, profile_id: UUID) -> ScoreRecord | None:
        return await self.backend.get_score(ctx, profile_id)

    async def get_scores(self, ctx: TenantContext, profile_ids: Sequence[UUID]) -> dict[UUID, ScoreRecord]:
        return await self.backend.get_scores(ctx, profile_ids)

    async def get_position(self, ctx: TenantContext, profile_id: UUID) -> PositionData | None:
        f = _settings(ctx).fedaykin
        above, me, below = await self.backend.get_neighbours(ctx, "conviction", profile_id)
        if me is None:
            return None
        # Read after the member, not alongside: concurrent reads would hold two pooled connections per
        # command on PostgreSQL, and members inside the top F need no entry row.
        entry = _by_rank(await self.backend.get_range(ctx, "conviction", f, f)).get(f) if me.rank > f else None
        return _position(ctx, above, me, below, entry)

    async def get_position_of_user(
        self, ctx: TenantContext, discord_user_id: int
    ) -> tuple[Profile | None, PositionData | None]:
        """The caller's profile and position (None, None when not a member; a profile and None when not
        ranked), from the backend's one read of what /position shows."""
        rows = await self.backend.get_position_rows(ctx, discord_user_id, _settings(ctx).fedaykin)
        if rows.profile is None or rows.me is None:
            return rows.profile, None
        return rows.profile, _position(ctx, rows.above, rows.me, rows.below, rows.entry)

    async def get_threshold(self, ctx: TenantContext) -> ThresholdData:
        return (await self.get_threshold_view(ctx, 0)).threshold

    async def get_waitlist(self, ctx: TenantContext, limit: int = 5) -> list[WaitlistEntry]:
        settings = _settings(ctx)
        f, last = settings.fedaykin, min(settings.fedaykin + max(limit, 0), settings.waitlist_end)
        if last <= f:
            return []
        return _waitlist(_by_rank(await self.backend.get_range(ctx, "conviction", f, last)), f, last)

    async def get_threshold_view(self, ctx: TenantContext, waitlist_limit: int) -> ThresholdView:
        """The entry bar and the first `waitlist_limit` of the waiting pool, from the backend's one read of
        the ranked count and the ranks F..F+limit (F+1 at least: the gap to entry)."""
        settings = _settings(ctx)
        f, w = settings.fedaykin, settings.waitlist_end
        last = min(f + max(waitlist_limit, 0), w)
        read = await self.backend.get_threshold_rows(ctx, f, max(f + 1, last))
        ranked, rows, info = read.ranked, _by_rank(read.rows), read.snapshot
        entry, first_waiting = rows.get(f), rows.get(f + 1)
        threshold = ThresholdData(
            ranked=ranked,
            eligible_count=min(ranked, f),
            waitlist_count=min(max(ranked - f, 0), w - f),
            entry_threshold=entry.score if entry else Decimal(0),
            gap_to_entry=subtract(entry.score, first_waiting.score) if entry and first_waiting else None,
            as_of=utcnow() if info.live else info.as_of,
            fedaykin=f,
            waitlist_end=w,
        )
        return ThresholdView(threshold, _waitlist(rows, f, last))

    async def get_leaderboard(
        self, ctx: TenantContext, board: Board, page: int = 1, page_size: int | None = None
    ) -> LeaderboardPage:
        size = page_size if page_size is not None else _settings(ctx).page_size
        if page < 1:
            raise InvalidInput(f"page must be 1 or more, got {page}")
        if not 1 <= size <= MAX_PAGE_SIZE:
            raise InvalidInput(f"page size must be between 1 and {MAX_PAGE_SIZE}, got {size}")
        total = await self.backend.count_ranked(ctx, board)
        first = (page - 1) * size + 1
        rows = await self.backend.get_range(ctx, board, first, first + size - 1) if first <= total else []
        return LeaderboardPage(
            board=board,
            entries=[_entry(row) for row in rows],
            page=page,
            page_size=size,
            total=total,
            has_more=page * size < total,
        )

    async def get_top(self, ctx: TenantContext, board: Board, limit: int) -> list[LeaderboardEntry]:
        if limit < 1:
            return []
        return [_entry(row) for row in await self.backend.get_range(ctx, board, 1, limit)]

    async def get_rank(self, ctx: TenantContext, profile_id: UUID, board: Board) -> LeaderboardEntry | None:
        row = await self.backend.get_rank(ctx, board, profile_id)
        return _entry(row) if row else None

    async def _together[T](self, reads: Sequence[Callable[[], Awaitable[T]]]) -> list[T]:
        """One request's independent reads: side by side where the backend takes that (`concurrent_reads`),
        else one after another. Started lazily, so a failure leaves no read unawaited."""
        if self.backend.concurrent_reads:
            return list(await asyncio.gather(*(read() for read in reads)))
        return [await read() for read in reads]

    async def _both[A, B](self, first: Callable[[], Awaitable[A]], second: Callable[[], Awaitable[B]]) -> tuple[A, B]:
        """Two independent reads, as `_together` runs them."""
        if self.backend.concurrent_reads:
            return await asyncio.gather(first(), second())
        return await first(), await second()

    async def get_tier_board(self, ctx: TenantContext, profile_id: UUID | None, limit: int = 10) -> TierBoard:
        """The tier progression board's first `limit` entries and the caller's own entry when they are on it
        (docs/domain.md, "Tier progression"): each band's first `limit` members, merged by (distance, rank)."""
        found = await self._tier_bands(ctx)
        shown = [band for band in found if band.size > 0]
        ranges = await self._together(
            [
                partial(self.backend.get_range, ctx, "conviction", band.after + 1, band.after + min(limit, band.size))
                for band in shown
            ]
        )
        heads: list[tuple[Decimal, int, Band, RankedEntry]] = [
            (band.distance(row.score), row.rank, band, row)
            for band, rows in zip(shown, ranges, strict=True)
            for row in rows
        ]
        heads.sort(key=lambda head: (head[0], head[1]))
        entries = [_tier_entry(i, band, row) for i, (_, _, band, row) in enumerate(heads[:limit], start=1)]
        caller = None
        if profile_id is not None:
            caller = next((e for e in entries if e.profile_id == profile_id), None)
            if caller is None:
                caller = await self._tier_entry_of(ctx, found, profile_id)
        return TierBoard(entries, caller, sum(band.size for band in found))

    async def _tier_bands(self, ctx: TenantContext) -> list[Band]:
        fedaykin = _settings(ctx).fedaykin
        ranked = await self.backend.count_ranked(ctx, "conviction")
        if ranked <= fedaykin:
            return []  # everyone ranked holds a rank tier
        thresholds = [threshold for _, _, _, threshold in BAND_TIERS]
        above = partial(self.backend.count_above, ctx, "conviction", inclusive=True)
        counts = await self._together([partial(above, threshold) for threshold in thresholds])
        return bands(fedaykin, ranked, dict(zip(thresholds, counts, strict=True)))

    async def _tier_entry_of(self, ctx: TenantContext, found: list[Band], profile_id: UUID) -> TierEntry | None:
        """The member's entry on the tier board, ranked 1 + the members before them in (distance, rank) order:
        in their own band those of a lower rank, in another band those within their distance of its next
        threshold."""
        me = await self.backend.get_rank(ctx, "conviction", profile_id)
        band = band_of(found, me.rank) if me is not None else None
        if me is None or band is None:
            return None
        distance = band.distance(me.score)
        ahead = me.rank - band.after - 1
        counted: list[Band] = []
        reads = []
        for other in found:
            if other is band or other.size == 0:
                continue
            # Equal distances across bands are different scores: the higher band's member ranks first.
            inclusive = other.threshold > band.threshold
            bound = subtract(other.threshold, distance)
            if bound < other.floor:
                ahead += other.size
            elif bound < other.threshold:
                counted.append(other)
                reads.append(partial(self.backend.count_above, ctx, "conviction", bound, inclusive=inclusive))
        for other, above in zip(counted, await self._together(reads), strict=True):
            ahead += min(max(above, other.after), other.last) - other.after
        return _tier_entry(1 + ahead, band, me)

    async def get_badge_board(self, ctx: TenantContext, profile_id: UUID | None, limit: int = 10) -> BadgeBoard:
        """The badge board's first `limit` entries and the caller's rank when they hold a badge and are not
        among them (docs/domain.md, "Badges"). Each entry's progression tier comes from one read of
        positions 1..F and the others' convictions; tenure categories are taken at the request's moment."""
        rows = await self.backend.get_badge_board(ctx, limit)
        facts, tiers = await self._both(
            partial(self.backend.get_badge_facts, ctx),
            partial(self._progression_tiers, ctx, [row.profile_id for row in rows]),
        )
        entries: list[BadgeBoardEntry] = []
        for i, row in enumerate(rows):
            # The entries before with more badges are all the members with more: the board is in count order.
            rank = entries[-1].rank if entries and entries[-1].held == row.held else badge_rank(i)
            entries.append(
                BadgeBoardEntry(
                    rank=rank,
                    profile_id=row.profile_id,
                    name=display_name(row.nym, row.wallet_address),
                    held=row.held,
                    tier=tiers[row.profile_id],
                    tenure=tenure_category(row.joined_at, facts.launched_at, ctx.started_at),
                )
            )
        caller_rank = None
        if profile_id is not None and all(e.profile_id != profile_id for e in entries):
            caller_rank = await self.get_badge_rank(ctx, profile_id)
        return BadgeBoard(entries, caller_rank, facts.members)

    async def get_badge_rank(self, ctx: TenantContext, profile_id: UUID) -> int | None:
        """The member's rank on the badge board (1 + the members holding more), None when they hold none."""
        held = await self.backend.get_badge_count(ctx, profile_id)
        return badge_rank(await self.backend.count_badge_holders_above(ctx, held)) if held > 0 else None

    async def get_council(self, ctx: TenantContext) -> NaibCouncil:
        """The naib council (docs/domain.md, "Naib seats"): seats in seat order with their holders' ranks,
        from one read of positions 1..F (every seat holder is in it after a settling; one missing from an
        older snapshot is looked up alone), and the first former members; tenures count to the request's
        moment."""
        settings = _settings(ctx)
        council, rows = await self._both(
            partial(self.backend.get_council, ctx, FORMER_KEPT),
            partial(self.backend.get_range, ctx, "conviction", 1, settings.fedaykin),
        )
        head: dict[UUID, RankedEntry] = {row.profile_id: row for row in rows}
        for seat in council.seats:
            if seat.profile_id not in head and (row := await self.backend.get_rank(ctx, "conviction", seat.profile_id)):
                head[seat.profile_id] = row

        def order(seat: Seat) -> tuple[int, Decimal, datetime, int]:
            row = head.get(seat.profile_id)
            if row is None:  # not on the board this answer read: after every ranked holder
                return (1, Decimal(0), seat.seated_at, 0)
            return (0, row.score.copy_negate(), seat.seated_at, row.rank)

        seats = [
            CouncilSeat(
                seat=i,
                profile_id=seat.profile_id,
                name=display_name(seat.nym, seat.wallet_address),
                rank=row.rank if (row := head.get(seat.profile_id)) else None,
                seated_at=seat.seated_at,
                founding=is_founding(seat.first_seated_at, council.first_seated_at),
            )
            for i, seat in enumerate(sorted(council.seats, key=order), start=1)
        ]
        former = [
            FormerNaib(f.profile_id, display_name(f.nym, f.wallet_address), f.tenure, f.terms, f.left_at)
            for f in council.former
        ]
        return NaibCouncil(seats, settings.naib, settings.fedaykin, former, council.former_count, ctx.started_at)

    async def _progression_tiers(self, ctx: TenantContext, ids: list[UUID]) -> dict[UUID, ProgressionTier]:
        """Each member's progression tier: `naib` for a seat holder, `fedaykin` at the other positions
        1..F, else by conviction. The seats are read only when one of the members is in 1..F (every seat
        holder is)."""
        if not ids:
            return {}
        settings = _settings(ctx)
        head = {
            row.profile_id: row.rank for row in await self.backend.get_range(ctx, "conviction", 1, settings.fedaykin)
        }
        rest = [pid for pid in ids if pid not in head]
        scores: dict[UUID, ScoreRecord] = {}
        seated: set[UUID] = set()

        async def read_scores() -> None:
            scores.update(await self.backend.get_scores(ctx, rest))

        async def read_seats() -> None:
            seated.update(seat.profile_id for seat in (await self.backend.get_council(ctx, 0)).seats)

        await self._together([*([read_scores] if rest else []), *([read_seats] if len(rest) < len(ids) else [])])
        tiers: dict[UUID, ProgressionTier] = {}
        for pid in ids:
            if pid in head:
                tiers[pid] = "naib" if pid in seated else "fedaykin"
            else:
                score = scores.get(pid)
                tiers[pid] = conviction_tier(score.conviction) if score is not None else "fremen"
        return tiers

    async def check_eligibility(self, ctx: TenantContext, profile_id: UUID, rule: EligibilityRule) -> Eligibility:
        cached = self._eligibility_cache.get(ctx.community_id, profile_id, rule.rule_id)
        if cached is None:
            cached = await self.backend.get_eligibility(ctx, profile_id, rule.rule_id)
            if cached is not None:
                self._eligibility_cache.put(ctx.community_id, cached)
        if cached is not None:
            return Eligibility(cached.eligible, cached.balance, cached.checked_at, from_cache=True)
        balance = await self._balance(ctx, profile_id, rule)
        result = EligibilityResult(profile_id, rule.rule_id, balance >= rule.minimum_balance, balance, utcnow())
        await self.backend.put_eligibility(ctx, result, self._eligibility_ttl)
        self._eligibility_cache.put(ctx.community_id, result)
        return Eligibility(result.eligible, result.balance, result.checked_at, from_cache=False)

    def forget_eligibility(self, ctx: TenantContext, profile_ids: Iterable[UUID]) -> None:
        """Drop this process's cached results of the members (the write that changed their scores dropped
        the backends' own)."""
        self._eligibility_cache.forget(ctx.community_id, profile_ids)

    async def invalidate_eligibility(self, ctx: TenantContext, profile_id: UUID, rule_id: str | None = None) -> None:
        self._eligibility_cache.delete(ctx.community_id, profile_id, rule_id)
        await self.backend.delete_eligibility(ctx, profile_id, rule_id)

    async def recalculate(self, ctx: TenantContext, board: Board) -> int:
        return await self.backend.recalculate(ctx, board)

    async def apply_score_updates(self, ctx: TenantContext, updates: Sequence[ScoreUpdate]) -> int:
        """Write the updates; cached eligibility of every touched profile is stale afterwards."""
        if self._writer is None:
            raise InvalidInput(f"the {self.backend.name} service has no score-update path")
        version = await self._writer.apply(ctx, updates)
        for profile_id in {u.profile_id for u in updates}:
            await self.invalidate_eligibility(ctx, profile_id)
        return version


def _settings(ctx: TenantContext) -> Community:
    if ctx.community is None:
        raise NotConfigured(f"community {ctx.community_id} has no settings in this context")
    return ctx.community


def _by_rank(rows: Sequence[RankedEntry]) -> dict[int, RankedEntry]:
    return {row.rank: row for row in rows}


def _tier_entry(rank: int, band: Band, row: RankedEntry) -> TierEntry:
    return TierEntry(
        rank=rank,
        profile_id=row.profile_id,
        name=display_name(row.nym, row.wallet_address),
        conviction=row.score,
        tier=band.tier,
        next_tier=band.next_tier,
        distance=band.distance(row.score),
    )


def _entry(row: RankedEntry) -> LeaderboardEntry:
    return LeaderboardEntry(
        rank=row.rank,
        profile_id=row.profile_id,
        nym=display_name(row.nym, row.wallet_address),
        score=row.score,
        tier=tier(row.rank),
    )


def _position(
    ctx: TenantContext,
    above: RankedEntry | None,
    me: RankedEntry,
    below: RankedEntry | None,
    entry: RankedEntry | None,
) -> PositionData:
    """The position the member's rows give (docs/domain.md, "/position")."""
    settings = _settings(ctx)
    f = settings.fedaykin
    pos, score = me.rank, me.score
    return PositionData(
        position=pos,
        conviction=score,
        distance_to_above=subtract(above.score, score) if above else None,
        distance_to_below=subtract(score, below.score) if below else None,
        distance_to_entry=subtract(entry.score, score) if entry is not None else None,
        is_naib=pos <= settings.naib,
        is_fedaykin=pos <= f,
        is_at_risk=settings.at_risk < pos <= f,
    )


def _waitlist(rows: dict[int, RankedEntry], f: int, last: int) -> list[WaitlistEntry]:
    """Ranks F+1..last with their distance to the entry (rank F); none without the entry row."""
    entry = rows.get(f)
    if entry is None:
        return []
    return [
        WaitlistEntry(
            position=row.rank,
            profile_id=row.profile_id,
            name=display_name(row.nym, row.wallet_address),
            conviction=row.score,
            distance_to_entry=subtract(entry.score, row.score),
        )
        for rank, row in sorted(rows.items())
        if f < rank <= last
    ]
