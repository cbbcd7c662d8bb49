"""A score change reaches Scylla answers once the relay has copied it, not a rebuild later: with the
changes laid over the snapshot, every answer equals PostgreSQL's, on every shape of scores, across
rebuilds and with changes landing while a rebuild reads the scores."""

from __future__ import annotations

import asyncio
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from cassandra.query import SimpleStatement

from backends.members import MemberRow
from backends.protocol import BOARDS, Community, ScoreUpdate, TenantContext
from backends.scylla import backend as scylla_backend
from backends.scylla.backend import ScyllaBackend
from backends.scylla.snapshots import SnapshotVersion
from bot.domain.service import HotPathService
from bot.replication.backfill import backfill
from tests.scylla.conftest import Pair

SHAPES = ("long_tail", "tied", "all_equal")
D = Decimal


def value(rnd: random.Random, shape: str) -> Decimal:
    if shape == "all_equal":
        return D(1)
    if shape == "tied":
        return D(rnd.choice([1, 1, 1, 1, 2, 3, 0]))
    return D(rnd.randint(0, 10**7)) / D(10 ** rnd.randint(0, 6))


async def _community(pair: Pair, guild: int, shape: str, rnd: random.Random, size: int) -> list[UUID]:
    await pair.admin.upsert_community(Community(guild, fedaykin=12, naib=3, at_risk=9, waitlist_end=25))
    joined = [datetime(2024, 1, 1, tzinfo=UTC) + timedelta(days=d) for d in range(3)]
    rows = [
        MemberRow(
            discord_user_id=i + 1,
            joined_at=rnd.choice(joined),
            conviction=value(rnd, shape),
            activity=value(rnd, shape),
        )
        for i in range(size)
    ]
    ids = await pair.admin.import_members(guild, rows)
    await backfill(pair.copy_source, pair.scylla.replica, guild)
    for board in BOARDS:
        await pair.scylla.recalculate(TenantContext(guild), board)
    return ids


def _changes(rnd: random.Random, shape: str, ids: list[UUID], count: int) -> list[ScoreUpdate]:
    updates = []
    for pid in rnd.sample(ids, count):
        board = rnd.choice(BOARDS)
        if rnd.random() < 0.2:
            updates.append(ScoreUpdate(pid, board, D(0), "decay"))  # off the board
        else:
            updates.append(ScoreUpdate(pid, board, value(rnd, shape), "token_hold"))
    return updates


async def _same_answers(pair: Pair, guild: int, ids: list[UUID]) -> None:
    pg, sc = pair.postgres_service(), pair.scylla_service()
    want_ctx, got_ctx = await pg.open_context(guild), await sc.open_context(guild)
    want, got = await _answers(pg, want_ctx, ids), await _answers(sc, got_ctx, ids)
    for name in want:
        assert got[name] == want[name], name


async def _served_answers(pair: Pair, reader: ScyllaBackend, guild: int, ids: list[UUID]) -> int:
    """Asserts the reader's answers are PostgreSQL's; returns the conviction snapshot version it served."""
    sc = HotPathService(reader, writer=pair.writer)
    pg = pair.postgres_service()
    ctx = await sc.open_context(guild)
    want, got = await _answers(pg, await pg.open_context(guild), ids), await _answers(sc, ctx, ids)
    for name in want:
        assert got[name] == want[name], name
    served = ctx.pins[next(pin for pin in ctx.pins if getattr(pin, "board", None) == "conviction")]
    version = await served
    assert isinstance(version, SnapshotVersion)
    return version.version


