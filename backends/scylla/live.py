"""Each process's view of the score changes since a snapshot was read: the writes the relay copied, read
from the change log with the snapshot pointer (once a second), placed in the snapshot (each member's old
rank, key now, and the snapshot rows ahead of that key) and laid over it (overlay.py). A score change
reaches Scylla answers when the relay has copied it, not a whole rebuild later; a write shows whole.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from backends.protocol import Board, RankedEntry
from backends.scylla.overlay import Change, Key, Overlay, ahead_of, board_key
from backends.scylla.session import CqlSession
from backends.scylla.snapshots import SnapshotVersion
from backends.scylla.tables import CLOSED, Tables, change_slot

log = logging.getLogger(__name__)

LOG_KEEP = timedelta(seconds=3600)  # the change log's time to live (schema 003)
# The clocks of the processes that log changes and rebuild snapshots may differ by up to this much, and an
# entry may become readable this long after its time: every read reaches back this far again.
MARGIN = timedelta(seconds=10)
# Past this many changed members the rebuilds are far behind; the snapshot is served as it is meanwhile.
MAX_CHANGES = 50_000
READ_CONCURRENCY = 32


@dataclass
class _Board:
    """One snapshot version's changes, as this process has placed them."""

    version: int
    cursor: datetime  # the next read of the log starts here
    fence_keys: list[Key] | None = None  # read with the first change
    changes: dict[UUID, Change] = field(default_factory=dict)
    placed_from: dict[UUID, tuple[int, datetime]] = field(default_factory=dict)  # (score version, logged at)
    # Closed batches of the log read since `cursor`: reading back MARGIN finds them again, placed once.
    seen: set[tuple[datetime, UUID]] = field(default_factory=set)
    overlay: Overlay | None = None
    given_up: bool = False  # more than MAX_CHANGES: served as built


class LiveChanges:
    def __init__(self, cql: CqlSession, t: Tables) -> None:
        self.cql = cql
        self.t = t
        self._boards: dict[tuple[int, Board, int], _Board] = {}
        self._fence_keys: dict[tuple[int, Board, int], asyncio.Future[list[Key]]] = {}
        self._gate = asyncio.Semaphore(READ_CONCURRENCY)

    async def lay_over(self, community_id: int, board: Board, snap: SnapshotVersion) -> SnapshotVersion:
        """The snapshot with every change logged since its scores were read; as it is when it cannot be
        told which changes those are (built before the log, the log no longer reaching back to it, or
        more changes than MAX_CHANGES)."""
        if snap.changes_from is None or snap.fence_ranks is None:
            return snap
        read_at = datetime.now(UTC)
        if read_at - snap.changes_from > LOG_KEEP - MARGIN:
            return snap
        key = (community_id, board, snap.version)
        state = self._boards.get(key)
        if state is None:
            state = self._boards[key] = _Board(snap.version, snap.changes_from - MARGIN)
        if state.given_up:
            return snap
        batches = await changed_since(self.cql, self.t, community_id, state.cursor, read_at)
        changed = _newest(batches, state, snap.score_version)
        if len(state.changes) + sum(1 for p in changed if p not in state.changes) > MAX_CHANGES:
            log.warning(
                "too many changes to lay over the snapshot; served as built guild=%s board=%s version=%s",
                community_id,
                board,
                snap.version,
            )
            state.given_up = True
            return snap
        if changed or state.overlay is None:
            if changed and state.fence_keys is None:
                state.fence_keys = await self.fence_keys(community_id, board, snap)
            placed = await self._place(community_id, board, snap, state, {p: row for p, (_, row) in changed.items()})
            moved = {p: c for p, c in placed.items() if c is not None}
            back = [p for p, c in placed.items() if c is None and p in state.changes]
            for p in back:
                del state.changes[p]
            state.changes.update(moved)
            state.placed_from.update({p: stamp for p, (stamp, _) in changed.items()})
            state.overlay = (
                Overlay(snap.ranked, moved.values(), read_at)
                if state.overlay is None
                else state.overlay.with_changes(moved.values(), read_at, unchanged=back)
            )
        else:
            state.overlay = state.overlay.seen_at(read_at)
        state.cursor = read_at - MARGIN
        state.seen = {batch for batch in state.seen | batches.keys() if batch[0] >= state.cursor}
        return replace(snap, overlay=state.overlay)

    def forget_before(self, community_id: int, board: Board, version: int) -> None:
        """Drop what was placed in the board's versions older than `version` (no reader is on them)."""
        for key in [k for k in self._boards if k[:2] == (community_id, board) and k[2] < version]:
            del self._boards[key]
        for key in [k for k in self._fence_keys if k[:2] == (community_id, board) and k[2] < version]:
            del self._fence_keys[key]

    async def fence_keys(self, community_id: int, board: Board, snap: SnapshotVersion) -> list[Key]:
        """The version's fence keys, read once per version by this process (for placing changes and for
        counting the members above a score)."""
        key = (community_id, board, snap.version)
        held = self._fence_keys.get(key)
        if held is None:
            held = self._fence_keys[key] = asyncio.ensure_future(self._fences(community_id, board, snap))
            held.add_done_callback(lambda done: done.cancelled() or done.exception())
        try:
            return await asyncio.shield(held)  # a request cancelled meanwhile leaves the read to the others
        except Exception:
            if self._fence_keys.get(key) is held:
                del self._fence_keys[key]  # the next reader tries again
            raise

    async def ahead(self, community_id: int, board: Board, snap: SnapshotVersion, key: Key) -> int:
        """How many snapshot rows have a smaller key than `key` (any key, a member's or not)."""
        fence_keys = await self.fence_keys(community_id, board, snap)
        return (await self._ahead(community_id, board, snap, fence_keys, key))[0]

    async def _fences(self, community_id: int, board: Board, snap: SnapshotVersion) -> list[Key]:
        rows = await self.cql.execute(
            f"SELECT score, joined_at_us, profile_id FROM {self.t.fences}"
            f" WHERE community_id = ? AND board = ? AND version = ?",
            (community_id, board, snap.version),
        )
        return [board_key(r.score, r.joined_at_us, r.profile_id) for r in rows]

    async def _place(
        self, community_id: int, board: Board, snap: SnapshotVersion, state: _Board, states: Mapping[UUID, Any]
    ) -> dict[UUID, Change | None]:
        """Each member's logged state (a row of the change log) placed in the snapshot; None where the
        snapshot holds the member's row as logged (a write that moved them on the other board only): they
        are no change to this board, and a reader keeps nothing of them."""
        fence_keys = state.fence_keys or []

        async def place(profile_id: UUID) -> tuple[UUID, Change | None]:
            async with self._gate:
                known = state.changes.get(profile_id)
                if known is not None:
                    old = known.old_rank
                else:
                    old = await self._old_rank(community_id, board, snap, profile_id)
                row = states.get(profile_id)
                score = getattr(row, board) if row is not None else None
                if row is None or score is None or score <= 0:  # not ranked now, or removed
                    return profile_id, Change(profile_id, old)
                key = board_key(score, row.joined_at_us, profile_id)
                ahead, held = await self._ahead(community_id, board, snap, fence_keys, key)
                now = RankedEntry(0, profile_id, score, row.nym, row.wallet_address)
                if held == now and held.score.as_tuple() == score.as_tuple():  # the same key, digits and names
                    return profile_id, None
                return profile_id, Change(profile_id, old, now, key, ahead)

        return dict(await asyncio.gather(*(place(p) for p in states)))

    async def _old_rank(self, community_id: int, board: Board, snap: SnapshotVersion, profile_id: UUID) -> int | None:
        rows = await self.cql.execute(
            f"SELECT rank FROM {self.t.by_profile}"
            f" WHERE community_id = ? AND board = ? AND version = ? AND bucket = ? AND profile_id = ?",
            (community_id, board, snap.version, snap.profile_bucket(profile_id), profile_id),
        )
        return rows[0].rank if rows else None

    async def _ahead(
        self, community_id: int, board: Board, snap: SnapshotVersion, fence_keys: list[Key], key: Key
    ) -> tuple[int, RankedEntry | None]:
        """How many snapshot rows have a smaller key: the fences before it, then one read of the rest; and
        the row read with that very key, if any (ranked 0, as a change's row is)."""
        assert snap.fence_ranks is not None
        first, last = ahead_of(key, fence_keys, snap.fence_ranks)
        if first == 0:
            return 0, None
        last = min(last, snap.ranked)
        query = (
            f"SELECT score, joined_at_us, profile_id, nym, wallet_address FROM {self.t.by_rank}"
            f" WHERE community_id = ? AND board = ? AND version = ? AND bucket = ? AND rank >= ? AND rank <= ?"
        )
        parts = await asyncio.gather(
            *(
                self.cql.execute(query, (community_id, board, snap.version, bucket, lo, hi))
                for bucket, lo, hi in snap.rank_buckets(first, last)
            )
        )
        ahead, held = first - 1, None
        for r in (r for rows in parts for r in rows):
            k = board_key(r.score, r.joined_at_us, r.profile_id)
            if k < key:
                ahead += 1
            elif k == key:
                held = RankedEntry(0, r.profile_id, r.score, r.nym, r.wallet_address)
        return ahead, held


