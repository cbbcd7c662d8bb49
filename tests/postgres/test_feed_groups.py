"""Requests to one community arriving while a write to it is under way are written together, on a real
PostgreSQL: each is answered with a version that holds it, and one request's own error fails only it."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal
from typing import Any

import pytest
from psycopg_pool import AsyncConnectionPool

from backends.members import MemberRow
from backends.protocol import Community, InvalidInput, ScoreUpdate, TenantContext
from tests.wiring import app

MEMBERS = 40


async def _feed(pool: AsyncConnectionPool[Any], guild: int) -> tuple[Any, Any, list[uuid.UUID]]:
    container = app(pool)
    admin = container.community_writes()
    await admin.upsert_community(Community(guild, name="Arrakis"))
    ids = await admin.import_members(
        guild, [MemberRow(discord_user_id=i + 1, conviction=Decimal(1)) for i in range(MEMBERS)]
    )
    return container.score_feed(), container.postgres_backend(), ids


def _set(pid: uuid.UUID, value: int) -> list[ScoreUpdate]:
    return [ScoreUpdate(pid, "conviction", Decimal(value), "token_hold")]


async def test_concurrent_requests_share_transactions_and_each_is_durable(
    pool: AsyncConnectionPool[Any], new_guild_id: int
) -> None:
    feed, source, ids = await _feed(pool, new_guild_id)
    ctx = TenantContext(new_guild_id)
    before = (await source.snapshot_info(ctx, "conviction")).score_version
    requests = [_set(pid, 100 + i) for i, pid in enumerate(ids)] + [_set(ids[0], 7)]  # the last word on ids[0]
    versions = await asyncio.gather(*(feed.write_grouped(new_guild_id, r) for r in requests))
    after = (await source.snapshot_info(ctx, "conviction")).score_version
    assert all(before < v <= after for v in versions)
    assert versions == sorted(versions)  # answered in the order they came
    assert after - before < len(requests)  # fewer transactions than requests
    scores = await source.get_scores(ctx, ids)
    assert scores[ids[0]].conviction == 7
    assert [scores[pid].conviction for pid in ids[1:]] == [100 + i for i in range(1, MEMBERS)]


async def test_a_request_naming_a_stranger_fails_alone(pool: AsyncConnectionPool[Any], new_guild_id: int) -> None:
    feed, source, ids = await _feed(pool, new_guild_id)
    stranger = uuid.uuid4()
    requests = [_set(pid, 50 + i) for i, pid in enumerate(ids[:10])]
    requests.insert(4, _set(stranger, 3))
    outcomes = await asyncio.gather(*(feed.write_grouped(new_guild_id, r) for r in requests), return_exceptions=True)
    assert isinstance(outcomes[4], InvalidInput) and str(stranger) in str(outcomes[4])
    assert all(isinstance(v, int) for i, v in enumerate(outcomes) if i != 4)
    scores = await source.get_scores(TenantContext(new_guild_id), ids[:10])
    assert [scores[pid].conviction for pid in ids[:10]] == [50 + i for i in range(10)]
    with pytest.raises(InvalidInput):  # alone, too
        await feed.write_grouped(new_guild_id, _set(stranger, 3))
