"""The ScyllaDB backend: keyed reads of versioned leaderboard snapshots, independent of community size."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

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
)
from backends.scylla.live import LiveChanges
from backends.scylla.pacing import SHARE, RebuildPace
from backends.scylla.replica import ScyllaReplica
from backends.scylla.session import CqlSession
from backends.scylla.snapshots import KEEP_SUPERSEDED_SECONDS, SnapshotVersion, SnapshotWriter, current_version
from backends.scylla.tables import SCORE_SHARDS, Tables, from_micros, score_shard

log = logging.getLogger(__name__)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# How long a process reuses a board's snapshot pointer (twice as long while another request refreshes it).
# Readers may trail a rebuild by that much, which is safe because the previous version is only deleted by
# the rebuild after next (see snapshots.py).
POINTER_TTL_SECONDS = 1.0
# A new snapshot is served once this process has placed the changes logged while it was built (two reads
# per changed member: seconds after a long rebuild of a busy board). Readers wait this long for that, then
# keep the previous snapshot with its changes meanwhile.
FLIP_WAIT_SECONDS = 0.5
# ...but only while the previous one is surely kept: a rebuild deletes a version KEEP_SUPERSEDED_SECONDS
# after it was superseded at the earliest.
FLIP_LIMIT = timedelta(seconds=KEEP_SUPERSEDED_SECONDS / 2)
# The tie-breaking part of a board key (joined_at in microseconds, a bigint; the profile id, 128 bits)
# before and after every member's.
_BEFORE_ANY = (-(2**63) - 1, -1)
_AFTER_ANY = (2**63, 2**128)


@dataclass(frozen=True)
class _Pin:
    board: Board


class ScyllaBackend:
    """Implements `backends.protocol.Backend` on a CQL session; see schema/001_initial.cql."""

    name = "scylla"
    concurrent_reads = True

    def __init__(
        self, cql: CqlSession, keyspace: str, *, pointer_ttl: float = POINTER_TTL_SECONDS, busy_share: float = SHARE
    ) -> None:
        """`busy_share`: the share of the time a board whose build is dear may spend being rebuilt (pacing.py)."""
        self.cql = cql
        self.t = Tables(keyspace)
        self.snapshots = SnapshotWriter(cql, self.t)
        self.replica = ScyllaReplica(cql, self.t, self._rebuild_board, RebuildPace(cql, self.t, share=busy_share))
        self.pointer_ttl = pointer_ttl
        # Not a TTL cache from a library: "never step back" below needs the entry after it expired.
        self._pointers: dict[tuple[int, Board], tuple[float, SnapshotVersion | None]] = {}
        self._refreshing: dict[tuple[int, Board], asyncio.Future[SnapshotVersion | None]] = {}
        self._placing: dict[tuple[int, Board], tuple[int, asyncio.Future[SnapshotVersion]]] = {}
        self.live = LiveChanges(cql, self.t)

    async def health(self) -> None:
        await self.cql.execute("SELECT release_version FROM system.local")

    async def get_community(self, ctx: TenantContext) -> Community | None:
        rows = await self.cql.execute(
            f"SELECT community_id, name, fedaykin, naib, at_risk, waitlist_end, page_size, rate_limit_per_minute"
            f" FROM {self.t.communities} WHERE community_id = ?",
            (ctx.community_id,),
        )
        if not rows:
            return None
        r = rows[0]
        return Community(
            r.community_id,
            r.name or "",
            r.fedaykin,
            r.naib,
            r.at_risk,
            r.waitlist_end,
            r.page_size,
            r.rate_limit_per_minute,
        )

    async def get_profile_by_user(self, ctx: TenantContext, discord_user_id: int) -> Profile | None:
        rows = await self.cql.execute(
            f"SELECT profile_id FROM {self.t.profiles_by_user} WHERE community_id = ? AND discord_user_id = ?",
            (ctx.community_id, discord_user_id),
        )
        if not rows:
            return None
        profile_id = rows[0].profile_id
        found = await self._score_rows(ctx, [profile_id])
        row = found.get(profile_id)
        if row is None or row.discord_user_id != discord_user_id:
            return None
        return Profile(
            profile_id,
            ctx.community_id,
            from_micros(row.joined_at_us),
            row.discord_user_id,
            row.wallet_address,
            row.nym,
        )

    async def get_score(self, ctx: TenantContext, profile_id: UUID) -> ScoreRecord | None:
        return (await self.get_scores(ctx, [profile_id])).get(profile_id)

    async def get_scores(self, ctx: TenantContext, profile_ids: Sequence[UUID]) -> dict[UUID, ScoreRecord]:
        rows = await self._score_rows(ctx, profile_ids)
        return {
            pid: ScoreRecord(pid, r.conviction, r.activity, (r.updated_at or EPOCH).replace(tzinfo=UTC))
            for pid, r in rows.items()
        }

    async def _score_rows(self, ctx: TenantContext, profile_ids: Sequence[UUID]) -> dict[UUID, Any]:
        by_shard: dict[int, list[UUID]] = defaultdict(list)
        for pid in set(profile_ids):
            by_shard[score_shard(pid)].append(pid)
        query = (
            f"SELECT profile_id, discord_user_id, wallet_address, nym, joined_at_us, conviction, activity, updated_at,"
            f" badges FROM {self.t.scores} WHERE community_id = ? AND shard = ? AND profile_id IN ?"
        )
        results = await asyncio.gather(
            *(self.cql.execute(query, (ctx.community_id, shard, ids)) for shard, ids in by_shard.items())
        )
        return {row.profile_id: row for rows in results for row in rows}

    async def _pinned(self, ctx: TenantContext, board: Board) -> SnapshotVersion | None:
        """The board's live snapshot, fixed once per request so every read of it sees one version.

        The pin is a shared task, so reads of one request issued concurrently still agree on the version.
        """
        if board not in BOARDS:
            raise InvalidInput(f"unknown board {board!r}")
        key = _Pin(board)
        pin = ctx.pins.get(key)
        if pin is None:
            task = asyncio.ensure_future(self._live_version(ctx.community_id, board))
            # a request cancelled mid-read must not leave an exception nobody retrieves
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
            pin = ctx.pins[key] = task
        assert isinstance(pin, asyncio.Future)
        pinned = await pin
        assert pinned is None or isinstance(pinned, SnapshotVersion)
        return pinned

    async def _live_version(self, community_id: int, board: Board) -> SnapshotVersion | None:
        """The pointer and version row with the changes since, from this process's cache when younger than
        `pointer_ttl`; one refresh at a time per board, which the request that starts it waits for (and
        any request once the cache is twice that old)."""
        key = (community_id, board)
        cached = self._pointers.get(key)
        age = time.monotonic() - cached[0] if cached is not None else math.inf
        if cached is not None and age < self.pointer_ttl:
            return cached[1]
        refresh = self._refreshing.get(key)
        if refresh is None:
            refresh = self._refreshing[key] = asyncio.ensure_future(self._refresh(community_id, board))
            refresh.add_done_callback(lambda done: self._refreshing.pop(key, None))
            refresh.add_done_callback(lambda done: done.cancelled() or done.exception())
        elif cached is not None and age < 2 * self.pointer_ttl:
            # Another request is refreshing (under writes that places the changes since: a second or more
            # on a busy node); the requests meanwhile keep the view it replaces for up to one more ttl.
            return cached[1]
        return await asyncio.shield(refresh)  # a request cancelled meanwhile leaves the refresh to the others

    async def _refresh(self, community_id: int, board: Board) -> SnapshotVersion | None:
        key = (community_id, board)
        now = time.monotonic()
        live = await current_version(self.cql, self.t, community_id, board, with_head=True)
        newest = self._pointers.get(key)
        served = newest[1] if newest is not None else None
        if served is not None and (live is None or live.version < served.version):
            return served  # a slower concurrent read fetched an older pointer: never step back
        if live is not None:
            if served is not None and live.version > served.version:
                live = await self._flip(community_id, board, live, served)
            else:
                live = await self.live.lay_over(community_id, board, live)
            self.live.forget_before(community_id, board, live.version)
        self._pointers[key] = (now, live)
        return live

    async def _flip(
        self, community_id: int, board: Board, live: SnapshotVersion, served: SnapshotVersion
    ) -> SnapshotVersion:
        """The new snapshot `live` with its changes placed, once that is done (waited for FLIP_WAIT_SECONDS
        when it is first seen); until then `served`, the previous one, with the changes logged since."""
        key = (community_id, board)
        placing = self._placing.get(key)
        if placing is None or placing[0] != live.version:
            if placing is not None:
                placing[1].cancel()  # an even newer version came meanwhile
            placed = asyncio.ensure_future(self.live.lay_over(community_id, board, live))
            placed.add_done_callback(lambda done: done.cancelled() or done.exception())
            placing = self._placing[key] = (live.version, placed)
            await asyncio.wait({placed}, timeout=FLIP_WAIT_SECONDS)  # once: later refreshes only look
        task = placing[1]
        if task.done() or datetime.now(UTC) - live.built_at > FLIP_LIMIT:
            del self._placing[key]
            return await task
        return await self.live.lay_over(community_id, board, served)

    async def get_rank(self, ctx: TenantContext, board: Board, profile_id: UUID) -> RankedEntry | None:
        snap = await self._pinned(ctx, board)
        if snap is None:
            return None
        if snap.overlay is not None and profile_id in snap.overlay.changed:
            return snap.overlay.changed_entry(profile_id)
        rows = await self.cql.execute(
            f"SELECT rank, score, nym, wallet_address FROM {self.t.by_profile}"
            f" WHERE community_id = ? AND board = ? AND version = ? AND bucket = ? AND profile_id = ?",
            (ctx.community_id, board, snap.version, snap.profile_bucket(profile_id), profile_id),
        )
        if not rows:
            return None
        r = rows[0]
        rank = snap.overlay.rank_of(r.rank) if snap.overlay is not None else r.rank
        return RankedEntry(rank, profile_id, r.score, r.nym, r.wallet_address)

    async def get_neighbours(
        self, ctx: TenantContext, board: Board, profile_id: UUID
    ) -> tuple[RankedEntry | None, RankedEntry | None, RankedEntry | None]:
        """The member's row, which carries the members either side of it: one read."""
        snap = await self._pinned(ctx, board)
        if snap is None:
            return None, None, None
        overlay = snap.overlay
        if overlay is not None and profile_id in overlay.changed:
            me = overlay.changed_entry(profile_id)
            if me is None:
                return None, None, None
            above = await self._entry_at(ctx, board, snap, me.rank - 1)
            return above, me, await self._entry_at(ctx, board, snap, me.rank + 1)
        rows = await self.cql.execute(
            f"SELECT rank, score, nym, wallet_address, above_id, above_score, above_nym, above_wallet,"
            f" below_id, below_score, below_nym, below_wallet FROM {self.t.by_profile}"
            f" WHERE community_id = ? AND board = ? AND version = ? AND bucket = ? AND profile_id = ?",
            (ctx.community_id, board, snap.version, snap.profile_bucket(profile_id), profile_id),
        )
        if not rows:
            return None, None, None
        r = rows[0]
        me = RankedEntry(r.rank, profile_id, r.score, r.nym, r.wallet_address)
        above = RankedEntry(me.rank - 1, r.above_id, r.above_score, r.above_nym, r.above_wallet) if r.above_id else None
        below = RankedEntry(me.rank + 1, r.below_id, r.below_score, r.below_nym, r.below_wallet) if r.below_id else None
        if (above is None and me.rank > 1) or (below is None and me.rank < snap.ranked):
            # a version built before rows carried their neighbours
            around = {e.rank: e for e in await self._snapshot_rows(ctx, board, snap, me.rank - 1, me.rank + 1)}
            above, below = around.get(me.rank - 1), around.get(me.rank + 1)
        if overlay is None:
            return above, me, below
        # The rows either side in the snapshot are the neighbours now only when no change came between.
        me = replace(me, rank=overlay.rank_of(me.rank))
        return (
            await self._entry_at(ctx, board, snap, me.rank - 1, above),
            me,
            await self._entry_at(ctx, board, snap, me.rank + 1, below),
        )

    async def _entry_at(
        self, ctx: TenantContext, board: Board, snap: SnapshotVersion, rank: int, known: RankedEntry | None = None
    ) -> RankedEntry | None:
        """The row at `rank` now, on a board with changes laid over it; `known`: a snapshot row in hand."""
        assert snap.overlay is not None
        changed = snap.overlay.changed_at(rank)
        if changed is not None:
            return changed
        at = snap.overlay.snapshot_rank_at(rank)
        if at is None:
            return None
        row = known if known is not None and known.rank == at else None
        if row is None:
            rows = await self._snapshot_rows(ctx, board, snap, at, at)
            row = rows[0] if rows else None
        return replace(row, rank=rank) if row is not None else None

    async def get_range(self, ctx: TenantContext, board: Board, first_rank: int, last_rank: int) -> list[RankedEntry]:
        snap = await self._pinned(ctx, board)
        if snap is None:
            return []
        overlay = snap.overlay
        if overlay is None:
            return await self._snapshot_rows(ctx, board, snap, first_rank, last_rank)
        first, last = max(first_rank, 1), min(last_rank, overlay.ranked)
        if last < first:
            return []
        span = overlay.snapshot_span(first, last)
        rows = await self._snapshot_rows(ctx, board, snap, *span) if span is not None else []
        return overlay.place(rows, first, last)

    async def _snapshot_rows(
        self, ctx: TenantContext, board: Board, snap: SnapshotVersion, first_rank: int, last_rank: int
    ) -> list[RankedEntry]:
        """The snapshot's rows first_rank..last_rank, as it was built."""
        first, last = max(first_rank, 1), min(last_rank, snap.ranked)
        if last < first:
            return []
        head = snap.head_range(first, last)
        if head is not None:
            return head
        query = (
            f"SELECT rank, profile_id, score, nym, wallet_address FROM {self.t.by_rank}"
            f" WHERE community_id = ? AND board = ? AND version = ? AND bucket = ? AND rank >= ? AND rank <= ?"
        )
        parts = await asyncio.gather(
            *(
                self.cql.execute(query, (ctx.community_id, board, snap.version, bucket, lo, hi))
                for bucket, lo, hi in snap.rank_buckets(first, last)
            )
        )
        return [RankedEntry(r.rank, r.profile_id, r.score, r.nym, r.wallet_address) for rows in parts for r in rows]

    async def get_position_rows(self, ctx: TenantContext, discord_user_id: int, entry_rank: int) -> PositionRows:
        return await compose_position_rows(self, ctx, discord_user_id, entry_rank)

    async def get_threshold_rows(self, ctx: TenantContext, first_rank: int, last_rank: int) -> ThresholdRows:
        return await compose_threshold_rows(self, ctx, first_rank, last_rank)

    async def count_ranked(self, ctx: TenantContext, board: Board) -> int:
        snap = await self._pinned(ctx, board)
        if snap is None:
            return 0
        return snap.overlay.ranked if snap.overlay is not None else snap.ranked

    async def count_above(self, ctx: TenantContext, board: Board, score: Decimal, *, inclusive: bool = False) -> int:
        """The snapshot's members above `score`, with the changes since laid over them.

        No scan of the board, and as current as every other read of it: the first ranks kept with the
        pointer answer a high `score` with no read; else the version's fences (the key of every
        FENCE_RANKS-th rank, read once per version by this process, as placing the changes since does)
        name the FENCE_RANKS ranks holding the last member above it, and one rank-range read finds it.
        Counts kept per threshold by the rebuild would answer the tier board's three bands without the
        fences, but the caller's rank on it needs a count above any score, and the overlay must correct
        a stored count as it corrects a rank.
        """
        snap = await self._pinned(ctx, board)
        if snap is None:
            return 0
        counted = await self._snapshot_count(ctx, board, snap, score, inclusive)
        return snap.overlay.count_above(counted, score, inclusive=inclusive) if snap.overlay is not None else counted

    async def _snapshot_count(
        self, ctx: TenantContext, board: Board, snap: SnapshotVersion, score: Decimal, inclusive: bool
    ) -> int:
        """The snapshot rows above `score` (or on it): a prefix of the board, ranks 1..n."""

        def above(entry: RankedEntry) -> bool:
            return entry.score > score or (inclusive and entry.score == score)

        if snap.ranked == 0:
            return 0
        head = snap.head_range(1, min(len(snap.head), snap.ranked)) or []
        if head and (not above(head[-1]) or len(head) == snap.ranked):
            return sum(1 for e in head if above(e))
        if snap.fence_ranks is None:  # a version built before fences: a search by rank, one row a step
            lo, hi = 0, snap.ranked  # row lo is above (or lo is 0); rows past hi are not
            while lo < hi:
                mid = (lo + hi + 1) // 2
                rows = await self._snapshot_rows(ctx, board, snap, mid, mid)
                lo, hi = (mid, hi) if rows and above(rows[0]) else (lo, mid - 1)
            return lo
        # A key no member has: before every member on `score`, or after them all when `inclusive`.
        bound = (score.copy_negate(), *(_AFTER_ANY if inclusive else _BEFORE_ANY))
        return await self.live.ahead(ctx.community_id, board, snap, bound)

    async def snapshot_info(self, ctx: TenantContext, board: Board) -> SnapshotInfo:
        snap = await self._pinned(ctx, board)
        if snap is None:
            return SnapshotInfo(as_of=EPOCH, score_version=-1, live=False)
        as_of = snap.overlay.as_of if snap.overlay is not None else snap.built_at
        return SnapshotInfo(as_of=as_of, score_version=snap.score_version, live=False, built_at=snap.built_at)

    async def get_eligibility(self, ctx: TenantContext, profile_id: UUID, rule_id: str) -> EligibilityResult | None:
        rows = await self.cql.execute(
            f"SELECT eligible, balance, checked_at FROM {self.t.eligibility}"
            f" WHERE community_id = ? AND profile_id = ? AND rule_id = ?",
            (ctx.community_id, profile_id, rule_id),
        )
        if not rows:
            return None
        r = rows[0]
        return EligibilityResult(profile_id, rule_id, r.eligible, r.balance, r.checked_at.replace(tzinfo=UTC))

    async def put_eligibility(self, ctx: TenantContext, result: EligibilityResult, ttl_seconds: int) -> None:
        await self.cql.execute(
            f"INSERT INTO {self.t.eligibility} (community_id, profile_id, rule_id, eligible, balance, checked_at)"
            f" VALUES (?, ?, ?, ?, ?, ?) USING TTL ?",
            (
                ctx.community_id,
                result.profile_id,
                result.rule_id,
                result.eligible,
                result.balance,
                result.checked_at,
                ttl_seconds,
            ),
        )

    async def delete_eligibility(self, ctx: TenantContext, profile_id: UUID, rule_id: str | None = None) -> None:
        if rule_id is None:
            await self.cql.execute(
                f"DELETE FROM {self.t.eligibility} WHERE community_id = ? AND profile_id = ?",
                (ctx.community_id, profile_id),
            )
        else:
            await self.cql.execute(
                f"DELETE FROM {self.t.eligibility} WHERE community_id = ? AND profile_id = ? AND rule_id = ?",
                (ctx.community_id, profile_id, rule_id),
            )

    async def recalculate(self, ctx: TenantContext, board: Board) -> int:
        if board not in BOARDS:
            raise InvalidInput(f"unknown board {board!r}")
        ranked = await self._rebuild_board(ctx.community_id, board)
        ctx.pins.pop(_Pin(board), None)  # the request that rebuilt the board reads what it built
        return ranked

    async def get_badge_board(self, ctx: TenantContext, limit: int) -> list[BadgeEntry]:
        return await self.replica.badges.board(ctx.community_id, limit)

    async def get_badge_count(self, ctx: TenantContext, profile_id: UUID) -> int:
        row = (await self._score_rows(ctx, [profile_id])).get(profile_id)
        return (row.badges or 0) if row is not None else 0

    async def count_badge_holders_above(self, ctx: TenantContext, held: int) -> int:
        return await self.replica.badges.holders_above(ctx.community_id, held)

    async def get_badge_facts(self, ctx: TenantContext) -> BadgeFacts:
        return await self.replica.badges.facts(ctx.community_id)

    async def get_council(self, ctx: TenantContext, former_limit: int = FORMER_KEPT) -> Council:
        """One keyed read at any community size."""
        council = await self.replica.council.get(ctx.community_id)
        return replace(council, former=council.former[: max(0, min(former_limit, FORMER_KEPT))])

    async def _rebuild_board(self, community_id: int, board: Board) -> int:
        ranked = await self.snapshots.rebuild(community_id, board)
        self._pointers.pop((community_id, board), None)  # this process reads what it built
        return ranked


__all__ = ["SCORE_SHARDS", "ScyllaBackend"]
