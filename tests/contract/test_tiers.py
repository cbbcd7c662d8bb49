"""The tier progression board (docs/domain.md, "Tier progression") on every backend: the worked examples,
counts above a score, and random communities against a board computed from every member in Python."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from uuid import UUID

import pytest

from backends.members import MemberRow
from backends.protocol import ScoreUpdate, TenantContext
from bot.domain.progression import conviction_tier
from bot.domain.records import TierBoard
from tests.contract.conftest import EPOCH, World

D = Decimal
NAMES = ["Ada", "Ben", "Cal", "Dee", "Eve", "Fay", "Gus", "Hal"]


async def named(world: World, ctx: TenantContext, convictions: list[str | int]) -> dict[str, UUID]:
    """Members named after NAMES (then m8, m9, ...), joining one second apart in list order."""
    names = [NAMES[i] if i < len(NAMES) else f"m{i}" for i in range(len(convictions))]
    rows = [
        MemberRow(discord_user_id=2000 + i, nym=name, joined_at=EPOCH + timedelta(seconds=i), conviction=D(str(c)))
        for i, (name, c) in enumerate(zip(names, convictions, strict=True))
    ]
    return dict(zip(names, await world.seed_rows(ctx, rows), strict=True))


def shown(board: TierBoard) -> list[tuple[int, str, str, str, Decimal]]:
    return [(e.rank, e.name, e.tier, e.next_tier, e.distance) for e in board.entries]


async def test_rank_tiers_and_sayyadina_are_left_out_and_ties_go_to_the_higher_conviction(world: World) -> None:
    """Worked example 1 (and the texts of example 2 come from these records)."""
    ctx = await world.community(fedaykin=2, naib=1, at_risk=1)
    ids = await named(world, ctx, [5000, 1200, 1100, 990, 490, 480, 95, 0])
    board = await world.service.get_tier_board(ctx, ids["Hal"])
    assert shown(board) == [
        (1, "Gus", "fremen", "stillsuit", D(5)),
        (2, "Dee", "sietch", "sayyadina", D(10)),
        (3, "Eve", "stillsuit", "sietch", D(10)),
        (4, "Fay", "stillsuit", "sietch", D(20)),
    ]
    assert board.total == 4 and board.caller is None  # Hal is not ranked
    for left_out in ("Ada", "Ben", "Cal"):
        assert (await world.service.get_tier_board(ctx, ids[left_out])).caller is None
    eve = (await world.service.get_tier_board(ctx, ids["Eve"])).caller
    assert eve is not None and (eve.rank, eve.name, eve.conviction) == (3, "Eve", D(490))


async def test_distances_order_exactly_though_they_show_rounded(world: World) -> None:
    """Worked example 3: 499.6, 99.5, 0.4 and 100 outside positions 1..F; 1,000 exactly is sayyadina."""
    ctx = await world.community(fedaykin=2, naib=1, at_risk=1)
    await named(world, ctx, [5000, 4000, "0.4", "99.5", "1000", "100", "499.6"])
    board = await world.service.get_tier_board(ctx, None)
    assert [(e.name, e.tier, e.distance) for e in board.entries] == [
        ("Gus", "stillsuit", D("0.4")),
        ("Dee", "fremen", D("0.5")),
        ("Cal", "fremen", D("99.6")),
        ("Fay", "stillsuit", D(400)),
    ]


async def test_a_caller_past_the_first_ten_gets_their_rank(world: World) -> None:
    """Worked example 4: twelve members on the board, the caller 12th with 40 (fremen, 60 away), the
    eleven before them spread over the three bands."""
    ctx = await world.community(fedaykin=2, naib=1, at_risk=1)
    board_members = [990, 960, 480, 470, 450, 95, 90, 85, 70, 50, 45]  # 10 to 55 away
    ids = await named(world, ctx, [5000, 4000, *board_members, 40])
    board = await world.service.get_tier_board(ctx, ids["m13"])
    assert len(board.entries) == 10 and board.total == 12
    assert board.caller is not None
    assert (board.caller.rank, board.caller.tier, board.caller.next_tier, board.caller.distance) == (
        12,
        "fremen",
        "stillsuit",
        D(60),
    )


async def test_equal_distances_in_other_bands_rank_by_conviction(world: World) -> None:
    """940 (sietch), 440 (stillsuit) and 40 (fremen) are all 60 away: in that order, before 39 (61)."""
    ctx = await world.community(fedaykin=1, naib=1, at_risk=0)
    ids = await named(world, ctx, [5000, 39, 40, 440, 940, 95, 990])
    ranks = {}
    for name in ("Ben", "Cal", "Dee", "Eve", "Fay", "Gus"):
        caller = (await world.service.get_tier_board(ctx, ids[name], limit=1)).caller
        assert caller is not None
        ranks[name] = caller.rank
    assert ranks == {"Fay": 1, "Gus": 2, "Eve": 3, "Dee": 4, "Cal": 5, "Ben": 6}


async def test_only_rank_tiers_make_an_empty_board(world: World) -> None:
    """Worked example 5, and an empty community."""
    ctx = await world.community(fedaykin=2, naib=1, at_risk=1)
    ids = await named(world, ctx, [5000, 50])
    board = await world.service.get_tier_board(ctx, ids["Ben"])
    assert (board.entries, board.caller, board.total) == ([], None, 0)
    empty = await world.community(guild_id=world.guild_id + 1, fedaykin=2, naib=1, at_risk=1)
    assert await world.service.get_tier_board(empty, None) == TierBoard([], None, 0)


async def test_count_above_a_score_and_at_or_above_it(world: World) -> None:
    ctx = await world.community()
    await world.seed(ctx, ["1000", "500", "500", "499.999999999999999999999999999999", "100", "0", "-5"])
    counts = {
        (score, inclusive): await world.backend.count_above(ctx, "conviction", D(score), inclusive=inclusive)
        for score in ("2000", "1000", "500", "499.999999999999999999999999999999", "100", "0", "-10")
        for inclusive in (False, True)
    }
    assert counts == {
        ("2000", False): 0,
        ("2000", True): 0,
        ("1000", False): 0,
        ("1000", True): 1,
        ("500", False): 1,
        ("500", True): 3,
        ("499.999999999999999999999999999999", False): 3,
        ("499.999999999999999999999999999999", True): 4,
        ("100", False): 4,
        ("100", True): 5,
        ("0", False): 5,
        ("0", True): 5,
        ("-10", False): 5,
        ("-10", True): 5,
    }


# --- random communities against an oracle -----------------------------------------------------------


@dataclass(frozen=True)
class Member:
    profile_id: UUID
    conviction: Decimal
    joined_at_s: int


NEXT = {"fremen": D(100), "stillsuit": D(500), "sietch": D(1000)}


def oracle(members: list[Member], fedaykin: int) -> list[tuple[UUID, Decimal]]:
    """The whole tier board from every member: ranked members in "Ordering", positions 1..F and tiers
    without a conviction tier above them left out, then ordered by (distance, position)."""
    ranked = sorted(
        (m for m in members if m.conviction > 0), key=lambda m: (-m.conviction, m.joined_at_s, m.profile_id)
    )
    board = []
    for position, m in enumerate(ranked, start=1):
        tier = conviction_tier(m.conviction)
        if position > fedaykin and tier in NEXT:
            board.append((NEXT[tier] - m.conviction, position, m.profile_id))
    board.sort()
    return [(pid, distance) for distance, _, pid in board]


def score(rnd: random.Random) -> Decimal:
    """Scores crowding the thresholds, with ties, exact hits and unranked values."""
    return rnd.choice(
        [
            D(rnd.choice([0, -1, 100, 500, 1000, 5000, 99, 499, 999])),
            D(rnd.randrange(1, 1300)),
            D(rnd.randrange(1, 130000)) / 100,
            rnd.choice([D(100), D(500), D(1000)]) - D(rnd.randrange(1, 60)),
            D(rnd.choice(["99.5", "499.5", "0.5", "0.000000000000000000000000000001"])),
        ]
    )


@pytest.mark.parametrize("seed", range(5))
async def test_random_communities_match_the_oracle(world: World, seed: int) -> None:
    rnd = random.Random(seed)
    size = rnd.choice([rnd.randrange(1, 40), rnd.randrange(40, 400)])
    fedaykin = rnd.randrange(1, 60)
    ctx = await world.community(fedaykin=fedaykin, naib=1, at_risk=0, waitlist_end=fedaykin)
    rows = [
        MemberRow(
            discord_user_id=5000 + i,
            nym=f"r{i}",
            joined_at=EPOCH + timedelta(seconds=rnd.randrange(3)),  # few join times: ties to the profile id
            conviction=score(rnd),
        )
        for i in range(size)
    ]
    ids = await world.seed_rows(ctx, rows)
    members = [
        Member(pid, r.conviction, int((r.joined_at - EPOCH).total_seconds())) for pid, r in zip(ids, rows, strict=True)
    ]
    await check(world, ctx, members, fedaykin, rnd)

    # Some members move through the score-update path; the copies rebuild their boards from it.
    moved = rnd.sample(range(size), k=min(size, 15))
    updates = [ScoreUpdate(members[i].profile_id, "conviction", score(rnd), "token_hold") for i in moved]
    await world.service.apply_score_updates(ctx, updates)
    await world.backend.recalculate(ctx, "conviction")
    for update in updates:
        i = ids.index(update.profile_id)
        members[i] = Member(update.profile_id, update.value, members[i].joined_at_s)
    await check(world, ctx, members, fedaykin, rnd)


async def check(world: World, ctx: TenantContext, members: list[Member], fedaykin: int, rnd: random.Random) -> None:
    want = oracle(members, fedaykin)
    board = await world.service.get_tier_board(ctx, None)
    assert [(e.profile_id, e.distance) for e in board.entries] == want[:10]
    assert [e.rank for e in board.entries] == list(range(1, min(10, len(want)) + 1))
    assert board.total == len(want)
    rank_of = {pid: rank for rank, (pid, _) in enumerate(want, start=1)}
    for m in rnd.sample(members, k=min(len(members), 25)):
        caller = (await world.service.get_tier_board(ctx, m.profile_id, limit=3)).caller
        got = (caller.rank, caller.distance) if caller is not None else None
        expected = (rank_of[m.profile_id], want[rank_of[m.profile_id] - 1][1]) if m.profile_id in rank_of else None
        assert got == expected, m


async def test_a_board_deeper_than_its_first_ranks_and_its_first_thousand(world: World) -> None:
    """1,100 members one apart: the thresholds fall at ranks 101, 601 and 1001, past the first ranks a copy
    keeps at hand and across its rank partitions."""
    ctx = await world.community()
    convictions = [1100 - i for i in range(1100)]
    ids = await world.seed(ctx, convictions)
    for score, inclusive, count in [(1000, True, 101), (1000, False, 100), (500, True, 601), (100, True, 1001)]:
        assert await world.backend.count_above(ctx, "conviction", D(score), inclusive=inclusive) == count
    members = [Member(pid, D(c), i) for i, (pid, c) in enumerate(zip(ids, convictions, strict=True))]
    await check(world, ctx, members, 69, random.Random(11))
