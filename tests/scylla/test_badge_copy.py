"""Badges on the Scylla copy: a backfill copies them, a change waits in the outbox (and readiness judges the
copy by it) until the relay lands it, verify compares the badge board and ranks, and the board and a
caller's rank are a fixed number of reads at any size."""

from __future__ import annotations

import contextlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import UUID

from backends.members import MemberRow
from backends.protocol import BadgeChange, BadgeFacts, Community, TenantContext
from bot.replication.backfill import backfill
from bot.replication.verify import compare
from bot.routing.readiness import Readiness
from tests.scylla.conftest import Pair, counted_statements

EPOCH = datetime(2025, 1, 1, tzinfo=UTC)


async def community(pair: Pair, guild: int, members: int) -> tuple[TenantContext, list[UUID]]:
    settings = Community(guild, name="Arrakis", fedaykin=3, naib=1, at_risk=0)
    await pair.admin.upsert_community(settings)
    rows = [
        MemberRow(discord_user_id=100 + i, nym=f"m{i}", joined_at=EPOCH + timedelta(hours=i), conviction=Decimal(i))
        for i in range(members)
    ]
    ids = await pair.admin.import_members(guild, rows)
    return TenantContext(guild).with_community(settings), ids


async def test_a_backfill_copies_badges_and_the_outbox_the_changes_after_it(pair: Pair, new_guild_id: int) -> None:
    ctx, ids = await community(pair, new_guild_id, 30)
    kinds = ["og", "elder", "veteran", "water_sharer"]
    await pair.source.apply_badge_changes(
        ctx, [BadgeChange(ids[i], "award", kinds[j]) for i in range(12) for j in range(i % 4 + 1)]
    )
    await backfill(pair.copy_source, pair.scylla.replica, new_guild_id)
    assert await compare(pair.postgres_service(), pair.scylla_service(), new_guild_id, ids, sample=0) == []
    await pair.mirror.flush()  # the changes the backfill already holds leave the outbox: replays change nothing
    assert await compare(pair.postgres_service(), pair.scylla_service(), new_guild_id, ids, sample=0) == []

    readiness = Readiness(pair.copy_source, {"scylla": pair.scylla.replica}, max_lag_seconds=0.0, cache_seconds=0)
    assert await readiness.check("scylla", new_guild_id) is None
    # Queued and not yet copied: a member moves from 4 badges to 1, another from none to 2.
    await pair.source.apply_badge_changes(
        ctx,
        [
            *(BadgeChange(ids[3], "revoke", k) for k in kinds[1:]),
            BadgeChange(ids[20], "award", "og"),
            BadgeChange(ids[20], "award", "elder"),
        ],
        enqueue=True,
    )
    assert await pair.copy_source.pending(new_guild_id) == 2
    assert (await readiness.check("scylla", new_guild_id) or "").startswith("not ready: behind")
    assert await compare(pair.postgres_service(), pair.scylla_service(), new_guild_id, ids, sample=0) != []
    await pair.mirror.flush()
    assert await readiness.check("scylla", new_guild_id) is None
    assert await compare(pair.postgres_service(), pair.scylla_service(), new_guild_id, ids, sample=0) == []
    # The member's old place (4 badges) is cleared, not listed twice.
    board = await pair.scylla.get_badge_board(ctx, 50)
    assert [e.profile_id for e in board].count(ids[3]) == 1


async def test_a_badge_change_the_copies_are_not_told_of_voids_a_half_done_backfill(
    pair: Pair, new_guild_id: int
) -> None:
    """`writes: postgres` for badges: the change bypasses the outbox, so a backfill begun before it must not
    resume and finish at its old version (the copy would hold the old badges and claim to be complete)."""
    ctx, ids = await community(pair, new_guild_id, 12)

    class Killed(Exception):
        pass

    def killed(done: int, total: int) -> None:
        raise Killed

    with contextlib.suppress(Killed):
        await backfill(pair.copy_source, pair.scylla.replica, new_guild_id, progress=killed, batch=4)
    await pair.source.apply_badge_changes(ctx, [BadgeChange(ids[10], "award", "og")], enqueue=False)
    readiness = Readiness(pair.copy_source, {"scylla": pair.scylla.replica}, cache_seconds=0)
    await backfill(pair.copy_source, pair.scylla.replica, new_guild_id, batch=4)
    assert await readiness.check("scylla", new_guild_id) is None
    assert await compare(pair.postgres_service(), pair.scylla_service(), new_guild_id, ids, sample=0) == []


async def test_verify_reports_a_copy_whose_badge_counts_differ(pair: Pair, new_guild_id: int) -> None:
    ctx, ids = await community(pair, new_guild_id, 5)
    await pair.source.apply_badge_changes(ctx, [BadgeChange(ids[0], "award", "og"), BadgeChange(ids[1], "award", "og")])
    await backfill(pair.copy_source, pair.scylla.replica, new_guild_id)
    version = await pair.copy_source.score_version(new_guild_id) or 0
    # A histogram no source ever had, written past the source's version.
    await pair.scylla.replica.put_badge_counts(new_guild_id, {1: 1, 3: 1}, BadgeFacts(5, EPOCH), version + 1)
    found = {d.what for d in await compare(pair.postgres_service(), pair.scylla_service(), new_guild_id, ids, sample=0)}
    assert found == {f"badge rank of {ids[0]}", f"badge rank of {ids[1]}"}


async def test_the_board_and_a_rank_are_a_fixed_number_of_reads_at_any_size(pair: Pair, new_guild_id: int) -> None:
    """The board (one partition with a LIMIT), the facts row, positions 1..F and the others' scores for the
    tiers, the caller's count and the histogram: as many statements at 400 members as at 40."""
    counts = []
    for guild, size in ((new_guild_id, 40), (new_guild_id + 1, 400)):
        ctx, ids = await community(pair, guild, size)
        await pair.source.apply_badge_changes(ctx, [BadgeChange(pid, "award", "og") for pid in ids[::2]])
        await pair.source.apply_badge_changes(ctx, [BadgeChange(pid, "award", "elder") for pid in ids[::3]])
        await backfill(pair.copy_source, pair.scylla.replica, guild)
        await pair.scylla_service().get_badge_board(ctx, ids[-1])  # settles pointers and fences once
        with counted_statements(pair.scylla.cql) as statements:
            board = await pair.scylla_service().get_badge_board(replace(ctx, pins={}), ids[-1])
        assert len(board.entries) == 10 and board.caller_rank is not None
        counts.append(statements[0])
    # The listed members' scores are one read per score shard they fall in (at most ten): the count varies
    # with the members listed, never with the community's size.
    assert max(counts) <= 18, counts
