"""Scores of any magnitude and precision, on every backend: exact order, exact distances, one tie order
however a score was written, and integer ranks."""

from __future__ import annotations

from decimal import Context, Decimal

from tests.contract.conftest import World

D = Decimal
WIDE = Context(prec=1000)  # the test's own exact arithmetic (the default context keeps 28 digits)
WEI = D("1e-18")
BIG = D("1000000000000000000000000000001.000000000000000000")  # 31 integer digits, 18 decimals
BIG_UP, BIG_DOWN = WIDE.add(BIG, WEI), WIDE.subtract(BIG, WEI)


async def test_scores_that_differ_past_the_28th_digit_are_ordered_and_measured_exactly(world: World) -> None:
    ctx = await world.community(fedaykin=2, naib=1, at_risk=1, waitlist_end=3)
    # The smaller score joins first: a 28-digit comparison would call them equal and rank it first.
    ids = await world.seed(ctx, [BIG, BIG_UP, BIG_DOWN])
    service = world.service
    first, second, third = [await service.get_position(ctx, pid) for pid in (ids[1], ids[0], ids[2])]
    assert first is not None and second is not None and third is not None
    assert (first.position, second.position, third.position) == (1, 2, 3)
    assert second.distance_to_above == WEI and second.distance_to_below == WEI
    assert first.distance_to_below == WEI and third.distance_to_above == WEI
    assert third.distance_to_entry == WEI
    page = await service.get_leaderboard(ctx, "conviction", 1, 10)
    assert [e.score for e in page.entries] == [BIG_UP, BIG, BIG_DOWN]


async def test_one_score_written_two_ways_ties_and_breaks_by_join_order(world: World) -> None:
    ctx = await world.community(fedaykin=1, naib=1, at_risk=0, waitlist_end=5)
    long, short = "2980.9579870417282000000000", "2980.9579870417282"
    ids = await world.seed(ctx, [5000, long, short, long, short])
    ranks = [(await world.service.get_rank(ctx, pid, "conviction")) for pid in ids]
    assert [r.rank for r in ranks if r is not None] == [1, 2, 3, 4, 5]
    two = await world.service.get_waitlist(ctx, 2)
    three = await world.service.get_waitlist(ctx, 3)
    assert [(w.position, w.profile_id) for w in two] == [(w.position, w.profile_id) for w in three[:2]]
    assert [w.profile_id for w in three] == ids[1:4]
    assert {w.distance_to_entry for w in three} == {WIDE.subtract(D(5000), D(short))}


async def test_wei_sized_and_enormous_scores_rank_and_measure_exactly(world: World) -> None:
    ctx = await world.community(fedaykin=2, naib=1, at_risk=1, waitlist_end=4)
    huge = D("1e400")
    wei = D("110000000000000000000000000.000000000000000001")  # 1.1e26 and one wei
    ids = await world.seed(ctx, [wei, huge, D("0.000000000000000001")])
    top = await world.service.get_position(ctx, ids[1])
    assert top is not None and top.position == 1 and top.distance_to_below == WIDE.subtract(huge, wei)
    bottom = await world.service.get_position(ctx, ids[2])
    assert bottom is not None and bottom.distance_to_above == WIDE.subtract(wei, WEI)
    threshold = await world.service.get_threshold(ctx)
    assert threshold.entry_threshold == wei and threshold.gap_to_entry == WIDE.subtract(wei, WEI)


async def test_ranks_are_integers_on_every_read(world: World) -> None:
    ctx = await world.community()
    ids = await world.seed(ctx, [30, 20, 10])
    service = world.service
    above, me, below = await world.backend.get_neighbours(ctx, "conviction", ids[1])
    entries = [
        *(await world.backend.get_range(ctx, "conviction", 1, 3)),
        await world.backend.get_rank(ctx, "conviction", ids[2]),
        above,
        me,
        below,
    ]
    assert all(e is not None and type(e.rank) is int for e in entries)
    position = await service.get_position(ctx, ids[0])
    assert position is not None and type(position.position) is int
    assert type((await service.get_threshold(ctx)).ranked) is int


async def test_scores_at_the_edges_of_the_range_rank_and_measure_exactly(world: World) -> None:
    """The largest and smallest scores Sietch accepts (first digit at the 10^1000 and 10^-1000 place),
    10^-1000 apart: orders and distances are exact across 2001 digits."""
    exact = Context(prec=3000)
    ctx = await world.community(fedaykin=2, naib=1, at_risk=1, waitlist_end=5)
    step = D("1e-1000")
    top, tiny = D("9e1000"), D("2e-1000")
    top_tail = exact.add(top, step)
    ids = await world.seed(ctx, [top, top_tail, tiny, step])
    service = world.service
    positions = [await service.get_position(ctx, pid) for pid in (ids[1], ids[0], ids[2], ids[3])]
    assert all(p is not None for p in positions)
    first, second, third, fourth = [p for p in positions if p is not None]
    assert [p.position for p in (first, second, third, fourth)] == [1, 2, 3, 4]
    assert first.distance_to_below == step and second.distance_to_above == step
    assert (
        second.distance_to_below == exact.subtract(top, tiny)
        and len(second.distance_to_below.as_tuple().digits) == 2001
    )
    assert third.distance_to_entry == exact.subtract(top, tiny) and fourth.distance_to_above == step
    page = await service.get_leaderboard(ctx, "conviction", 1, 10)
    assert [e.score for e in page.entries] == [top_tail, top, tiny, step]
