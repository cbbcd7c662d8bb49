"""The in-memory backend: `backends.protocol.Backend` over a `MemoryReplica`, read as ScyllaBackend reads.

A reference implementation and test oracle: given the same copy writes, every answer is the Scylla
backend's. Boards come from snapshots pinned once per request; communities, profiles and scores come
from the live copy tables; eligibility is a cache with a time to live.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING
from uuid import UUID

from backends.memory.replica import MemoryReplica, Snapshot, as_utc
from backends.position_rows import compose_position_rows, compose_threshold_rows
from backends.protocol import (
    BOARDS,
    FORMER_KEPT,
    BadgeEntry,
    BadgeFacts,
    Board,
    Community,
    Council,
    EligibilityResult,
    InvalidInput,
    PositionRows,
    Profile,
    RankedEntry,
    ScoreRecord,
    SnapshotInfo,
    TenantContext,
    ThresholdRows,
    utcnow,
)

if TYPE_CHECKING:
    from backends.copies import CopyBackend

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class _Pin:
    """A request's pin of one board; keyed by backend too, so two memory backends can share a context."""

    backend: object
    board: Board


class MemoryBackend:
    """Implements `backends.copies.CopyBackend` in memory; `replica` is what the copy pipeline writes.

    `clock` (seconds, monotonic) times eligibility and history out; `now` stamps snapshots.
    """

    name = "memory"
    concurrent_reads = True

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, now: Callable[[], datetime] = utcnow) -> None:
        self.replica = MemoryReplica(clock=clock, now=now)
        self._clock = clock
        self._eligibility: dict[tuple[int, UUID], dict[str, tuple[float, EligibilityResult]]] = {}

    async def health(self) -> None:
        return None

    async def get_community(self, ctx: TenantContext) -> Community | None:
        return self.replica.community(ctx.community_id)

    async def get_profile_by_user(self, ctx: TenantContext, discord_user_id: int) -> Profile | None:
        profile_id = self.replica.profile_id_of(ctx.community_id, discord_user_id)
        state = None if profile_id is None else self.replica.state(ctx.community_id, profile_id)
        # The user may since have been written under another id; the member's own state decides.
        if state is None or state.profile.discord_user_id != discord_user_id:
            return None
        return state.profile

    async def get_score(self, ctx: TenantContext, profile_id: UUID) -> ScoreRecord | None:
        return (await self.get_scores(ctx, [profile_id])).get(profile_id)

    async def get_scores(self, ctx: TenantContext, profile_ids: Sequence[UUID]) -> dict[UUID, ScoreRecord]:
        found: dict[UUID, ScoreRecord] = {}
        for pid in profile_ids:
            state = self.replica.state(ctx.community_id, pid)
            if state is not None:
                found[pid] = ScoreRecord(pid, state.conviction, state.activity, state.updated_at)
        return found

    def _pinned(self, ctx: TenantContext, board: Board) -> Snapshot | None:
        """The board's snapshot, fixed at the request's first read of it so every read sees one board."""
        if board not in BOARDS:
            raise InvalidInput(f"unknown board {board!r}")
        key = _Pin(self, board)
        if key not in ctx.pins:
            ctx.pins[key] = self.replica.snapshot(ctx.community_id, board)
        pinned = ctx.pins[key]
        assert pinned is None or isinstance(pinned, Snapshot)
        return pinned

    async def get_rank(self, ctx: TenantContext, board: Board, profile_id: UUID) -> RankedEntry | None:
        snap = self._pinned(ctx, board)
        return None if snap is None else snap.by_profile.get(profile_id)

    async def get_neighbours(
        self, ctx: TenantContext, board: Board, profile_id: UUID
    ) -> tuple[RankedEntry | None, RankedEntry | None, RankedEntry | None]:
        me = await self.get_rank(ctx, board, profile_id)
        if me is None:
            return None, None, None
        around = {e.rank: e for e in await self.get_range(ctx, board, me.rank - 1, me.rank + 1)}
        return around.get(me.rank - 1), me, around.get(me.rank + 1)

    async def get_range(self, ctx: TenantContext, board: Board, first_rank: int, last_rank: int) -> list[RankedEntry]:
        snap = self._pinned(ctx, board)
        if snap is None:
            return []
        first, last = max(first_rank, 1), min(last_rank, len(snap.entries))
        return list(snap.entries[first - 1 : last]) if first <= last else []

    async def get_position_rows(self, ctx: TenantContext, discord_user_id: int, entry_rank: int) -> PositionRows:
        return await compose_position_rows(self, ctx, discord_user_id, entry_rank)

    async def get_threshold_rows(self, ctx: TenantContext, first_rank: int, last_rank: int) -> ThresholdRows:
        return await compose_threshold_rows(self, ctx, first_rank, last_rank)

    async def count_ranked(self, ctx: TenantContext, board: Board) -> int:
        snap = self._pinned(ctx, board)
        return 0 if snap is None else len(snap.entries)

    async def count_above(self, ctx: TenantContext, board: Board, score: Decimal, *, inclusive: bool = False) -> int:
        snap = self._pinned(ctx, board)
        if snap is None:
            return 0
        return sum(1 for e in snap.entries if e.score > score or (inclusive and e.score == score))

    async def snapshot_info(self, ctx: TenantContext, board: Board) -> SnapshotInfo:
        snap = self._pinned(ctx, board)
        if snap is None:
            return SnapshotInfo(as_of=EPOCH, score_version=-1, live=False)
        return SnapshotInfo(as_of=snap.built_at, score_version=snap.score_version, live=False, built_at=snap.built_at)

    async def get_eligibility(self, ctx: TenantContext, profile_id: UUID, rule_id: str) -> EligibilityResult | None:
        rules = self._eligibility.get((ctx.community_id, profile_id), {})
        cached = rules.get(rule_id)
        if cached is None:
            return None
        expires, result = cached
        if self._clock() >= expires:
            del rules[rule_id]
            return None
        return result

    async def put_eligibility(self, ctx: TenantContext, result: EligibilityResult, ttl_seconds: int) -> None:
        # ttl_seconds <= 0 is never served (as in PostgreSQL; CQL would read `USING TTL 0` as "keep forever").
        stored = replace(result, checked_at=as_utc(result.checked_at))
        rules = self._eligibility.setdefault((ctx.community_id, result.profile_id), {})
        rules[result.rule_id] = (self._clock() + ttl_seconds, stored)

    async def delete_eligibility(self, ctx: TenantContext, profile_id: UUID, rule_id: str | None = None) -> None:
        if rule_id is None:
            self._eligibility.pop((ctx.community_id, profile_id), None)
        else:
            self._eligibility.get((ctx.community_id, profile_id), {}).pop(rule_id, None)

    async def recalculate(self, ctx: TenantContext, board: Board) -> int:
        if board not in BOARDS:
            raise InvalidInput(f"unknown board {board!r}")
        ranked = self.replica.rebuild_board(ctx.community_id, board)
        ctx.pins.pop(_Pin(self, board), None)  # the request that rebuilt the board reads what it built
        return ranked

    async def get_badge_board(self, ctx: TenantContext, limit: int) -> list[BadgeEntry]:
        return self.replica.badge_holders(ctx.community_id)[: max(limit, 0)]

    async def get_badge_count(self, ctx: TenantContext, profile_id: UUID) -> int:
        state = self.replica.state(ctx.community_id, profile_id)
        return 0 if state is None else state.badges

    async def count_badge_holders_above(self, ctx: TenantContext, held: int) -> int:
        histogram, _ = self.replica.badge_counts(ctx.community_id)
        return sum(members for count, members in histogram.items() if count > held)

    async def get_badge_facts(self, ctx: TenantContext) -> BadgeFacts:
        return self.replica.badge_counts(ctx.community_id)[1]

    async def get_council(self, ctx: TenantContext, former_limit: int = FORMER_KEPT) -> Council:
        council = self.replica.council(ctx.community_id)
        return replace(council, former=council.former[: max(0, min(former_limit, FORMER_KEPT))])


if TYPE_CHECKING:
    # mypy checks the class against both Protocols here (isinstance checks only the names at runtime).
    _conforms: CopyBackend = MemoryBackend()
