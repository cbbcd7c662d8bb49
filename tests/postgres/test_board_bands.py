"""The score-band counts behind PostgreSQL ranks stay exact through every write path, and ranks and pages
computed from them equal the board sorted in Python."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg.rows import tuple_row
from psycopg_pool import AsyncConnectionPool

from backends.postgres.backend import PostgresBackend
from backends.postgres.community_writes import CommunityWrites, MemberRow
from backends.protocol import BOARDS, Board, Community, ScoreUpdate, TenantContext
from bot.replication.writes import ScoreWriter

EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
# Scores around band edges (the band is floor(ln(score) * 32)), tiny and huge ones, ties and zeros.
EDGES = [Decimal(v) for v in ("0", "0", "1", "1", "0.000001", "1.0317", "1.0323", "2.718281828", "1e12", "7", "7")]


def _score(rng: random.Random) -> Decimal:
    if rng.random() < 0.4:
        return rng.choice(EDGES)
    return Decimal(rng.randint(0, 5000)) / Decimal(rng.choice((1, 10, 1000)))


async def _recount(pool: AsyncConnectionPool[Any], community_id: int) -> tuple[dict[Any, int], dict[Any, int]]:
    """(the band table's non-zero counts, the counts recomputed from the scores)."""
    async with pool.connection() as conn:
        conn.row_factory = tuple_row  # the backend leaves its dict rows on pooled connections
        kept = await conn.execute(
            "SELECT board, band, members FROM board_bands WHERE community_id = %s AND members <> 0", (community_id,)
        )
        fresh = await conn.execute(
            "SELECT v.board, score_band(v.score), count(*) FROM scores"
            " CROSS JOIN LATERAL (VALUES ('conviction', conviction), ('activity', activity)) AS v(board, score)"
            " WHERE community_id = %s AND v.score > 0 GROUP BY 1, 2",
            (community_id,),
        )
        return (
            {(b, band): n for b, band, n in await kept.fetchall()},
            {(b, band): n for b, band, n in await fresh.fetchall()},
        )


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
    await admin.upsert_community(Community(guild, name="bands"))
    ctx = TenantContext(guild)
    users: list[int] = []
    for step in range(steps):
        action = rng.choice(("import", "update", "update", "remove"))
        if action == "import" or not users:
            rows = [
                MemberRow(
                    discord_user_id=rng.randint(1, 400),  # some already members: their scores are replaced
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
            picked = rng.sample(users, min(len(users), rng.randint(1, 20)))
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
            user = rng.choice(users)
            await admin.remove_member(guild, user)
            users.remove(user)
        kept, fresh = await _recount(pool, guild)
        assert kept == fresh, f"step {step} ({action}): band counts drifted"
    for board in BOARDS:
        expected = await _board(pool, guild, board)
        for rank, (profile_id, score, _) in enumerate(expected, start=1):
            got = await backend.get_rank(ctx, board, profile_id)
            assert got is not None and (got.rank, got.score) == (rank, score), (board, rank)
        for first in range(1, len(expected) + 2, 7):
            page = await backend.get_range(ctx, board, first, first + 9)
            assert [(e.rank, e.profile_id) for e in page] == [
                (first + i, r[0]) for i, r in enumerate(expected[first - 1 : first + 9])
            ]


def test_band_counts_and_ranks_follow_every_write(postgres_dsn: str) -> None:
    loop = asyncio.new_event_loop()
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(postgres_dsn, min_size=1, max_size=4, open=False)
    loop.run_until_complete(pool.open(wait=True))
    guilds = iter(range(7_700_000_000, 7_800_000_000))

    @settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(seed=st.integers(0, 2**32), steps=st.integers(1, 25))
    def check(seed: int, steps: int) -> None:
        loop.run_until_complete(_run(pool, next(guilds), seed, steps))

    try:
        check()
    finally:
        loop.run_until_complete(pool.close())
        loop.close()