async def _answers(service: HotPathService, ctx: TenantContext, ids: list[UUID]) -> dict[str, Any]:
    answers: dict[str, Any] = {
        "threshold": replace(await service.get_threshold(ctx), as_of=None),
        "waitlist": await service.get_waitlist(ctx, limit=20),
    }
    for board in BOARDS:
        total = await service.backend.count_ranked(ctx, board)
        answers[f"{board} ranked"] = total
        answers[f"{board} pages"] = [
            (await service.get_leaderboard(ctx, board, page=p, page_size=7)).entries for p in range(1, total // 7 + 3)
        ]
        answers[f"{board} neighbours"] = [await service.backend.get_neighbours(ctx, board, pid) for pid in ids]
        answers[f"{board} ranks"] = [await service.backend.get_rank(ctx, board, pid) for pid in ids]
    answers["positions"] = [await service.get_position(ctx, pid) for pid in ids]
    top = answers["conviction pages"][0]
    for score in [D(0), D(1), D(2), D(100), D(500), D(1000), *(e.score for e in top)]:
        for inclusive in (False, True):
            answers[f"above {score} {inclusive}"] = await service.backend.count_above(
                ctx, "conviction", score, inclusive=inclusive
            )
    answers["tiers"] = [await service.get_tier_board(ctx, pid, limit=5) for pid in ids[:30]]
    return answers


@pytest.mark.parametrize("shape", SHAPES)
async def test_answers_between_rebuilds_are_postgres_answers(shape: str, pair_now: Pair, new_guild_id: int) -> None:
    pair, rnd = pair_now, random.Random(shape)
    ids = await _community(pair, new_guild_id, shape, rnd, 90)
    ctx = TenantContext(new_guild_id)
    await _same_answers(pair, new_guild_id, ids)
    for round_ in range(4):
        await pair.writer.apply(ctx, _changes(rnd, shape, ids, rnd.choice([1, 5, 30])))
        await _same_answers(pair, new_guild_id, ids)
        if round_ == 1:  # a new snapshot: its changes start again from there
            await pair.scylla.recalculate(ctx, "conviction")
            await _same_answers(pair, new_guild_id, ids)


async def test_changes_landing_while_a_rebuild_reads_are_shown(pair_now: Pair, new_guild_id: int) -> None:
    pair, rnd = pair_now, random.Random(7)
    ids = await _community(pair, new_guild_id, "tied", rnd, 60)
    ctx = TenantContext(new_guild_id)
    rebuilds = [asyncio.ensure_future(pair.scylla.recalculate(ctx, board)) for board in BOARDS]
    for _ in range(6):
        await pair.writer.apply(ctx, _changes(rnd, "tied", ids, 3))
        await asyncio.sleep(0)
    await asyncio.gather(*rebuilds)
    await _same_answers(pair, new_guild_id, ids)


async def test_a_new_snapshot_is_served_once_its_changes_are_placed(
    pair_now: Pair, new_guild_id: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader that finds a new snapshot keeps answering from the previous one with every change since
    while it places the new one's changes; then it serves the new one; and it waits rather than read a
    previous snapshot that may be deleted soon."""
    pair, rnd = pair_now, random.Random(5)
    guild = new_guild_id
    ids = await _community(pair, guild, "long_tail", rnd, 50)
    ctx = TenantContext(guild)
    reader = ScyllaBackend(pair.scylla.cql, pair.scylla.t.keyspace, pointer_ttl=0.0)
    first = await _served_answers(pair, reader, guild, ids)

    release = asyncio.Event()
    place = reader.live._place

    async def slow_place(community_id: int, board: Any, snap: SnapshotVersion, *rest: Any) -> Any:
        if snap.version > first and board == "conviction":
            await release.wait()
        return await place(community_id, board, snap, *rest)

    monkeypatch.setattr(reader.live, "_place", slow_place)
    await pair.writer.apply(ctx, _changes(rnd, "long_tail", ids, 8))
    await pair.scylla.recalculate(ctx, "conviction")
    await pair.writer.apply(ctx, _changes(rnd, "long_tail", ids, 8))
    # the new one's changes are not placed yet: answered from the previous one, without waiting for them
    assert await asyncio.wait_for(_served_answers(pair, reader, guild, ids), timeout=30) == first
    release.set()
    await asyncio.sleep(0.1)
    second = await _served_answers(pair, reader, guild, ids)
    assert second > first

    release.clear()
    monkeypatch.setattr(scylla_backend, "FLIP_LIMIT", timedelta(0))  # the previous one may go any time
    await pair.writer.apply(ctx, _changes(rnd, "long_tail", ids, 8))
    await pair.scylla.recalculate(ctx, "conviction")
    answered = asyncio.ensure_future(_served_answers(pair, reader, guild, ids))
    await asyncio.sleep(2 * scylla_backend.FLIP_WAIT_SECONDS)
    assert not answered.done()
    release.set()
    assert await answered > second


@pytest.fixture
def pair_now(pair: Pair) -> Pair:
    """Readers that look at the pointer and the change log on every request."""
    pair.scylla.pointer_ttl = 0.0
    return pair


async def test_absent_values_leave_no_tombstones_to_step_over(pair_now: Pair, new_guild_id: int) -> None:
    """The change log and the snapshots hold many rows per partition, read by ranges: members without a
    nym or wallet must not leave a tombstone per absent value in them."""
    pair, rnd = pair_now, random.Random(9)
    ids = await _community(pair, new_guild_id, "long_tail", rnd, 30)  # nobody has a nym or a wallet
    ctx = TenantContext(new_guild_id)
    await pair.writer.apply(ctx, _changes(rnd, "long_tail", ids, 10))
    await _same_answers(pair, new_guild_id, ids)  # the relay has logged them
    t = pair.scylla.t
    pointer = await pair.scylla.cql.execute(
        f"SELECT version FROM {t.pointer} WHERE community_id = ? AND board = ?", (new_guild_id, "conviction")
    )
    reads = [
        (f"SELECT * FROM {t.changes} WHERE community_id = %s", (new_guild_id,)),
        (
            f"SELECT * FROM {t.by_rank} WHERE community_id = %s AND board = 'conviction' AND version = %s"
            " AND bucket = 0",
            (new_guild_id, pointer[0].version),
        ),
    ]
    for query, params in reads:
        result = await asyncio.to_thread(
            pair.scylla.cql.session.execute, SimpleStatement(query + " ALLOW FILTERING"), params, trace=True
        )
        assert result.current_rows, query
        trace = await asyncio.to_thread(result.get_query_trace, 10.0)
        read = [e.description for e in trace.events if e.description.startswith("Read ")]
        assert read and all(d.endswith(" 0 tombstone cells") for d in read), (query, read)


async def test_a_member_moved_on_one_board_is_no_change_to_the_other(pair_now: Pair, new_guild_id: int) -> None:
    """A reader keeps only what moved on a board: a write of conviction leaves the member's activity row
    where the snapshot has it, and a score written back to its snapshot value takes the member off again."""
    pair, rnd, guild = pair_now, random.Random(11), new_guild_id
    ids = await _community(pair, guild, "long_tail", rnd, 40)
    ctx = TenantContext(guild)
    scores = await pair.source.get_scores(ctx, ids)
    movers = [p for p in ids if scores[p].conviction > 0 and scores[p].activity > 0][:5]
    assert len(movers) == 5

    def laid(board: str) -> set[UUID]:
        (state,) = [s for k, s in pair.scylla.live._boards.items() if k[:2] == (guild, board)]
        assert state.overlay is not None
        assert state.overlay.changed.keys() == state.changes.keys()
        return set(state.changes)

    await pair.writer.apply(ctx, [ScoreUpdate(p, "conviction", D(123456), "token_hold") for p in movers])
    await _same_answers(pair, guild, ids)
    assert laid("conviction") == set(movers)
    assert laid("activity") == set()

    first = movers[0]
    await pair.writer.apply(ctx, [ScoreUpdate(first, "activity", D(7), "activity_bonus")])
    await _same_answers(pair, guild, ids)
    assert laid("activity") == {first}
    back = scores[first].activity  # its snapshot value, to the digit
    await pair.writer.apply(ctx, [ScoreUpdate(first, "activity", back, "activity_bonus")])
    await _same_answers(pair, guild, ids)
    assert laid("activity") == set()
