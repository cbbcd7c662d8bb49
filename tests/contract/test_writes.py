"""Score updates, score versions, eligibility caching and tenant isolation, on every backend."""

from __future__ import annotations

from decimal import Decimal

import pytest

from backends.protocol import BOARDS, InvalidInput, NotConfigured, ScoreUpdate, TenantContext
from bot.domain.records import EligibilityRule
from tests.contract.conftest import World

D = Decimal


async def test_updates_set_and_add_and_bump_the_version(world: World) -> None:
    ctx = await world.community()
    ids = await world.seed(ctx, [10, 20])
    before = (await world.backend.snapshot_info(ctx, "conviction")).score_version
    version = await world.service.apply_score_updates(
        ctx,
        [
            ScoreUpdate(ids[0], "conviction", D(15), "token_hold", mode="add", tx_hash="0xfeed"),
            ScoreUpdate(ids[1], "conviction", D(5), "manual_adjustment"),
        ],
    )
    assert version > before
    for board in BOARDS:
        await world.backend.recalculate(ctx, board)
    page = await world.service.get_leaderboard(ctx, "conviction")
    assert [(e.profile_id, e.score) for e in page.entries] == [(ids[0], D(25)), (ids[1], D(5))]


async def test_decay_to_zero_unranks(world: World) -> None:
    ctx = await world.community()
    ids = await world.seed(ctx, [10, 20])
    await world.service.apply_score_updates(ctx, [ScoreUpdate(ids[1], "conviction", D(-20), "decay", mode="add")])
    await world.backend.recalculate(ctx, "conviction")
    assert await world.service.get_position(ctx, ids[1]) is None
    assert (await world.service.get_threshold(ctx)).ranked == 1


async def test_update_for_a_stranger_is_refused_and_nothing_lands(world: World) -> None:
    ctx = await world.community()
    ids = await world.seed(ctx, [10])
    other = await world.community(guild_id=world.guild_id + 1)
    (foreign,) = await world.seed(other, [99])
    with pytest.raises(InvalidInput):
        await world.service.apply_score_updates(
            ctx,
            [
                ScoreUpdate(ids[0], "conviction", D(1000), "token_hold"),
                ScoreUpdate(foreign, "conviction", D(1), "token_hold"),
            ],
        )
    assert (await world.service.get_score(ctx, ids[0])).conviction == D(10)  # type: ignore[union-attr]


async def test_updates_to_an_unknown_community_are_refused(world: World) -> None:
    with pytest.raises(NotConfigured):
        await world.service.apply_score_updates(TenantContext(world.guild_id), [])


async def test_eligibility_is_cached_and_invalidated_in_every_layer(world: World) -> None:
    ctx = await world.community()
    (pid,) = await world.seed(ctx, [50])
    service = world.service
    rule = EligibilityRule("holders", minimum_balance=D(40))
    first = await service.check_eligibility(ctx, pid, rule)
    assert (first.eligible, first.balance, first.from_cache) == (True, D(50), False)
    second = await service.check_eligibility(ctx, pid, rule)
    assert second.from_cache and second.eligible
    # A second service (another process) sees the backend layer.
    assert (await world.service.check_eligibility(ctx, pid, rule)).from_cache
    await service.apply_score_updates(ctx, [ScoreUpdate(pid, "conviction", D(10), "decay")])
    after = await service.check_eligibility(ctx, pid, rule)
    assert (after.eligible, after.balance, after.from_cache) == (False, D(10), False)
    await service.invalidate_eligibility(ctx, pid)
    assert await world.backend.get_eligibility(ctx, pid, "holders") is None


async def test_no_answer_for_one_guild_includes_the_other(world: World) -> None:
    a = await world.community()
    b = await world.community(guild_id=world.guild_id + 7)
    ids_a = set(await world.seed(a, [1000 - i for i in range(80)]))
    ids_b = set(await world.seed(b, [5000 - i for i in range(90)]))
    for ctx, mine, theirs in ((a, ids_a, ids_b), (b, ids_b, ids_a)):
        seen = set()
        for page in range(1, 11):
            board = await world.service.get_leaderboard(ctx, "conviction", page=page)
            seen |= {e.profile_id for e in board.entries}
        seen |= {w.profile_id for w in await world.service.get_waitlist(ctx, limit=50)}
        assert seen == mine
        for foreign in list(theirs)[:5]:
            assert await world.service.get_position(ctx, foreign) is None
            assert await world.service.get_score(ctx, foreign) is None
    assert (await world.service.get_threshold(a)).ranked == 80
    assert (await world.service.get_threshold(b)).ranked == 90


async def test_a_transaction_is_applied_once_per_member_and_board(world: World) -> None:
    ctx = await world.community()
    a, b = await world.seed(ctx, [10, 20])
    service = world.service
    bonus = ScoreUpdate(a, "conviction", D(5), "token_hold", mode="add", tx_hash="0xabc")
    first = await service.apply_score_updates(ctx, [bonus, bonus])  # twice in one batch: once
    again = await service.apply_score_updates(ctx, [bonus])  # an indexer's retry: nothing, no new version
    assert again == first
    # The same hash for another member, or another board of the same member, is another change.
    await service.apply_score_updates(
        ctx,
        [
            ScoreUpdate(b, "conviction", D(5), "token_hold", mode="add", tx_hash="0xabc"),
            ScoreUpdate(a, "activity", D(7), "activity_bonus", mode="add", tx_hash="0xabc"),
            ScoreUpdate(a, "conviction", D(1), "token_hold", mode="add"),  # no hash: always applied
        ],
    )
    for board in BOARDS:
        await world.backend.recalculate(ctx, board)
    scores = await world.service.get_scores(ctx, [a, b])
    assert (scores[a].conviction, scores[a].activity, scores[b].conviction) == (D(16), D(7), D(25))