async def changed_since(
    cql: CqlSession, t: Tables, community_id: int, since: datetime, until: datetime
) -> dict[tuple[datetime, UUID], list[Any]]:
    """The members' rows of each closed batch of the change log from `since` on, by (time, batch)."""
    query = (
        f"SELECT at, write_id, profile_id, score_version, joined_at_us, conviction, activity, nym, wallet_address"
        f" FROM {t.changes} WHERE community_id = ? AND slot = ? AND at >= ?"
    )
    slots = range(change_slot(since), change_slot(until) + 1)
    parts = await asyncio.gather(*(cql.execute(query, (community_id, slot, since)) for slot in slots))
    batches: dict[tuple[datetime, UUID], list[Any]] = defaultdict(list)
    closed = set()
    for rows in parts:
        for r in rows:
            batch = (r.at.replace(tzinfo=UTC), r.write_id)
            if r.profile_id == CLOSED:
                closed.add(batch)
            else:
                batches[batch].append(r)
    return {batch: rows for batch, rows in batches.items() if batch in closed}


def _newest(
    batches: Mapping[tuple[datetime, UUID], list[Any]], state: _Board, built_from: int
) -> dict[UUID, tuple[tuple[int, datetime], Any]]:
    """Each member's newest state (a log row, with its score version and time) in the batches not read
    before, when newer than the state placed already and than the snapshot's scores (`built_from`, its
    score version: a state copied at that version or before is in the snapshot, or older than what is)."""
    newest: dict[UUID, tuple[tuple[int, datetime], Any]] = {}
    for at, batch in batches.keys() - state.seen:
        for row in batches[(at, batch)]:
            if row.score_version <= built_from:
                continue
            stamp = (row.score_version, at)
            found = newest.get(row.profile_id)
            known = found[0] if found is not None else state.placed_from.get(row.profile_id)
            if known is None or stamp > known:
                newest[row.profile_id] = (stamp, row)
    return newest
