"""The score feed's HTTP door in front of a real PostgreSQL: every refusal writes nothing and says why;
what is accepted is durable when the answer comes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from psycopg_pool import AsyncConnectionPool

from backends.members import MemberRow
from backends.protocol import Community, TenantContext
from bot.feed.http import FeedServer
from tests.wiring import app

WALLET = "0x" + "ab" * 20


@pytest.fixture
async def door(
    pool: AsyncConnectionPool[Any], new_guild_id: int
) -> AsyncIterator[tuple[TestClient[Any, Any], dict[str, Any]]]:
    container = app(pool)
    admin = container.community_writes()
    for guild in (new_guild_id, new_guild_id + 1):
        await admin.upsert_community(Community(guild, name="Arrakis"))
        await admin.import_members(guild, [MemberRow(discord_user_id=7, wallet_address=WALLET, conviction=Decimal(10))])
    ingest = container.ingest()
    tokens = {g: await ingest.new_token(g) for g in (new_guild_id, new_guild_id + 1)}
    server = FeedServer(container.score_feed(), ingest, max_body_bytes=4096, max_items=3, requests_per_minute=10)
    async with TestClient(TestServer(server.app())) as client:
        yield client, {"guild": new_guild_id, "tokens": tokens, "source": container.postgres_backend()}


def item(**more: Any) -> dict[str, Any]:
    return {"member": "7", "board": "conviction", "value": "11", "event_type": "token_hold", **more}


async def version(env: dict[str, Any]) -> int:
    info = await env["source"].snapshot_info(TenantContext(env["guild"]), "conviction")
    return int(info.score_version)


async def test_refusals_write_nothing_and_say_why(door: tuple[TestClient[Any, Any], dict[str, Any]]) -> None:
    client, env = door
    guild, token = env["guild"], env["tokens"][env["guild"]]
    url, auth = f"/v1/guilds/{guild}/scores", {"Authorization": f"Bearer {token}"}
    before = await version(env)
    cases = [
        ({}, [item()], 401),
        ({"Authorization": "Bearer " + env["tokens"][guild + 1]}, [item()], 401),  # another community's token
        (auth, b"{not json", 400),
        (auth, b"[" * 50_000, 413),  # over the body limit, read or not
        (auth, b"[" * 2000 + b"]" * 2000, 400),  # nesting no update has
        (auth, {"member": "7"}, 400),
        (auth, [item()] * 4, 413),  # more updates than a batch may hold
    ]
    for headers, body, status in cases:
        kwargs = {"data": body} if isinstance(body, bytes) else {"json": body}
        async with client.post(url, headers=headers, **kwargs) as answer:
            assert answer.status == status, (body, await answer.text())
    async with client.post(url, headers=auth, json=[item(), item(board="karma"), item(guild=str(guild + 1))]) as answer:
        assert answer.status == 422
        problems = (await answer.json())["problems"]
    assert [p["index"] for p in problems] == [1, 2]
    assert "board 'karma'" in problems[0]["error"] and "is not this feed's guild" in problems[1]["error"]
    async with client.post(url, headers=auth, json=[item(member="8")]) as answer:
        assert answer.status == 422 and "member 8 is not a member" in await answer.text()
    assert await version(env) == before


async def test_an_accepted_batch_is_durable_and_the_rate_is_per_community(
    door: tuple[TestClient[Any, Any], dict[str, Any]],
) -> None:
    client, env = door
    guild = env["guild"]
    url, auth = f"/v1/guilds/{guild}/scores", {"Authorization": f"Bearer {env['tokens'][guild]}"}
    async with client.post(
        url, headers=auth, json={"updates": [item(member=WALLET, value=25, mode="add", tx_hash="0x1")]}
    ) as answer:
        assert answer.status == 200, await answer.text()
        assert (await answer.json())["accepted"] == 1
    score = await env["source"].get_profile_by_user(TenantContext(guild), 7)
    assert score is not None
    assert (await env["source"].get_score(TenantContext(guild), score.profile_id)).conviction == Decimal(35)
    statuses = []
    for _ in range(10):
        async with client.post(url, headers=auth, json=[item(tx_hash="0x1")]) as answer:
            statuses.append((answer.status, answer.headers.get("Retry-After")))
    assert [s for s, _ in statuses] == [200] * 9 + [429] and int(statuses[-1][1] or 0) >= 1
    other = {"Authorization": f"Bearer {env['tokens'][guild + 1]}"}
    async with client.post(f"/v1/guilds/{guild + 1}/scores", headers=other, json=[item()]) as answer:
        assert answer.status == 200  # another community's rate is its own
