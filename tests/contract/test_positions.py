"""The worked examples of docs/domain.md and edge cases, through the service, on every backend."""

from __future__ import annotations

from decimal import Decimal

from backends.position_rows import compose_threshold_rows
from tests.contract.conftest import World

D = Decimal


def descending(n: int, top: int = 1000, step: int = 10) -> list[int]:
    return [top - step * i for i in range(n)]


async def test_threshold_of_100_ranked_members(world: World) -> None:
    ctx = await world.community()
    await world.seed(ctx, descending(100))
    t = await world.service.get_threshold(ctx)
    assert (t.ranked, t.eligible_count, t.waitlist_count) == (100, 69, 31)
    assert t.entry_threshold == D(320)
    assert t.gap_to_entry == D(10)


async def test_position_10_between_550_and_450(world: World) -> None:
    ctx = await world.community()
    ids = await world.seed(ctx, [*descending(8, top=2000), 550, 500, 450, 400])
    p = await world.service.get_position(ctx, ids[9])
    assert p is not None
    assert (p.position, p.conviction) == (10, D(500))
    assert (p.distance_to_above, p.distance_to_below) == (D(50), D(50))
    assert p.distance_to_entry is None
    assert (p.is_fedaykin, p.is_naib, p.is_at_risk) == (True, False, False)


async def test_position_75_measures_distance_to_entry(world: World) -> None:
    ctx = await world.community()
    scores = [*descending(68, top=5000), 200, *descending(5, top=150), 100, 50]
    ids = await world.seed(ctx, scores)
    p = await world.service.get_position(ctx, ids[74])
    assert p is not None and p.position == 75 and p.conviction == D(100)
    assert p.distance_to_entry == D(100)
    assert not p.is_fedaykin and not p.is_at_risk and not p.is_naib


async def test_waitlist_with_limit_two(world: World) -> None:
    ctx = await world.community()
    await world.seed(ctx, [*descending(68, top=5000), 200, 190, 180, 170])
    waitlist = await world.service.get_waitlist(ctx, limit=2)
    assert [(w.position, w.distance_to_entry) for w in waitlist] == [(70, D(10)), (71, D(20))]
    assert [w.name for w in waitlist] == ["member69", "member70"]


async def test_empty_community(world: World) -> None:
    ctx = await world.community()
    t = await world.service.get_threshold(ctx)
    assert (t.eligible_count, t.waitlist_count, t.entry_threshold, t.gap_to_entry) == (0, 0, D(0), None)
    assert await world.service.get_waitlist(ctx) == []
    page = await world.service.get_leaderboard(ctx, "conviction")
    assert (page.entries, page.total, page.has_more, page.pages) == ([], 0, False, 1)


async def test_single_member_has_no_neighbours(world: World) -> None:
    ctx = await world.community()
    (only,) = await world.seed(ctx, [42])
    p = await world.service.get_position(ctx, only)
    assert p is not None and p.position == 1
    assert (p.distance_to_above, p.distance_to_below, p.distance_to_entry) == (None, None, None)
    assert p.is_naib and p.is_fedaykin


async def test_fewer_than_69_ranked(world: World) -> None:
    ctx = await world.community()
    await world.seed(ctx, descending(20))
    t = await world.service.get_threshold(ctx)
    assert (t.ranked, t.eligible_count, t.waitlist_count) == (20, 20, 0)
    assert (t.entry_threshold, t.gap_to_entry) == (D(0), None)
    assert await world.service.get_waitlist(ctx) == []


async def test_last_rank_has_no_buffer_and_first_no_distance_above(world: World) -> None:
    ctx = await world.community()
    ids = await world.seed(ctx, descending(80))
    first = await world.service.get_position(ctx, ids[0])
    last = await world.service.get_position(ctx, ids[-1])
    assert first is not None and first.distance_to_above is None and first.distance_to_below == D(10)
    assert last is not None and last.position == 80 and last.distance_to_below is None
    assert last.distance_to_entry == D(1000 - 680) - D(1000 - 790)


async def test_at_risk_band_is_64_to_69(world: World) -> None:
    ctx = await world.community()
    ids = await world.seed(ctx, descending(70))
    flags = [(await world.service.get_position(ctx, ids[i])) for i in (62, 63, 68, 69)]
    assert [p.is_at_risk for p in flags if p] == [False, True, True, False]


