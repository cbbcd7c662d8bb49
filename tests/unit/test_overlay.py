"""The overlay's counts against the board sorted from scratch, on many shapes of scores and changes."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from decimal import Decimal
from uuid import UUID

import pytest

from backends.protocol import RankedEntry
from backends.scylla import overlay as overlay_module
from backends.scylla.overlay import Change, Key, Overlay, ahead_of, board_key

Member = tuple[UUID, Decimal, int]  # profile, score, joined_at_us


def ranked(members: dict[UUID, tuple[Decimal, int]]) -> list[RankedEntry]:
    order = sorted((board_key(s, j, p), p, s) for p, (s, j) in members.items() if s > 0)
    return [RankedEntry(i, p, s, nym=f"n{p.int % 1000}") for i, (_, p, s) in enumerate(order, start=1)]


def scores(rnd: random.Random, shape: str) -> Decimal:
    if shape == "all_equal":
        return Decimal(1)
    if shape == "tied":
        return Decimal(rnd.choice([1, 1, 1, 2, 3, 0]))
    return Decimal(rnd.randint(0, 10**6)) / Decimal(10 ** rnd.randint(0, 30))


@pytest.mark.parametrize("laid", ["at_once", "in_steps"])
@pytest.mark.parametrize("shape", ["long_tail", "tied", "all_equal"])
@pytest.mark.parametrize("seed", range(12))
def test_ranks_ranges_and_neighbours_match_the_board_sorted_again(
    shape: str, seed: int, laid: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`in_steps`: the changes laid over a few at a time (`with_changes`), some members through states
    they left since, as a process reads them second by second."""
    rnd = random.Random(f"{shape}{seed}")
    size = rnd.choice([0, 1, 2, 5, 40, 300])
    joined = [rnd.randint(0, 3) for _ in range(4)]
    members = {UUID(int=rnd.getrandbits(128)): (scores(rnd, shape), rnd.choice(joined)) for _ in range(size)}
    snapshot = ranked(members)
    by_profile = {e.profile_id: e for e in snapshot}
    snapshot_keys = [board_key(e.score, members[e.profile_id][1], e.profile_id) for e in snapshot]

    now = dict(members)
    for _ in range(rnd.choice([0, 1, 3, size // 2 + 1, size * 2])):
        what = rnd.random()
        if what < 0.15 or not now:  # a member the snapshot never saw
            now[UUID(int=rnd.getrandbits(128))] = (scores(rnd, shape), rnd.choice(joined))
        elif what < 0.25:
            del now[rnd.choice(list(now))]  # removed
        else:
            p = rnd.choice(list(now))
            now[p] = (scores(rnd, shape) if rnd.random() < 0.9 else now[p][0], now[p][1])
    changed = {p for p in now.keys() | members.keys() if now.get(p) != members.get(p)}
    changed |= set(rnd.sample(sorted(now), min(2, len(now))))  # logged, but the same score again
    board = ranked(now)

    def change(p: UUID, score: Decimal, joined_at: int) -> Change:
        old = by_profile.get(p)
        if score <= 0:
            return Change(p, old.rank if old else None)
        key = board_key(score, joined_at, p)
        ahead = sum(1 for k in snapshot_keys if k < key)
        return Change(p, old.rank if old else None, RankedEntry(0, p, score, nym=f"n{p.int % 1000}"), key, ahead)

    changes = [change(p, *now.get(p, (Decimal(0), 0))) for p in changed]
    if laid == "at_once":
        overlay = Overlay(len(snapshot), changes, datetime.now(UTC))
    else:
        # Logged, then back where the snapshot has them: laid over first, then taken off again.
        same = {p for p in changed if p in by_profile and now.get(p) == members.get(p)}
        passed = [change(p, scores(rnd, shape), rnd.choice(joined)) for p in changed if p in same or rnd.random() < 0.4]
        overlay = Overlay(len(snapshot), passed[: len(passed) // 2], datetime.now(UTC))
        steps = passed[len(passed) // 2 :] + [c for c in changes if c.profile_id not in same]
        monkeypatch.setattr(overlay_module, "REBUILD_PAST", 0)  # every step moves entries, none sorts
        while steps:
            n = rnd.randint(1, 4)
            overlay, steps = overlay.with_changes(steps[:n], datetime.now(UTC)), steps[n:]
        overlay = overlay.with_changes([], datetime.now(UTC), unchanged=sorted(same))
        assert not same & overlay.changed.keys()

    assert overlay.ranked == len(board)
    for want in board:
        if want.profile_id in overlay.changed:
            assert overlay.changed_entry(want.profile_id) == want
            assert overlay.changed_at(want.rank) == want
            assert overlay.snapshot_rank_at(want.rank) is None
        else:
            r = by_profile[want.profile_id].rank
            assert overlay.rank_of(r) == want.rank
            assert overlay.snapshot_rank_at(want.rank) == r
            assert overlay.changed_at(want.rank) is None
    for p in overlay.changed.keys() - {e.profile_id for e in board}:
        assert overlay.changed_entry(p) is None
    assert overlay.snapshot_rank_at(len(board) + 1) is None
    for _ in range(30):
        first = rnd.randint(1, len(board) + 2)
        last = first + rnd.randint(0, 25)
        span = overlay.snapshot_span(first, last)
        rows = snapshot[span[0] - 1 : span[1]] if span else []
        assert overlay.place(rows, first, last) == board[first - 1 : last]
    for bound in {Decimal(0), Decimal(2), *(rnd.choice(snapshot + board).score for _ in range(5) if snapshot + board)}:
        for inclusive in (False, True):
            in_snapshot = sum(1 for e in snapshot if e.score > bound or (inclusive and e.score == bound))
            now_count = sum(1 for e in board if e.score > bound or (inclusive and e.score == bound))
            assert overlay.count_above(in_snapshot, bound, inclusive=inclusive) == now_count


def test_the_fences_name_the_rows_to_read() -> None:
    keys: list[Key] = [board_key(Decimal(100 - i), 0, UUID(int=i)) for i in range(10)]  # ranks 1..10
    fences, step = keys[::4], 4  # ranks 1, 5, 9
    for key, expect in [
        (board_key(Decimal(101), 0, UUID(int=0)), (0, -1)),  # ahead of everyone
        (keys[0], (0, -1)),  # the same key: nobody is ahead of it
        (board_key(Decimal(97), 1, UUID(int=0)), (1, 4)),
        (keys[4], (1, 4)),
        (board_key(Decimal(92), 1, UUID(int=0)), (9, 12)),
        (board_key(Decimal(0), 0, UUID(int=0)), (9, 12)),
    ]:
        first, last = ahead_of(key, fences, step)
        assert (first, last) == expect
        assert (first - 1 if first else 0) + sum(1 for k in keys[max(first, 1) - 1 : last] if first and k < key) == sum(
            1 for k in keys if k < key
        )
