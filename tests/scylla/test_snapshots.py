"""Snapshot swaps: readers never see a mix of two snapshots, nor rows of an older, longer board."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from backends.members import MemberRow
from backends.protocol import Community, ScoreUpdate, TenantContext
from backends.scylla.backend import ScyllaBackend
from backends.scylla.snapshots import RANK_WIDTH
from bot.replication.backfill import backfill
from tests.scylla.conftest import Pair

EPOCH = datetime(2024, 1, 1, tzinfo=UTC)


def members(n: int, top: int) -> list[MemberRow]:
    return [
        MemberRow(
            discord_user_id=10_000 + i, nym=f"m{i}", joined_at=EPOCH + timedelta(seconds=i), conviction=Decimal(top - i)
        )
        for i in range(n)
    ]


async def test_readers_during_rebuilds_see_one_whole_snapshot(pair: Pair, new_guild_id: int) -> None:
    """Boards alternate between two shapes; every read must match one of them exactly."""
    await pair.admin.upsert_community(Community(new_guild_id))
    ids = await pair.admin.import_members(new_guild_id, members(2500, top=100_000))
    await backfill(pair.copy_source, pair.scylla.replica, new_guild_id)
    long_board = 2500
    # Shape B: the last 1,000 members fall to zero (a shorter board), the rest gain 1 point each.
    shape_b = [ScoreUpdate(pid, "conviction", Decimal(0), "decay") for pid in ids[1500:]] + [
        ScoreUpdate(pid, "conviction", Decimal(1), "token_hold", mode="add") for pid in ids[:1500]
    ]
    shape_a = [ScoreUpdate(pid, "conviction", Decimal(100_000 - i), "token_hold") for i, pid in enumerate(ids)]
    service = pair.scylla_service()
    seen: list[tuple[int, int, Decimal | None, Decimal | None]] = []
    stop = asyncio.Event()

    async def read_forever() -> None:
        while not stop.is_set():
            ctx = await service.open_context(new_guild_id)
            # Page 151 exists only on the long board; rank 1's score tells the shape apart.
            top = await service.get_leaderboard(ctx, "conviction", 1)
            deep = await service.get_leaderboard(ctx, "conviction", 151)
            seen.append(
                (
                    top.total,
                    len(deep.entries),
                    top.entries[0].score if top.entries else None,
                    deep.entries[0].score if deep.entries else None,
                )
            )
            await asyncio.sleep(0.02)

    readers = [asyncio.create_task(read_forever()) for _ in range(2)]
    ctx = TenantContext(new_guild_id)
    for updates in (shape_b, shape_a, shape_b):
        await service.apply_score_updates(ctx, updates)
        await pair.scylla.recalculate(ctx, "conviction")
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.gather(*readers)
    assert seen
    for total, deep_len, top_score, deep_score in seen:
        if total == long_board:  # shape A: 2,500 ranked; page 151 holds ranks 1501..1510
            assert (deep_len, top_score, deep_score) == (10, Decimal(100_000), Decimal(100_000 - 1500))
        else:  # shape B: 1,500 ranked, page 151 is past the end
            assert (total, deep_len, top_score, deep_score) == (1500, 0, Decimal(100_001), None)
    assert {s[0] for s in seen} == {long_board, 1500}, "readers should have seen both shapes"


async def test_old_versions_are_removed_after_the_swap(pair: Pair, new_guild_id: int) -> None:
    await pair.admin.upsert_community(Community(new_guild_id))
    await pair.admin.import_members(new_guild_id, members(RANK_WIDTH + 10, top=50_000))
    await backfill(pair.copy_source, pair.scylla.replica, new_guild_id)
    pair.scylla.snapshots.keep_seconds = 0  # no reader is left on the superseded versions
    ctx = TenantContext(new_guild_id)
    for _ in range(3):
        await pair.scylla.recalculate(ctx, "conviction")
    cql, t = pair.scylla.cql, pair.scylla.t
    versions = await cql.execute(
        f"SELECT version, state FROM {t.versions} WHERE community_id = ? AND board = ?", (new_guild_id, "conviction")
    )
    live = max(v.version for v in versions)
    assert sorted(v.version for v in versions) == [live - 1, live]  # the live one and the one before it
    for gone in range(1, live - 1):
        rows = await cql.execute(
            f"SELECT rank FROM {t.by_rank} WHERE community_id = ? AND board = ? AND version = ? AND bucket = 1",
            (new_guild_id, "conviction", gone),
        )
        assert rows == []


async def five_then_eight(pair: Pair, guild_id: int, reader: ScyllaBackend) -> None:
    """A board of 5 that `reader` has read, then rebuilt with 8 by another backend (another process)."""
    await pair.admin.upsert_community(Community(guild_id))
    await pair.admin.import_members(guild_id, members(5, top=100))
    await backfill(pair.copy_source, pair.scylla.replica, guild_id)
    assert await reader.count_ranked(TenantContext(guild_id), "conviction") == 5
    await pair.admin.import_members(guild_id, members(8, top=100))
    await backfill(pair.copy_source, pair.scylla.replica, guild_id)
    await pair.scylla.recalculate(TenantContext(guild_id), "conviction")


async def test_other_processes_follow_a_new_snapshot_within_the_pointer_ttl(pair: Pair, new_guild_id: int) -> None:
    """Another process keeps reading the previous (whole) snapshot until its pointer is older than the TTL."""
    other = ScyllaBackend(pair.scylla.cql, pair.scylla.t.keyspace, pointer_ttl=3600)
    await five_then_eight(pair, new_guild_id, other)

    assert await pair.scylla.count_ranked(TenantContext(new_guild_id), "conviction") == 8  # the rebuilder at once
    trailing = TenantContext(new_guild_id)
    assert await other.count_ranked(trailing, "conviction") == 5
    assert [e.rank for e in await other.get_range(trailing, "conviction", 1, 10)] == [1, 2, 3, 4, 5]
    fresh = ScyllaBackend(pair.scylla.cql, pair.scylla.t.keyspace, pointer_ttl=0)
    assert await fresh.count_ranked(TenantContext(new_guild_id), "conviction") == 8


async def test_requests_keep_the_previous_view_while_another_refreshes_it(
    pair: Pair, new_guild_id: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the TTL the request that refreshes the pointer waits for it; the requests meanwhile answer from
    the view it replaces (whole) for up to one more TTL, then wait for the refresh too."""
    reader = ScyllaBackend(pair.scylla.cql, pair.scylla.t.keyspace, pointer_ttl=60)
    await five_then_eight(pair, new_guild_id, reader)

    held = asyncio.Event()
    refresh = reader._refresh

    async def held_refresh(*args: Any) -> Any:
        await held.wait()
        return await refresh(*args)

    monkeypatch.setattr(reader, "_refresh", held_refresh)
    key = (new_guild_id, "conviction")

    def age(seconds: float) -> None:
        reader._pointers[key] = (time.monotonic() - seconds, reader._pointers[key][1])

    age(61)  # past the TTL
    refreshing = asyncio.ensure_future(reader.count_ranked(TenantContext(new_guild_id), "conviction"))
    await asyncio.sleep(0.2)
    assert not refreshing.done()  # the request that started the refresh waits for it
    meanwhile = reader.count_ranked(TenantContext(new_guild_id), "conviction")
    assert await asyncio.wait_for(meanwhile, timeout=10) == 5  # the others do not
    age(121)  # past twice the TTL: nobody answers from it any more
    waiting = asyncio.ensure_future(reader.count_ranked(TenantContext(new_guild_id), "conviction"))
    await asyncio.sleep(0.2)
    assert not waiting.done()
    held.set()
    assert await asyncio.wait_for(asyncio.gather(refreshing, waiting), timeout=30) == [8, 8]
    assert await reader.count_ranked(TenantContext(new_guild_id), "conviction") == 8
