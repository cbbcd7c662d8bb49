"""A snapshot with the changes since it was read laid over it: the board as it is now, from the snapshot's
rows and the changed members alone.

The snapshot ranks its members 1..n. Each changed member has its old rank (None when the snapshot did not
rank it) and, when ranked now, its board key now and `ahead`: how many snapshot rows have a smaller key.
A changed member c is ahead of snapshot row r exactly when ahead_c < r (keys are distinct), so

    rank now of the unchanged row r = r - #(old ranks < r) + #(ahead < r)
    rank now of the i-th changed member in key order = 1 + ahead - #(old ranks <= ahead) + i

Both are exact counts: the overlay answers ranks, ranges and neighbours of one whole board, the snapshot's
rows with every change it holds, never a mix of two boards.
"""

from __future__ import annotations

import copy
from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from uuid import UUID

from backends.protocol import RankedEntry

# Board order ascending: the score descending (negated exactly, never rounded), joined_at, profile id.
Key = tuple[Decimal, int, int]

# `with_changes` sorts every change again when the new ones are more than 1/REBUILD_PAST of those held:
# moving list entries one change at a time then costs more than the sort.
REBUILD_PAST = 16


def board_key(score: Decimal, joined_at_us: int, profile_id: UUID) -> Key:
    return (score.copy_negate(), joined_at_us, profile_id.int)


@dataclass(frozen=True, slots=True)  # a reader holds tens of thousands between rebuilds
class Change:
    profile_id: UUID
    old_rank: int | None
    # Ranked now: the member's row (its rank is filled in by the overlay), its key and the snapshot rows
    # ahead of that key. Not ranked now (score 0, no score, removed): all None.
    now: RankedEntry | None = None
    key: Key | None = None
    ahead: int = 0


