"""A rebuild streams the board through an external sort: its memory does not grow with the board, and the
snapshot is the one the board's order gives, ties and extreme scores included."""

from __future__ import annotations

import asyncio
import gc
import tempfile
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from backends.members import MemberRow
from backends.protocol import Community, RankedEntry, TenantContext
from backends.scylla import board_sort, snapshots
from backends.scylla.snapshots import current_version
from bot.replication.backfill import backfill
from tests.scylla.conftest import Pair

EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
HUGE = "1" + "0" * 400  # 10^400: beyond any float, and beyond the 28 digits of the default decimal context
SCORES = [
    Decimal(HUGE + ".000000000000000001"),
    Decimal(HUGE),
    Decimal("1E+400"),  # the same value as HUGE, written otherwise: a tie
    Decimal("123.456789012345678901"),
    Decimal("123.456789012345678900"),
    Decimal("0.000000000000000001"),
    Decimal(0),  # not ranked
]


@pytest.fixture
def small_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs, chunks, pages and partitions small enough that a board of hundreds takes many of each, and
    merges of merges."""
    monkeypatch.setattr(board_sort, "RUN_ROWS", 40)
    monkeypatch.setattr(board_sort, "CHUNK_ROWS", 8)
    monkeypatch.setattr(board_sort, "FAN_IN", 3)
    monkeypatch.setattr(snapshots, "READ_PAGE_ROWS", 50)
    monkeypatch.setattr(snapshots, "RANK_WIDTH", 100)
    monkeypatch.setattr(snapshots, "BATCH_ROWS", 30)
    monkeypatch.setattr(snapshots, "PROFILE_ROWS", 64)


def tied_members(n: int) -> list[MemberRow]:
    """Scores from a few values, many of them equal, and join times shared by several members: the profile
    id decides between many."""
    return [
        MemberRow(
            discord_user_id=10_000 + i,
            nym=f"m{i}" if i % 3 else None,
            wallet_address=f"0x{i:040x}" if i % 2 else None,
            joined_at=EPOCH + timedelta(seconds=i % 4),
            conviction=SCORES[i % len(SCORES)],
        )
        for i in range(n)
    ]


def oracle(rows: list[MemberRow], ids: list[UUID]) -> list[RankedEntry]:
    """The board as the in-memory order gives it."""
    ranked = sorted(
        ((r, pid) for r, pid in zip(rows, ids, strict=True) if r.conviction > 0),
        key=lambda m: (m[0].conviction.copy_negate(), m[0].joined_at, m[1].int),
    )
    return [RankedEntry(rank, pid, r.conviction, r.nym, r.wallet_address) for rank, (r, pid) in enumerate(ranked, 1)]


async def test_a_board_of_ties_and_extreme_scores_is_the_sorted_board(
    pair: Pair, new_guild_id: int, small_runs: None
) -> None:
    rows = tied_members(700)
    await pair.admin.upsert_community(Community(new_guild_id))
    ids = await pair.admin.import_members(new_guild_id, rows)
    await backfill(pair.copy_source, pair.scylla.replica, new_guild_id)
    ctx = TenantContext(new_guild_id)
    assert await pair.scylla.recalculate(ctx, "conviction") == 600
    expected = oracle(rows, ids)

    got = await pair.scylla.get_range(TenantContext(new_guild_id), "conviction", 1, len(expected) + 10)
    assert got == expected

    snap = await current_version(pair.scylla.cql, pair.scylla.t, new_guild_id, "conviction")
    assert snap is not None
    assert (snap.ranked, snap.rank_width, snap.profile_buckets, snap.fence_ranks) == (600, 100, 10, 32)
    cql, t = pair.scylla.cql, pair.scylla.t
    by_profile = []
    for bucket in range(snap.profile_buckets):
        by_profile += await cql.execute(
            f"SELECT bucket, profile_id, rank, score, nym, wallet_address, above_id, above_score, above_nym,"
            f" above_wallet, below_id, below_score, below_nym, below_wallet FROM {t.by_profile}"
            f" WHERE community_id = ? AND board = ? AND version = ? AND bucket = ?",
            (new_guild_id, "conviction", snap.version, bucket),
        )

    def side(e: RankedEntry | None) -> tuple[Any, ...]:
        return (e.profile_id, e.score, e.nym, e.wallet_address) if e is not None else (None,) * 4

    # Each member's row, in the partition of its id, carries the members either side of it.
    assert sorted((tuple(r) for r in by_profile), key=lambda r: r[2]) == [
        (
            e.profile_id.int % snap.profile_buckets,
            e.profile_id,
            e.rank,
            e.score,
            e.nym,
            e.wallet_address,
            *side(expected[i - 1] if i > 0 else None),
            *side(expected[i + 1] if i + 1 < len(expected) else None),
        )
        for i, e in enumerate(expected)
    ]
    fences = await cql.execute(
        f"SELECT rank, score, profile_id FROM {t.fences} WHERE community_id = ? AND board = ? AND version = ?",
        (new_guild_id, "conviction", snap.version),
    )
    assert [tuple(f) for f in fences] == [(e.rank, e.score, e.profile_id) for e in expected[:: snapshots.FENCE_RANKS]]


async def _rebuild_peak(pair: Pair, guild_id: int) -> int:
    """Bytes allocated at the peak of a rebuild, above what was allocated before it."""
    # The objects of the test session out of the collector's count: its full collections then come as
    # often as the rebuild's garbage asks (they wait until it is a quarter of all the objects tracked).
    gc.collect()
    gc.freeze()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        await pair.scylla.snapshots.rebuild(guild_id, "conviction")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        gc.unfreeze()
    return peak - before


async def test_a_rebuild_holds_the_same_memory_for_a_board_eight_times_larger(
    pair: Pair, new_guild_id: int, small_runs: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Holding the board costs about a kilobyte a member (the driver's rows, then the sorted board); a
    streamed rebuild holds a run, a chunk per run and a few batches, whatever the board."""
    monkeypatch.setattr(board_sort, "RUN_ROWS", 200)
    # The driver keeps each request (a kilobyte or two) until its timeout would have fired, seconds after
    # the rebuild: fewer of them, so that what the test sees growing is what the rebuild holds.
    monkeypatch.setattr(snapshots, "BATCH_ROWS", 200)
    sorts: list[board_sort.SpillSort] = []
    spill_sort = board_sort.SpillSort

    def seen(*args: Any, **kwargs: Any) -> board_sort.SpillSort:
        sorts.append(spill_sort(*args, **kwargs))
        return sorts[-1]

    monkeypatch.setattr(snapshots, "SpillSort", seen)
    await pair.admin.upsert_community(Community(new_guild_id))
    small, large = 600, 4800
    ranked = [
        MemberRow(discord_user_id=10_000 + i, nym=f"m{i}", joined_at=EPOCH, conviction=Decimal(i + 1))
        for i in range(large)
    ]
    await pair.admin.import_members(new_guild_id, ranked[:small])
    await backfill(pair.copy_source, pair.scylla.replica, new_guild_id)
    await _rebuild_peak(pair, new_guild_id)  # first use: statements prepared, run files created once
    sorts.clear()
    small_peak = await _rebuild_peak(pair, new_guild_id)
    await pair.admin.import_members(new_guild_id, ranked[small:])
    await backfill(pair.copy_source, pair.scylla.replica, new_guild_id)
    sorts.clear()
    large_peak = await _rebuild_peak(pair, new_guild_id)

    assert await pair.scylla.count_ranked(TenantContext(new_guild_id), "conviction") == large
    # Members held by the sorts at once: a run, or a chunk of each of the runs merged at once.
    assert [s.count for s in sorts] == [large, large]
    assert max(s.peak_held for s in sorts) <= max(200, board_sort.FAN_IN * board_sort.CHUNK_ROWS)
    # Holding the board, the peak grew by over 900 bytes a member here; streamed, by what the driver keeps of
    # the requests sent (about a hundred bytes a member of this test's small batches).
    assert large_peak - small_peak < (large - small) * 300, (small_peak, large_peak)


async def test_a_cancelled_rebuild_leaves_no_files(
    pair: Pair, new_guild_id: int, small_runs: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    await pair.admin.upsert_community(Community(new_guild_id))
    await pair.admin.import_members(new_guild_id, tied_members(300))
    await backfill(pair.copy_source, pair.scylla.replica, new_guild_id)
    writing = asyncio.Event()

    async def stalled_writes(statements: Iterator[Any], *args: Any, **kwargs: Any) -> int:
        for _ in range(3):  # the board's runs are spilled and merging, the by-profile sort filling
            next(statements)
        writing.set()
        await asyncio.Event().wait()
        return 0

    monkeypatch.setattr(pair.scylla.cql, "execute_concurrently", stalled_writes)
    rebuild = asyncio.ensure_future(pair.scylla.snapshots.rebuild(new_guild_id, "conviction"))
    await asyncio.wait_for(writing.wait(), timeout=60)
    assert any(tmp_path.rglob("*.run"))
    rebuild.cancel()
    with pytest.raises(asyncio.CancelledError):
        await rebuild
    assert list(tmp_path.iterdir()) == []
