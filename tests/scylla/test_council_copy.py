"""The naib council on the Scylla copy: a backfill copies it, a score write that moves a seat carries it
through the outbox (and one that moves none leaves it), verify compares councils, and a seat read is a
fixed number of statements at any size."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import UUID

from backends.members import MemberRow
from backends.protocol import Community, Council, ScoreUpdate, TenantContext
from bot.replication.backfill import backfill
from bot.replication.verify import compare
from tests.scylla.conftest import Pair, counted_statements

EPOCH = datetime(2025, 1, 1, tzinfo=UTC)


async def community(pair: Pair, guild: int, members: int, naib: int = 3) -> tuple[TenantContext, list[UUID]]:
    settings = Community(guild, name="Arrakis", fedaykin=5, naib=naib, at_risk=0)
    await pair.admin.upsert_community(settings)
    rows = [
        MemberRow(discord_user_id=100 + i, nym=f"m{i}", joined_at=EPOCH + timedelta(hours=i), conviction=Decimal(i))
        for i in range(members)
    ]
    ids = await pair.admin.import_members(guild, rows)
    return TenantContext(guild).with_community(settings), ids


def sets(ids: list[UUID], values: dict[int, int | str]) -> list[ScoreUpdate]:
    return [ScoreUpdate(ids[i], "conviction", Decimal(str(v)), "token_hold") for i, v in values.items()]


async def test_a_backfill_copies_the_council_and_the_outbox_its_moves(pair: Pair, new_guild_id: int) -> None:
    ctx, ids = await community(pair, new_guild_id, 12)
    await backfill(pair.copy_source, pair.scylla.replica, new_guild_id)
    council = await pair.scylla.get_council(ctx)
    assert {s.profile_id for s in council.seats} == set(ids[9:12]) and council.former == ()
    assert council == await pair.source.get_council(ctx)

    # Two challengers through the outbox: the seats move and the copy follows once the relay ran.
    await pair.writer.apply(ctx, sets(ids, {0: 50, 1: 40}))
    moved = await pair.source.get_council(ctx)
    assert {s.profile_id for s in moved.seats} == {ids[0], ids[1], ids[11]}
    assert await pair.scylla.get_council(ctx) == moved
    assert [f.profile_id for f in moved.former] != [] and moved.former_count == 2
    # A write that moves no seat leaves the council (and its version) as it was.
    await pair.writer.apply(ctx, sets(ids, {2: 3}))
    assert await pair.scylla.get_council(ctx) == moved == await pair.source.get_council(ctx)
    await pair.scylla.recalculate(ctx, "conviction")
    assert await compare(pair.postgres_service(), pair.scylla_service(), new_guild_id, ids, sample=0) == []


async def test_verify_reports_a_council_that_differs(pair: Pair, new_guild_id: int) -> None:
    ctx, ids = await community(pair, new_guild_id, 6)
    await backfill(pair.copy_source, pair.scylla.replica, new_guild_id)
    assert await compare(pair.postgres_service(), pair.scylla_service(), new_guild_id, ids, sample=0) == []
    version = await pair.copy_source.score_version(new_guild_id) or 0
    council = await pair.source.get_council(ctx)
    # A council no source ever had (one seat short), written past the source's version.
    await pair.scylla.replica.put_council(new_guild_id, replace(council, seats=council.seats[1:]), version + 1)
    found = {d.what for d in await compare(pair.postgres_service(), pair.scylla_service(), new_guild_id, ids, sample=0)}
    assert found == {"naib council"}


async def test_a_seat_read_is_a_fixed_number_of_statements_at_any_size(pair: Pair, new_guild_id: int) -> None:
    """The council row and positions 1..F: as many statements at 400 members (and many former members)
    as at 40."""
    counts = []
    for guild, size in ((new_guild_id, 40), (new_guild_id + 1, 400)):
        ctx, ids = await community(pair, guild, size, naib=2)
        for step in range(0, size // 10):  # seats change hands: former members pile up
            await pair.source.apply_score_updates(ctx, sets(ids, {step: size + step}))
        await backfill(pair.copy_source, pair.scylla.replica, guild)
        await pair.scylla_service().get_council(ctx)  # settles pointers once
        with counted_statements(pair.scylla.cql) as statements:
            council = await pair.scylla_service().get_council(replace(ctx, pins={}))
        assert len(council.seats) == 2 and len(council.former) == min(25, council.former_count)
        assert council.former_count >= size // 10 - 2
        counts.append(statements[0])
    assert counts[0] == counts[1], counts
    assert await pair.scylla.get_council(TenantContext(new_guild_id + 2)) == Council()
