"""Acknowledging a score update waits for PostgreSQL only: the copy is the running relay's, so a slow
copy never holds an acknowledgement, and concurrent writers do not queue behind each other's copy."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from backends.members import MemberRow
from backends.protocol import Community, EligibilityResult, ScoreUpdate, TenantContext, utcnow
from bot.replication.backfill import backfill
from tests.scylla.conftest import Pair


async def _community(pair: Pair, guild: int, members: int) -> list[Any]:
    await pair.admin.upsert_community(Community(guild))
    ids = await pair.admin.import_members(
        guild, [MemberRow(discord_user_id=i + 1, conviction=Decimal(1000 - i)) for i in range(members)]
    )
    await backfill(pair.copy_source, pair.scylla.replica, guild)
    return ids


async def test_acknowledgements_do_not_wait_for_a_held_copy(pair: Pair, new_guild_id: int) -> None:
    ids = await _community(pair, new_guild_id, 40)
    ctx = TenantContext(new_guild_id)
    replica = pair.mirror.replicas["scylla"]
    held = asyncio.Event()
    entered = asyncio.Event()
    put_states = replica.put_states

    async def gated(community_id: int, states: Sequence[Any], version: int) -> None:
        entered.set()
        await held.wait()
        await put_states(community_id, states, version)

    replica.put_states = gated  # type: ignore[method-assign]
    stop = asyncio.Event()
    loop = asyncio.create_task(pair.mirror.run(stop))
    try:
        await asyncio.sleep(0.05)
        first = await asyncio.wait_for(
            pair.writer.apply(ctx, [ScoreUpdate(ids[0], "conviction", Decimal(5000), "token_hold")]), 10
        )
        await asyncio.wait_for(entered.wait(), 10)  # the relay is now inside the held copy
        # Twenty writers at once, all acknowledged while the copy is still held.
        versions = await asyncio.wait_for(
            asyncio.gather(
                *(
                    pair.writer.apply(ctx, [ScoreUpdate(pid, "activity", Decimal(i + 1), "activity_bonus")])
                    for i, pid in enumerate(ids[1:21])
                )
            ),
            10,
        )
        assert len(set(versions)) == 20 and min(versions) > first
        durable = await pair.source.get_scores(ctx, ids[:21])
        assert durable[ids[0]].conviction == Decimal(5000)
        assert [durable[pid].activity for pid in ids[1:21]] == [Decimal(i + 1) for i in range(20)]
        assert await pair.mirror.pending(new_guild_id) == 21
        copied = await pair.scylla.get_scores(ctx, [ids[0]])
        assert copied[ids[0]].conviction == Decimal(1000)  # not copied yet: the copy is held

        held.set()
        for _ in range(200):
            if await pair.mirror.pending(new_guild_id) == 0:
                break
            await asyncio.sleep(0.05)
        assert await pair.mirror.pending(new_guild_id) == 0
        copied = await pair.scylla.get_scores(ctx, ids[:21])
        assert _pairs(copied) == _pairs(await pair.source.get_scores(ctx, ids[:21]))
    finally:
        held.set()
        stop.set()
        await loop


async def test_without_a_running_relay_the_copy_is_made_before_the_answer(pair: Pair, new_guild_id: int) -> None:
    ids = await _community(pair, new_guild_id, 10)
    ctx = TenantContext(new_guild_id)
    assert not pair.mirror.running
    await pair.writer.apply(ctx, [ScoreUpdate(ids[3], "conviction", Decimal(7777), "token_hold")])
    assert await pair.mirror.pending(new_guild_id) == 0
    assert (await pair.scylla.get_scores(ctx, [ids[3]]))[ids[3]].conviction == Decimal(7777)


def _pairs(scores: Mapping[Any, Any]) -> dict[Any, tuple[Decimal, Decimal]]:
    return {p: (s.conviction, s.activity) for p, s in scores.items()}


async def test_a_copied_score_change_drops_the_copy_s_cached_eligibility(pair: Pair, new_guild_id: int) -> None:
    ids = await _community(pair, new_guild_id, 3)
    ctx = TenantContext(new_guild_id)
    for pid in ids:
        await pair.scylla.put_eligibility(ctx, EligibilityResult(pid, "holders", True, Decimal(999), utcnow()), 300)
    await pair.writer.apply(ctx, [ScoreUpdate(ids[1], "conviction", Decimal(1), "decay")])
    assert await pair.scylla.get_eligibility(ctx, ids[1], "holders") is None
    assert await pair.scylla.get_eligibility(ctx, ids[0], "holders") is not None  # no change, still cached