class Overlay:
    """Immutable: a read holds one overlay from start to end. `with_changes` makes the next one from this
    one in O(log k) comparisons per change (k changed members) plus list moves, so a board can go long
    between rebuilds, tens of thousands of changes laid over it, for the cost of the changes that came."""

    def __init__(self, snapshot_ranked: int, changes: Iterable[Change], as_of: datetime) -> None:
        """`as_of`: when the changes were read; the board is as of then."""
        self.as_of = as_of
        self.snapshot_ranked = snapshot_ranked
        self.changed: dict[UUID, Change] = {c.profile_id: c for c in changes}
        self._old = sorted(c.old_rank for c in self.changed.values() if c.old_rank is not None)
        ranked_now = sorted((c for c in self.changed.values() if c.key is not None), key=_key)
        # The changed members ranked now, in key order, in parallel lists (bisect reads the first three).
        self._keys = [_key(c) for c in ranked_now]
        self._ahead = [c.ahead for c in ranked_now]  # non-decreasing with the keys
        self._neg_scores = [k[0] for k in self._keys]
        self._now = ranked_now

    @property
    def ranked(self) -> int:
        return self.snapshot_ranked - len(self._old) + len(self._keys)

    def with_changes(self, changes: Iterable[Change], as_of: datetime, unchanged: Iterable[UUID] = ()) -> Overlay:
        """This overlay with `changes` laid over it too (a member's newer change replaces its older one), and
        the `unchanged` members back where the snapshot has them."""
        changes, unchanged = list(changes), [p for p in unchanged if p in self.changed]
        if (len(changes) + len(unchanged)) * REBUILD_PAST > len(self.changed):  # many: sorting all is cheaper
            gone = set(unchanged)
            kept = [c for c in self.changed.values() if c.profile_id not in gone]
            return Overlay(self.snapshot_ranked, [*kept, *changes], as_of)
        fresh = copy.copy(self)
        fresh.as_of = as_of
        fresh.changed = dict(self.changed)
        fresh._old, fresh._keys, fresh._ahead = list(self._old), list(self._keys), list(self._ahead)
        fresh._neg_scores, fresh._now = list(self._neg_scores), list(self._now)
        for profile_id in unchanged:
            fresh._remove(fresh.changed.pop(profile_id))
        for c in changes:
            before = fresh.changed.get(c.profile_id)
            if before is not None:
                fresh._remove(before)
            fresh._add(c)
        return fresh

    def _remove(self, change: Change) -> None:
        if change.old_rank is not None:
            del self._old[bisect_left(self._old, change.old_rank)]
        if change.key is not None:
            i = bisect_left(self._keys, change.key)
            del self._keys[i], self._ahead[i], self._neg_scores[i], self._now[i]

    def _add(self, change: Change) -> None:
        if change.old_rank is not None:
            insort(self._old, change.old_rank)
        if change.key is not None:
            i = bisect_left(self._keys, change.key)
            self._keys.insert(i, change.key)
            self._ahead.insert(i, change.ahead)
            self._neg_scores.insert(i, change.key[0])
            self._now.insert(i, change)
        self.changed[change.profile_id] = change

    def seen_at(self, as_of: datetime) -> Overlay:
        """The same changes, known to be every change as of `as_of`."""
        fresh = copy.copy(self)
        fresh.as_of = as_of
        return fresh

    def rank_of(self, snapshot_rank: int) -> int:
        """The rank now of the unchanged member at `snapshot_rank` (non-decreasing in it for any rank)."""
        return snapshot_rank - bisect_left(self._old, snapshot_rank) + bisect_left(self._ahead, snapshot_rank)

    def count_above(self, snapshot_count: int, score: Decimal, *, inclusive: bool) -> int:
        """The members above `score` (or on it, `inclusive`) now, from `snapshot_count`, the snapshot rows
        above it (ranks 1..snapshot_count): less the changed members among those, plus those above it now."""
        neg = score.copy_negate()
        now = bisect_right(self._neg_scores, neg) if inclusive else bisect_left(self._neg_scores, neg)
        return snapshot_count - bisect_right(self._old, snapshot_count) + now

    def is_unchanged(self, row: RankedEntry) -> bool:
        return not self._was_changed(row.rank) and row.profile_id not in self.changed

    def changed_entry(self, profile_id: UUID) -> RankedEntry | None:
        """A changed member's row now (None when not ranked now); only for members in `changed`."""
        key = self.changed[profile_id].key
        return self._entry(bisect_left(self._keys, key)) if key is not None else None

    def changed_at(self, rank: int) -> RankedEntry | None:
        i = self._reaching(rank)
        return self._entry(i) if i < len(self._keys) and self._rank_at(i) == rank else None

    def _rank_at(self, i: int) -> int:
        """The rank now of the i-th changed member in key order: the snapshot rows ahead of it that kept
        their place, plus the changed members ahead of it. Increasing in i."""
        ahead = self._ahead[i]
        return 1 + ahead - bisect_right(self._old, ahead) + i

    def _reaching(self, rank: int) -> int:
        """The least i with _rank_at(i) >= rank (the number of changed members ranked now when none is)."""
        lo, hi = 0, len(self._keys)
        while lo < hi:
            mid = (lo + hi) // 2
            if self._rank_at(mid) >= rank:
                hi = mid
            else:
                lo = mid + 1
        return lo

    def _entry(self, i: int) -> RankedEntry:
        now = self._now[i].now
        assert now is not None  # only ranked changes have a key
        return replace(now, rank=self._rank_at(i))

    def _was_changed(self, snapshot_rank: int) -> bool:
        i = bisect_left(self._old, snapshot_rank)
        return i < len(self._old) and self._old[i] == snapshot_rank

    def snapshot_rank_at(self, rank: int) -> int | None:
        """The snapshot rank of the unchanged member at `rank` now; None when a changed member holds it or
        it is past the end."""
        if not 1 <= rank <= self.ranked or self.changed_at(rank) is not None:
            return None
        r = self._first_reaching(rank)
        while self._was_changed(r):  # rank_of counts them nowhere: the next unchanged row holds `rank`
            r += 1
        return r if r <= self.snapshot_ranked and self.rank_of(r) == rank else None

    def snapshot_span(self, first: int, last: int) -> tuple[int, int] | None:
        """The snapshot ranks whose unchanged rows are ranked first..last now (changed rows among them)."""
        lo, hi = self._first_reaching(first), self._first_reaching(last + 1) - 1
        return (lo, hi) if lo <= hi else None

    def _first_reaching(self, rank: int) -> int:
        """The least snapshot rank r in 1..n+1 with rank_of(r) >= rank (n + 1 when none is)."""
        lo, hi = 1, self.snapshot_ranked + 1
        while lo < hi:
            mid = (lo + hi) // 2
            if self.rank_of(mid) >= rank:
                hi = mid
            else:
                lo = mid + 1
        return lo

    def place(self, rows: Iterable[RankedEntry], first: int, last: int) -> list[RankedEntry]:
        """Ranks first..last now, from the snapshot rows of `snapshot_span(first, last)`."""
        placed = [replace(row, rank=self.rank_of(row.rank)) for row in rows if self.is_unchanged(row)]
        i = self._reaching(first)
        while i < len(self._keys) and self._rank_at(i) <= last:
            placed.append(self._entry(i))
            i += 1
        placed.sort(key=lambda e: e.rank)
        return [e for e in placed if first <= e.rank <= last]


def _key(change: Change) -> Key:
    assert change.key is not None
    return change.key


def ahead_of(key: Key, fence_keys: list[Key], fence_ranks: int) -> tuple[int, int]:
    """The snapshot ranks (first, last) to read to count the rows ahead of `key`, from the fences (the key
    of every `fence_ranks`-th rank: 1, 1 + fence_ranks, ...); (0, -1) when no row is ahead of it."""
    fences_ahead = bisect_left(fence_keys, key)
    if fences_ahead == 0:
        return 0, -1
    first = 1 + (fences_ahead - 1) * fence_ranks
    return first, first + fence_ranks - 1
