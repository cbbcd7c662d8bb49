"""The badge route of the feed's HTTP door in front of a real PostgreSQL: the score feed's token and
limits, changes applied in order and whole or not at all, refusals writing nothing and saying why."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from psycopg_pool import AsyncConnectionPool

from backends.members import MemberRow
from backends.protocol import Community, TenantContext
from bot.feed.http import FeedServer
from tests.wiring import app

WALLET = "0x" + "cd" * 20
Door = tuple[TestClient[Any, Any], dict[str, Any]]


@pytest.fixture
async def door(pool: AsyncConnectionPool[Any], new_guild_id: int) -> AsyncIterator[Door]:
    container = app(pool)
    admin = container.community_writes()
    for guild in (new_guild_id, new_guild_id + 1):
        await admin.upsert_community(Community(guild, name="Arrakis"))
        await admin.import_members(guild, [MemberRow(discord_user_id=7, wallet_address=WALLET), MemberRow(8)])
    ingest = container.ingest()
    tokens = {g: await ingest.new_token(g) for g in (new_guild_id, new_guild_id + 1)}
    server = FeedServer(
        container.score_feed(), ingest, max_items=3, requests_per_minute=100, badges=container.badge_feed()
    )
    async with TestClient(TestServer(server.app())) as client:
        yield client, {"guild": new_guild_id, "tokens": tokens, "source": container.postgres_backend()}


async def board(env: dict[str, Any]) -> list[tuple[int, int]]:
    return [(e.held, e.joined_at.year) for e in await env["source"].get_badge_board(TenantContext(env["guild"]), 10)]


async def test_changes_apply_in_order_whole_and_unchanged_items_count_as_accepted(door: Door) -> None:
    client, env = door
    guild = env["guild"]
    url, auth = f"/v1/guilds/{guild}/badges", {"Authorization": f"Bearer {env['tokens'][guild]}"}
    body = [
        {"member": "7", "action": "award", "type": "og", "reason": "first week"},
        {"member": WALLET, "action": "award", "type": "water_sharer"},
        {"member": "8", "action": "revoke", "type": "og"},  # not held: nothing changes, still accepted
    ]
    async with client.post(url, headers=auth, json=body) as answer:
        assert answer.status == 200, await answer.text()
        first = await answer.json()
    assert first["accepted"] == 3 and first["badge_version"] > 0
    async with client.post(
        url,
        headers=auth,
        json={
            "changes": [
                {"member": "8", "action": "award", "type": "elder"},
                {"member": "8", "action": "revoke", "type": "elder"},
            ]
        },
    ) as answer:
        assert answer.status == 200
    held = await env["source"].get_badge_count(TenantContext(guild), (await _profile(env, 8)))
    assert held == 0  # an award and a revoke of one type in one batch leave it revoked
    assert [h for h, _ in await board(env)] == [2]


async def test_refusals_write_nothing(door: Door) -> None:
    client, env = door
    guild = env["guild"]
    url, auth = f"/v1/guilds/{guild}/badges", {"Authorization": f"Bearer {env['tokens'][guild]}"}
    good = {"member": "7", "action": "award", "type": "og"}
    cases: list[tuple[dict[str, str], Any, int]] = [
        ({}, [good], 401),
        ({"Authorization": "Bearer " + env["tokens"][guild + 1]}, [good], 401),
        (auth, {"member": "7"}, 400),
        (auth, [good] * 4, 413),
    ]
    for headers, body, status in cases:
        async with client.post(url, headers=headers, json=body) as answer:
            assert answer.status == status, (body, await answer.text())
    bad = [
        good,
        {"member": "7", "action": "award", "type": "founder"},
        {"member": "9", "action": "award", "type": "og"},  # no such member
    ]
    async with client.post(url, headers=auth, json=bad) as answer:
        assert answer.status == 422
        refused = await answer.json()
    assert [p["index"] for p in refused["problems"]] == [1, 2]
    assert "unknown badge type 'founder'" in refused["problems"][0]["error"]
    assert "member 9 is not a member of guild" in refused["problems"][1]["error"]
    assert await board(env) == []


async def _profile(env: dict[str, Any], user: int) -> Any:
    profile = await env["source"].get_profile_by_user(TenantContext(env["guild"]), user)
    assert profile is not None
    return profile.profile_id
