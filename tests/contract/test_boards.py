"""Leaderboard pages, top, rank and the activity board, on every backend."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from backends.protocol import InvalidInput
from tests.contract.conftest import World


async def test_pages_cover_the_board_in_order(world: World) -> None:
    ctx = await world.community()
    ids = await world.seed(ctx, [1000 - i for i in range(25)])
    pages = [await world.service.get_leaderboard(ctx, "conviction", page=n, page_size=10) for n in (1, 2, 3)]
    assert [len(p.entries) for p in pages] == [10, 10, 5]
    assert [p.has_more for p in pages] == [True, True, False]
    assert {p.total for p in pages} == {25} and pages[0].pages == 3
    assert [e.profile_id for p in pages for e in p.entries] == ids
    assert [e.rank for p in pages for e in p.entries] == list(range(1, 26))


async def test_a_page_past_the_end_is_empty(world: World) -> None:
    ctx = await world.community()
    await world.seed(ctx, [5, 4, 3])
    page = await world.service.get_leaderboard(ctx, "conviction", page=7)
    assert (page.entries, page.total, page.has_more, page.page) == ([], 3, False, 7)


async def test_page_below_one_is_invalid(world: World) -> None:
    ctx = await world.community()
    with pytest.raises(InvalidInput):
        await world.service.get_leaderboard(ctx, "conviction", page=0)
    with pytest.raises(InvalidInput):
        await world.service.get_leaderboard(ctx, "conviction", page=1, page_size=101)


async def test_entries_carry_tier_and_display_name(world: World) -> None:
    ctx = await world.community()
    await world.seed(ctx, [600 - i for i in range(600)])
    top = await world.service.get_top(ctx, "conviction", 3)
    assert [(e.rank, e.nym, e.tier) for e in top] == [
        (1, "member0", "diamond"),
        (2, "member1", "diamond"),
        (3, "member2", "diamond"),
    ]
    tiers = {}
    for rank in (10, 11, 50, 51, 100, 101, 500, 501):
        page = await world.service.get_leaderboard(ctx, "conviction", page=rank, page_size=1)
        tiers[rank] = page.entries[0].tier
    assert tiers == {
        10: "diamond",
        11: "platinum",
        50: "platinum",
        51: "gold",
        100: "gold",
        101: "silver",
        500: "silver",
        501: "bronze",
    }


async def test_rank_of_a_profile_on_each_board(world: World) -> None:
    ctx = await world.community()
    ids = await world.seed(ctx, [30, 20, 10], activities=[1, 0, 5])
    conviction = await world.service.get_rank(ctx, ids[2], "conviction")
    activity = await world.service.get_rank(ctx, ids[2], "activity")
    assert conviction is not None and (conviction.rank, conviction.score) == (3, Decimal(10))
    assert activity is not None and (activity.rank, activity.score) == (1, Decimal(5))
    assert await world.service.get_rank(ctx, ids[1], "activity") is None
    assert await world.service.get_rank(ctx, uuid.uuid4(), "conviction") is None
    page = await world.service.get_leaderboard(ctx, "activity")
    assert [e.profile_id for e in page.entries] == [ids[2], ids[0]] and page.total == 2


async def test_get_scores_leaves_out_unknown_ids(world: World) -> None:
    ctx = await world.community()
    ids = await world.seed(ctx, [7], activities=[3])
    stranger = uuid.uuid4()
    scores = await world.service.get_scores(ctx, [ids[0], stranger])
    assert set(scores) == {ids[0]}
    assert (scores[ids[0]].conviction, scores[ids[0]].activity) == (Decimal(7), Decimal(3))
    assert await world.service.get_score(ctx, stranger) is None


async def test_wallet_shown_when_no_nym(world: World) -> None:
    from backends.members import MemberRow

    ctx = await world.community()
    await world.seed_rows(
        ctx,
        [
            MemberRow(wallet_address="0xabcdef0123456789", conviction=Decimal(5)),
            MemberRow(discord_user_id=9, conviction=Decimal(4)),
        ],
    )
    names = [e.nym for e in (await world.service.get_leaderboard(ctx, "conviction")).entries]
    assert names == ["0xabcd...6789", "Unknown"]