async def test_ties_order_by_join_time_then_profile_id(world: World) -> None:
    ctx = await world.community()
    ids = await world.seed(ctx, [100, 100, 100, 200])
    page = await world.service.get_leaderboard(ctx, "conviction")
    assert [e.profile_id for e in page.entries] == [ids[3], ids[0], ids[1], ids[2]]
    p = await world.service.get_position(ctx, ids[1])
    assert p is not None and p.position == 3
    assert (p.distance_to_above, p.distance_to_below) == (D(0), D(0))


async def test_zero_and_negative_scores_are_not_ranked(world: World) -> None:
    ctx = await world.community()
    ids = await world.seed(ctx, [10, 0, -5, 3])
    assert await world.service.get_position(ctx, ids[1]) is None
    assert await world.service.get_position(ctx, ids[2]) is None
    p = await world.service.get_position(ctx, ids[3])
    assert p is not None and p.position == 2
    assert (await world.service.get_threshold(ctx)).ranked == 2


async def test_thresholds_are_per_community(world: World) -> None:
    ctx = await world.community(fedaykin=10, naib=3, at_risk=8, waitlist_end=15)
    ids = await world.seed(ctx, descending(30))
    t = await world.service.get_threshold(ctx)
    assert (t.eligible_count, t.waitlist_count, t.entry_threshold, t.gap_to_entry) == (10, 5, D(910), D(10))
    p = await world.service.get_position(ctx, ids[8])
    assert p is not None and (p.is_naib, p.is_at_risk, p.is_fedaykin) == (False, True, True)
    p = await world.service.get_position(ctx, ids[2])
    assert p is not None and p.is_naib
    waiting = await world.service.get_waitlist(ctx, limit=10)
    assert [w.position for w in waiting] == [11, 12, 13, 14, 15]


async def test_exact_decimals_survive_storage(world: World) -> None:
    ctx = await world.community()
    ids = await world.seed(ctx, ["1234.567890123456789", "0.000001"])
    scores = await world.service.get_scores(ctx, ids)
    assert scores[ids[0]].conviction == D("1234.567890123456789")
    p = await world.service.get_position(ctx, ids[0])
    assert p is not None and p.distance_to_below == D("1234.567889123456789")


async def test_the_position_read_by_discord_id_is_the_position_of_its_member(world: World) -> None:
    """/position reads the caller by Discord id in one read where the backend can: the same answer as the
    profile, then the position, for members inside and below the top F, ties, an unranked member and a
    stranger."""
    ctx = await world.community(fedaykin=5, naib=2, at_risk=3, waitlist_end=9)
    scores = [900, 800, 800, 700, 600, 500, 500, 400, 0, -3, 300, "0.000001"]
    ids = await world.seed(ctx, scores)
    service = world.service
    for i, pid in enumerate(ids):
        profile, data = await service.get_position_of_user(ctx, 1000 + i)
        assert profile is not None and profile.profile_id == pid
        assert profile == await service.get_profile_for_user(ctx, 1000 + i)
        assert data == await service.get_position(ctx, pid), f"member {i}"
    below = (await service.get_position_of_user(ctx, 1000 + 11))[1]
    assert below is not None and below.position == 10 and below.distance_to_entry == D("599.999999")
    assert (await service.get_position_of_user(ctx, 1000 + 8))[1] is None  # a member holding nothing
    assert await service.get_position_of_user(ctx, 999) == (None, None)


async def test_the_threshold_read_once_is_the_threshold_and_the_waiting_pool(world: World) -> None:
    """/threshold reads the ranked count, the entry and the head of the pool at once where the backend can:
    the same rows as the reads one by one, with the pool cut at W, a community short of F and one short
    of F + 1; and the view built from it is the threshold and the waiting pool."""
    for ranked, w in ((12, 9), (12, 20), (5, 9), (6, 9), (0, 9)):
        ctx = await world.community(world.guild_id + ranked * 100 + w, fedaykin=6, naib=2, at_risk=4, waitlist_end=w)
        await world.seed(ctx, descending(ranked, top=500, step=7))
        for first, last in ((6, 7), (6, 11), (1, 3), (6, 40), (13, 14), (4, 3)):
            once = await world.backend.get_threshold_rows(ctx, first, last)
            apart = await compose_threshold_rows(world.backend, ctx, first, last)
            assert (once.ranked, once.rows) == (apart.ranked, apart.rows), (ranked, w, first, last)
            assert once.snapshot.score_version == apart.snapshot.score_version
        service = world.service
        for limit in (0, 1, 2, 5, 50):
            view = await service.get_threshold_view(ctx, limit)
            assert view.waitlist == await service.get_waitlist(ctx, limit), (ranked, w, limit)
            assert view.threshold.ranked == ranked and view.threshold.eligible_count == min(ranked, 6)
