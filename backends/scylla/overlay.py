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
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from uuid import UUID

from backends.protocol import RankedEntry

# Board order ascending: the score descending (negated exactly, never rounded), joined_at, profile id.
Key = tuple[Decimal, int, int]


def board_key(score: Decimal, joined_at_us: int, profile_id: UUID) -> Key:
    return (score.copy_negate(), joined_at_us, profile_id.int)


@dataclass(frozen=True)
class Change:
    profile_id: UUID
    old_rank: int | None
    # Ranked now: the member's row (its rank is filled in by the overlay), its key and the snapshot rows
    # ahead of that key. Not ranked now (score 0, no score, removed): all None.
    now: RankedEntry | None = None
    key: Key | None = None
    ahead: int = 0


class Overlay:
    def __init__(self, snapshot_ranked: int, changes: Iterable[Change], as_of: datetime) -> None:
        """`as_of`: when the changes were read; the board is as of then."""
        self.as_of = as_of
        self.changed: dict[UUID, Change] = {c.profile_id: c for c in changes}
        self.snapshot_ranked = snapshot_ranked
        self._old = sorted(c.old_rank for c in self.changed.values() if c.old_rank is not None)
        self._old_set = frozenset(self._old)
        ranked_now = sorted((c for c in self.changed.values() if c.key is not None), key=_key)
        self._ahead = [c.ahead for c in ranked_now]
        self._neg_scores = [_key(c)[0] for c in ranked_now]  # ascending with the keys
        self.ranked = snapshot_ranked - len(self._old) + len(ranked_now)
        # Ranks now of the changed members, increasing with their keys.
        self._ranks = [1 + c.ahead - bisect_right(self._old, c.ahead) + i for i, c in enumerate(ranked_now)]
        self._at_rank = dict(zip(self._ranks, ranked_now, strict=True))
        self._rank_of_changed = {c.profile_id: r for r, c in self._at_rank.items()}

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
        return row.rank not in self._old_set and row.profile_id not in self.changed

    def changed_entry(self, profile_id: UUID) -> RankedEntry | None:
        """A changed member's row now (None when not ranked now); only for members in `changed`."""
        rank = self._rank_of_changed.get(profile_id)
        return self._entry(rank) if rank is not None else None

    def changed_at(self, rank: int) -> RankedEntry | None:
        return self._entry(rank) if rank in self._at_rank else None

    def _entry(self, rank: int) -> RankedEntry:
        now = self._at_rank[rank].now
        assert now is not None  # only ranked changes have a rank
        return replace(now, rank=rank)

    def snapshot_rank_at(self, rank: int) -> int | None:
        """The snapshot rank of the unchanged member at `rank` now; None when a changed member holds it or
        it is past the end."""
        if rank in self._at_rank or not 1 <= rank <= self.ranked:
            return None
        r = self._first_reaching(rank)
        while r in self._old_set:  # rank_of counts them nowhere: the next unchanged row holds `rank`
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
        lo, hi = bisect_left(self._ranks, first), bisect_right(self._ranks, last)
        placed += [self._entry(rank) for rank in self._ranks[lo:hi]]
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
