"""The fence counts behind PostgreSQL ranks stay exact and within their bounds through every write path, and
ranks and pages computed from them equal the board sorted in Python, on distinct, tied and all-equal scores."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from psycopg.rows import tuple_row
from psycopg_pool import AsyncConnectionPool

from backends.members import MemberRow
from backends.postgres.backend import PostgresBackend
from backends.postgres.community_writes import CommunityWrites
from backends.protocol import BOARDS, Board, Community, ScoreUpdate, TenantContext
from bot.replication.writes import ScoreWriter

EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
# Tiny and huge scores, one score written two ways, ties and zeros.
EDGES = [Decimal(v) for v in ("0", "0", "1", "1.000", "0.000001", "1.0317", "2.718281828", "1e12", "7", "7")]


def _score(rng: random.Random) -> Decimal:
    if rng.random() < 0.4:
        return rng.choice(EDGES)
    return Decimal(rng.randint(0, 5000)) / Decimal(rng.choice((1, 10, 1000)))


async def _fences(pool: AsyncConnectionPool[Any], community_id: int) -> list[tuple[Any, ...]]:
    """Each fence: (board, its members, the members counted again from the scores in its range)."""
    async with pool.connection() as conn:
        conn.row_factory = tuple_row  # the backend leaves its dict rows on pooled connections
        cur = await conn.execute(
            """
            SELECT f.board, f.neg_score, f.members,
                   (SELECT count(*) FROM scores x
                     CROSS JOIN LATERAL (SELECT CASE f.board WHEN 'conviction' THEN x.conviction
                                                             ELSE x.activity END AS score) v
                     WHERE x.community_id = f.community_id AND v.score > 0
                       AND (-v.score, x.joined_at, x.profile_id) >= (f.neg_score, f.joined_at, f.profile_id)
                       AND (f.next_score IS NULL
                            OR (-v.score, x.joined_at, x.profile_id) < (f.next_score, f.next_joined, f.next_id)))
              FROM (SELECT *,
                           lead(neg_score) OVER w AS next_score, lead(joined_at) OVER w AS next_joined,
                           lead(profile_id) OVER w AS next_id
                      FROM board_fences WHERE community_id = %s
                    WINDOW w AS (PARTITION BY board ORDER BY neg_score, joined_at, profile_id)) f
            """,
            (community_id,),
        )
        return list(await cur.fetchall())


def _check_fences(fences: list[tuple[Any, ...]], where: str) -> None:
    for board, neg_score, members, counted in fences:
        assert members == counted, f"{where}: a {board} fence counts {members}, holds {counted}"
        if not neg_score.is_infinite():
            assert 128 <= members <= 1024, f"{where}: a {board} fence out of bounds ({members})"
    for board in BOARDS:
        assert sum(1 for f in fences if f[0] == board and f[1].is_infinite()) == 1, f"{where}: {board} first fence"


async def _board(pool: AsyncConnectionPool[Any], community_id: int, board: Board) -> list[Any]:
    """The board sorted in Python: score descending, then join time, then profile id."""
    async with pool.connection() as conn:
        conn.row_factory = tuple_row
        cur = await conn.execute(
            f"SELECT profile_id, {board}, joined_at FROM scores WHERE community_id = %s AND {board} > 0",
            (community_id,),
        )
        rows = await cur.fetchall()
    return sorted(rows, key=lambda r: (-r[1], r[2], r[0]))


async def _run(pool: AsyncConnectionPool[Any], guild: int, seed: int, steps: int) -> None:
    rng = random.Random(seed)
    backend = PostgresBackend(pool)
    admin = CommunityWrites(pool)
    writer = ScoreWriter(backend)
    await admin.upsert_community(Community(guild, name="fences"))
    ctx = TenantContext(guild)
    users: list[int] = []
    for step in range(steps):
        action = rng.choice(("import", "tied", "update", "update", "remove"))
        if action == "tied":
            # Many members on one score and one join time: the tie order falls to the profile id.
            score, joined = rng.choice(EDGES[2:]), EPOCH + timedelta(seconds=rng.randint(0, 3))
            rows = [
                MemberRow(
                    discord_user_id=u,
                    nym=None,
                    wallet_address=None,
                    joined_at=joined,
                    conviction=score,
                    activity=rng.choice((score, Decimal(0))),
                )
                for u in rng.sample(range(1, 5000), rng.randint(300, 1600))
            ]
            await admin.import_members(guild, rows)
            users = sorted(set(users) | {r.discord_user_id for r in rows})
        elif action == "import" or not users:
            rows = [
                MemberRow(
                    discord_user_id=rng.randint(1, 5000),  # some already members: their scores are replaced
                    nym=None,
                    wallet_address=None,
                    joined_at=EPOCH + timedelta(seconds=rng.randint(0, 30)),
                    conviction=_score(rng),
                    activity=_score(rng),
                )
                for _ in range(rng.randint(1, 60))
            ]
            unique = list({r.discord_user_id: r for r in rows}.values())
            await admin.import_members(guild, unique)
            users = sorted(set(users) | {r.discord_user_id for r in unique})
        elif action == "update":
            picked = rng.sample(users, min(len(users), rng.randint(1, 400)))
            profiles = [await backend.get_profile_by_user(ctx, u) for u in picked]
            updates = [
                ScoreUpdate(
                    p.profile_id,
                    rng.choice(BOARDS),
                    _score(rng) * rng.choice((1, -1)),
                    "manual_adjustment",
                    mode=rng.choice(("set", "add")),
                )
                for p in profiles
                if p is not None
            ]
            await writer.apply(ctx, [u for u in updates if u.mode == "add" or u.value >= 0])
        else:
            for user in rng.sample(users, min(len(users), rng.randint(1, 5))):
                await admin.remove_member(guild, user)
                users.remove(user)
        _check_fences(await _fences(pool, guild), f"step {step} ({action})")
    for board in BOARDS:
        expected = await _board(pool, guild, board)
        ranks = sorted({1, len(expected)} | set(rng.sample(range(1, len(expected) + 1), min(len(expected), 200))))
        for rank in (r for r in ranks if 1 <= r <= len(expected)):  # none on a board every member left
            profile_id, score, _ = expected[rank - 1]
            got = await backend.get_rank(ctx, board, profile_id)
            assert got is not None and (got.rank, got.score) == (rank, score), (board, rank)
        for first in range(1, len(expected) + 2, max(7, len(expected) // 60)):
            page = await backend.get_range(ctx, board, first, first + 9)
            assert [(e.rank, e.profile_id) for e in page] == [
                (first + i, r[0]) for i, r in enumerate(expected[first - 1 : first + 9])
            ]


def test_fence_counts_and_ranks_follow_every_write(postgres_dsn: str) -> None:
    loop = asyncio.new_event_loop()
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(postgres_dsn, min_size=1, max_size=4, open=False)
    loop.run_until_complete(pool.open(wait=True))
    guilds = iter(range(7_700_000_000, 7_800_000_000))

    @settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(seed=st.integers(0, 2**32), steps=st.integers(1, 16))
    @example(seed=9622, steps=3)  # a board emptied by the writes
    def check(seed: int, steps: int) -> None:
        loop.run_until_complete(_run(pool, next(guilds), seed, steps))

    try:
        check()
    finally:
        loop.run_until_complete(pool.close())
        loop.close()


async def _all_equal(pool: AsyncConnectionPool[Any], guild: int) -> None:
    backend, admin = PostgresBackend(pool), CommunityWrites(pool)
    await admin.upsert_community(Community(guild, name="all equal"))
    same = EPOCH + timedelta(days=1)
    rows = [MemberRow(u, None, None, same, Decimal(1), Decimal(1)) for u in range(1, 6001)]
    await admin.import_members(guild, rows)
    fences = await _fences(pool, guild)
    _check_fences(fences, "import")
    assert sum(1 for f in fences if f[0] == "conviction") >= 6000 // 1024, "one score was not cut into fences"
    expected = await _board(pool, guild, "conviction")
    ctx = TenantContext(guild)
    for rank in (1, 2, 511, 512, 513, 1024, 1025, 3000, 5999, 6000):
        got = await backend.get_rank(ctx, "conviction", expected[rank - 1][0])
        assert got is not None and got.rank == rank
        page = await backend.get_range(ctx, "conviction", rank, rank + 2)
        assert [e.profile_id for e in page] == [r[0] for r in expected[rank - 1 : rank + 2]]
    for user in range(1, 6001, 2):  # half the board leaves: fences merge and stay exact
        await admin.remove_member(guild, user)
    _check_fences(await _fences(pool, guild), "after removals")
    expected = await _board(pool, guild, "conviction")
    for rank in (1, 700, 1500, 3000):
        got = await backend.get_rank(ctx, "conviction", expected[rank - 1][0])
        assert got is not None and got.rank == rank


def test_one_score_for_everyone_is_cut_by_join_time_and_profile(postgres_dsn: str) -> None:
    async def run() -> None:
        async with AsyncConnectionPool(postgres_dsn, min_size=1, max_size=4) as pool:
            await _all_equal(pool, 7_800_000_001)

    asyncio.run(run())
