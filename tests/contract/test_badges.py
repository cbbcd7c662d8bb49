"""The badge board (docs/domain.md, "Badges") on every backend: the worked examples, award and revoke,
changes reaching the copies through the outbox, and random communities against a board computed in Python."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import UUID

import pytest

from backends.members import MemberRow
from backends.protocol import BadgeChange, InvalidInput, TenantContext
from bot.domain.records import BadgeBoard
from tests.contract.conftest import World

LAUNCH = datetime(2026, 1, 1, tzinfo=UTC)
ASKED = datetime(2026, 7, 1, tzinfo=UTC)


def award(pid: UUID, badge_type: str, reason: str | None = None) -> BadgeChange:
    return BadgeChange(pid, "award", badge_type, reason)


def revoke(pid: UUID, badge_type: str) -> BadgeChange:
    return BadgeChange(pid, "revoke", badge_type)


def shown(board: BadgeBoard) -> list[tuple[int, str, int, str, str]]:
    return [(e.rank, e.name, e.held, e.tier, e.tenure) for e in board.entries]


async def example_two(world: World) -> tuple[TenantContext, dict[str, UUID]]:
    """Ada (5,000, the seat), Ben (600), Cal (no score) and Dee, with the badges of worked example 2."""
    ctx = await world.community(fedaykin=1, naib=1, at_risk=0)
    rows = [
        MemberRow(discord_user_id=3001, nym="Ada", joined_at=LAUNCH, conviction=Decimal(5000)),
        MemberRow(
            discord_user_id=3002, nym="Ben", joined_at=datetime(2026, 1, 31, tzinfo=UTC), conviction=Decimal(600)
        ),
        MemberRow(discord_user_id=3003, nym="Cal", joined_at=datetime(2026, 4, 2, 0, 0, 1, tzinfo=UTC)),
        MemberRow(discord_user_id=3004, nym="Dee", joined_at=datetime(2026, 5, 1, tzinfo=UTC)),
    ]
    ids = dict(zip(["Ada", "Ben", "Cal", "Dee"], await world.seed_rows(ctx, rows), strict=True))
    a, b, c = ids["Ada"], ids["Ben"], ids["Cal"]
    await world.badges(ctx, [award(a, "og"), award(a, "water_sharer"), award(a, "first_maker")])
    await world.badges(ctx, [award(b, "desert_active"), award(b, "sietch_engaged"), award(b, "water_sharer")])
    await world.badges(ctx, [award(c, "desert_active"), award(c, "former_naib", "one line")])
    await world.badges(ctx, [revoke(c, "former_naib")])
    return replace(ctx, started_at=ASKED), ids


async def test_worked_example_two_shares_rank_one_and_lists_holders_only(world: World) -> None:
    ctx, ids = await example_two(world)
    board = await world.service.get_badge_board(ctx, ids["Dee"])
    assert shown(board) == [
        (1, "Ada", 3, "naib", "og"),
        (1, "Ben", 3, "sietch", "veteran"),
        (3, "Cal", 1, "fremen", "member"),
    ]
    assert board.members == 4 and board.caller_rank is None  # Dee holds nothing


async def test_revoking_and_awarding_again_and_awarding_a_held_type(world: World) -> None:
    """Worked example 3."""
    ctx, ids = await example_two(world)
    a = ids["Ada"]
    assert (await world.badges(ctx, [revoke(a, "water_sharer")])).changed == [True]
    board = await world.service.get_badge_board(ctx, None)
    assert [(e.rank, e.name, e.held) for e in board.entries] == [(1, "Ben", 3), (2, "Ada", 2), (3, "Cal", 1)]
    assert (await world.badges(ctx, [award(a, "water_sharer")])).changed == [True]
    again = await world.badges(ctx, [award(a, "water_sharer")])
    assert again.changed == [False]
    assert [(e.rank, e.name) for e in (await world.service.get_badge_board(ctx, None)).entries] == [
        (1, "Ada"),
        (1, "Ben"),
        (3, "Cal"),
    ]
    assert (await world.badges(ctx, [revoke(ids["Dee"], "og")])).changed == [False]  # not held: nothing changes
    both = await world.badges(ctx, [award(ids["Dee"], "og"), revoke(ids["Dee"], "og")])
    assert both.changed == [True, True]
    assert await world.backend.get_badge_count(ctx, ids["Dee"]) == 0  # award then revoke in one batch: revoked


async def test_a_caller_past_the_first_ten_gets_their_shared_rank(world: World) -> None:
    """Worked example 4: eleven members with 3 badges or more, the caller with 2, nine with none."""
    ctx = await world.community(fedaykin=5, naib=3, at_risk=0)
    ids = await world.seed(ctx, [0] * 21)
    types = ["og", "veteran", "elder", "first_maker"]
    changes = [award(ids[i], t) for i in range(11) for t in types[: 3 + i % 2]]
    await world.badges(ctx, [*changes, award(ids[11], "og"), award(ids[11], "elder")])
    board = await world.service.get_badge_board(ctx, ids[11])
    assert len(board.entries) == 10 and board.caller_rank == 12 and board.members == 21
    await world.badges(ctx, [award(ids[12], "og"), award(ids[12], "water_sharer")])
    assert (await world.service.get_badge_board(ctx, ids[12])).caller_rank == 12


async def test_a_change_naming_no_member_of_the_community_writes_nothing(world: World) -> None:
    ctx = await world.community()
    other = await world.community(world.guild_id + 1)
    mine, theirs = await world.seed(ctx, [1]), await world.seed(other, [1])
    with pytest.raises(InvalidInput):
        await world.badges(ctx, [award(mine[0], "og"), award(theirs[0], "og")])
    assert await world.service.get_badge_board(ctx, None) == BadgeBoard([], None, 1)
    with pytest.raises(InvalidInput):
        BadgeChange(mine[0], "award", "founder")
    with pytest.raises(InvalidInput):
        BadgeChange(mine[0], "award", "og", "x" * 201)


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_random_communities_match_a_board_computed_from_every_member(world: World, seed: int) -> None:
    rnd = random.Random(seed)
    ctx = await world.community(fedaykin=3, naib=1, at_risk=0)
    size = rnd.randint(15, 40)
    rows = [
        MemberRow(
            discord_user_id=5000 + i,
            nym=f"m{i}",
            # Some members join at the same moment: the profile id decides between them.
            joined_at=LAUNCH + timedelta(days=rnd.randint(0, 200), seconds=rnd.choice([0, i])),
            conviction=Decimal(rnd.choice([0, 50, 150, 700, 2000])),
        )
        for i in range(size)
    ]
    ids = await world.seed_rows(ctx, rows)
    held: dict[UUID, set[str]] = {pid: set() for pid in ids}
    types = ["og", "veteran", "elder", "water_sharer", "first_maker", "desert_active"]
    for _ in range(4):
        changes = []
        for _ in range(rnd.randint(5, 30)):
            pid, kind = rnd.choice(ids), rnd.choice(types)
            action = rnd.choice(["award", "award", "revoke"])
            changes.append(BadgeChange(pid, action, kind))  # type: ignore[arg-type]
            (held[pid].add if action == "award" else held[pid].discard)(kind)
        await world.badges(ctx, changes)
    joined = {pid: row.joined_at for pid, row in zip(ids, rows, strict=True)}
    expected = sorted((pid for pid in ids if held[pid]), key=lambda p: (-len(held[p]), joined[p], p.int))
    for caller in rnd.sample(ids, 5):
        board = await world.service.get_badge_board(ctx, caller)
        assert [e.profile_id for e in board.entries] == expected[:10]
        for e in board.entries:
            assert e.held == len(held[e.profile_id])
            assert e.rank == 1 + sum(1 for p in ids if len(held[p]) > e.held)
        mine = len(held[caller])
        shown_ids = {e.profile_id for e in board.entries}
        want = 1 + sum(1 for p in ids if len(held[p]) > mine) if mine and caller not in shown_ids else None
        assert board.caller_rank == want and board.members == size
