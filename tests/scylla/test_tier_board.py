"""The tier progression board on Scylla past the first ranks kept with the pointer, between rebuilds: the
counts above a score come from the fences and one rank range with the changes since laid over them, and
every answer is PostgreSQL's; a tier page costs a bounded number of reads whatever the board's size."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from backends.members import MemberRow
from backends.protocol import Community, ScoreUpdate, TenantContext
from backends.scylla.snapshots import HEAD_RANKS
from bot.domain.service import HotPathService
from bot.replication.backfill import backfill
from tests.contract.test_tiers import score
from tests.scylla.conftest import Pair, counted_statements

D = Decimal
SIZE = 3 * HEAD_RANKS


async def answers(service: HotPathService, guild: int, ids: list[UUID], scores: list[Decimal]) -> dict[str, Any]:
    ctx = await service.open_context(guild)
    found: dict[str, Any] = {"board": await service.get_tier_board(ctx, None)}
    for s in scores:
        for inclusive in (False, True):
            found[f"above {s} {inclusive}"] = await service.backend.count_above(
                ctx, "conviction", s, inclusive=inclusive
            )
    found["callers"] = [(await service.get_tier_board(ctx, pid, limit=1)).caller for pid in ids]
    return found


async def same(pair: Pair, guild: int, ids: list[UUID], rnd: random.Random) -> None:
    pair.scylla.pointer_ttl = 0.0  # the pointer and the change log are read on every request
    scores = [D(100), D(500), D(1000), D(0), *(s for s in (score(rnd) for _ in range(10)))]
    callers = rnd.sample(ids, 40)
    pg = HotPathService(pair.source, writer=pair.writer)
    sc = HotPathService(pair.scylla, writer=pair.writer)
    want, got = await answers(pg, guild, callers, scores), await answers(sc, guild, callers, scores)
    for name in want:
        assert got[name] == want[name], name


async def test_a_board_past_the_head_between_and_after_rebuilds(pair: Pair, new_guild_id: int) -> None:
    rnd, guild = random.Random(3), new_guild_id
    await pair.admin.upsert_community(Community(guild, fedaykin=40, naib=5, at_risk=30, waitlist_end=60))
    joined = datetime(2024, 1, 1, tzinfo=UTC)
    rows = [
        MemberRow(discord_user_id=i + 1, joined_at=joined + timedelta(days=rnd.randrange(3)), conviction=score(rnd))
        for i in range(SIZE)
    ]
    ids = await pair.admin.import_members(guild, rows)
    await backfill(pair.copy_source, pair.scylla.replica, guild)
    await pair.scylla.recalculate(TenantContext(guild), "conviction")
    await same(pair, guild, ids, rnd)
    ctx = TenantContext(guild)
    for round_ in range(3):
        moved = rnd.sample(ids, rnd.choice([1, 10, 60]))
        await pair.writer.apply(ctx, [ScoreUpdate(pid, "conviction", score(rnd), "token_hold") for pid in moved])
        await same(pair, guild, ids, rnd)  # the changes laid over the snapshot
        if round_ == 1:
            await pair.scylla.recalculate(ctx, "conviction")
            await same(pair, guild, ids, rnd)


async def test_a_tier_page_is_a_bounded_number_of_reads(pair: Pair, new_guild_id: int) -> None:
    """At most a dozen statements for a board of 600 and one of 4,800, the caller's rank included (the
    fences are read once per version, before): three counts, three rank ranges, the caller's row and two
    more counts, each one partition (or two where a range crosses one)."""
    counts = []
    for n, size in enumerate((SIZE, 8 * SIZE)):
        guild = new_guild_id + n
        await pair.admin.upsert_community(Community(guild, fedaykin=40, naib=5, at_risk=30, waitlist_end=60))
        convictions = [D(1200) - D(size - i) * D(1200) / D(size) + D("0.5") for i in range(size)]
        ids = await pair.admin.import_members(
            guild, [MemberRow(discord_user_id=i + 1, conviction=c) for i, c in enumerate(convictions)]
        )
        await backfill(pair.copy_source, pair.scylla.replica, guild)
        await pair.scylla.recalculate(TenantContext(guild), "conviction")
        service = HotPathService(pair.scylla)
        await service.get_tier_board(await service.open_context(guild), ids[0])  # the fences, once
        with counted_statements(pair.scylla.cql) as statements:
            board = await service.get_tier_board(await service.open_context(guild), ids[0])
        assert board.caller is not None and len(board.entries) == 10
        counts.append(statements[0])
    assert max(counts) <= 12, counts
