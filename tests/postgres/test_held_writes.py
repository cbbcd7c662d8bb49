"""Door requests that come while a bulk write has their community, on a real PostgreSQL: answered at once
(202, durable) instead of after the bulk write's commit, then applied whole, in the order they came, by
any process; one refused alone says why; the community's later requests wait their turn behind them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from aiohttp.test_utils import TestClient, TestServer
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from backends.members import MemberRow
from backends.postgres.score_writes import STAGE_FROM, apply_score_stream
from backends.protocol import Community, ScoreUpdate
from bot.feed.held import HeldSettling
from bot.feed.http import FeedServer
from tests.wiring import app

# Far longer than a door answer takes: a request that waited for the open bulk write would never end.
ANSWER_WITHIN = 20.0


@asynccontextmanager
async def bulk_write(postgres_dsn: str, guild: int, updates: list[ScoreUpdate]) -> AsyncIterator[None]:
    """A bulk write applied and not yet committed for the block: it has the community the whole time."""
    async with await psycopg.AsyncConnection.connect(postgres_dsn, row_factory=dict_row) as conn:
        await apply_score_stream(conn, [(guild, updates)], mirrored=True)
        yield
        await conn.commit()


async def post(client: TestClient[Any, Any], url: str, token: str, body: list[dict[str, Any]]) -> tuple[int, Any]:
    async with asyncio.timeout(ANSWER_WITHIN):
        async with client.post(url, json=body, headers={"Authorization": f"Bearer {token}"}) as answer:
            return answer.status, await answer.json()


async def status(client: TestClient[Any, Any], url: str, token: str) -> dict[str, Any]:
    async with client.get(url, headers={"Authorization": f"Bearer {token}"}) as answer:
        assert answer.status == 200, await answer.text()
        return dict(await answer.json())


async def conviction(pool: AsyncConnectionPool[Any], guild: int, user: int) -> Decimal:
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT s.conviction FROM scores s JOIN profiles p USING (profile_id)"
            " WHERE p.community_id = %s AND p.discord_user_id = %s",
            (guild, user),
        )
        row = await cur.fetchone()
    assert row is not None
    return Decimal(row["conviction"])


def score(user: int, value: str, mode: str = "set") -> dict[str, Any]:
    return {"member": str(user), "board": "conviction", "value": value, "mode": mode, "event_type": "token_hold"}


@pytest.fixture
async def door(pool: AsyncConnectionPool[Any], new_guild_id: int) -> AsyncIterator[tuple[TestClient[Any, Any], Any]]:
    container = app(pool)
    admin = container.community_writes()
    await admin.upsert_community(Community(new_guild_id, name="Arrakis"))
    ids = await admin.import_members(
        new_guild_id, [MemberRow(discord_user_id=u, conviction=Decimal(1)) for u in (1, 2, 3)]
    )
    token = await container.ingest().new_token(new_guild_id)
    server = FeedServer(container.score_feed(), container.ingest(), badges=container.badge_feed())
    async with TestClient(TestServer(server.app())) as client:
        yield client, {"token": token, "ids": ids, "admin": admin}


async def test_requests_during_a_bulk_write_are_answered_at_once_and_applied_after_it_in_order(
    door: tuple[TestClient[Any, Any], Any], pool: AsyncConnectionPool[Any], postgres_dsn: str, new_guild_id: int
) -> None:
    client, env = door
    token, (one, two, _) = env["token"], env["ids"]
    scores, badges = f"/v1/guilds/{new_guild_id}/scores", f"/v1/guilds/{new_guild_id}/badges"
    # The bulk write: past the staging size, ending with member 1's conviction at 1000.
    bulk = [ScoreUpdate(two, "activity", Decimal(1), "activity_bonus", mode="add") for _ in range(STAGE_FROM)]
    bulk.append(ScoreUpdate(one, "conviction", Decimal(1000), "token_hold"))

    async with bulk_write(postgres_dsn, new_guild_id, bulk):
        first = await post(client, scores, token, [score(1, "7")])
        second = await post(client, scores, token, [score(1, "3", "add"), score(2, "5")])
        award = await post(client, badges, token, [{"member": "1", "action": "award", "type": "water_sharer"}])
        doomed = await post(client, scores, token, [score(3, "9")])
        for answer_status, body in (first, second, award, doomed):
            assert answer_status == 202, body
            assert body["state"] == "queued" and body["status"].endswith(f"/writes/{body['write']}")
        assert [first[1]["held"], second[1]["held"], award[1]["held"]] == [1, 2, 1]
        ids = [first[1]["write"], second[1]["write"], award[1]["write"], doomed[1]["write"]]
        assert ids == sorted(ids) and len(set(ids)) == 4
        assert (await status(client, first[1]["status"], token))["state"] == "queued"
        # Nothing is settled while the bulk write has the community.
        assert await HeldSettling(app(pool).score_feed()).settle_all() == 0

    assert await conviction(pool, new_guild_id, 1) == Decimal(1000)  # the bulk write alone so far
    # Member 3 leaves before the held request naming them is applied: that request alone is refused.
    assert await env["admin"].remove_member(new_guild_id, 3) is not None
    # Requests held earlier still wait, so a later one waits behind them instead of overtaking them.
    later = await post(client, scores, token, [score(1, "1", "add")])
    assert later[0] == 202, later

    # Another process (a container of its own) settles them, from what PostgreSQL holds.
    assert await HeldSettling(app(pool).score_feed()).settle_all() >= 5

    outcomes = [await status(client, f"{scores[:-7]}/writes/{i}", token) for i in [*ids, later[1]["write"]]]
    assert [o["state"] for o in outcomes] == ["applied", "applied", "applied", "refused", "applied"]
    versions = [o["score_version"] for o in outcomes]
    assert versions[0] < versions[1] < versions[2] < versions[4] and versions[3] is None
    assert "not members of community" in outcomes[3]["error"] and "nothing of it was written" in outcomes[3]["error"]
    assert await conviction(pool, new_guild_id, 1) == Decimal(11)  # 1000, then set 7, add 3, add 1: in order
    assert await conviction(pool, new_guild_id, 2) == Decimal(5)

    # With nothing held and no bulk write, a request is applied before its answer, as always.
    direct = await post(client, scores, token, [score(2, "6")])
    assert direct[0] == 200 and "score_version" in direct[1]
    assert await conviction(pool, new_guild_id, 2) == Decimal(6)


async def test_the_bot_settles_held_requests_by_itself_once_the_bulk_write_is_done(
    door: tuple[TestClient[Any, Any], Any], pool: AsyncConnectionPool[Any], postgres_dsn: str, new_guild_id: int
) -> None:
    client, env = door
    token, (one, _, _) = env["token"], env["ids"]
    scores = f"/v1/guilds/{new_guild_id}/scores"
    bulk = [ScoreUpdate(one, "activity", Decimal(1), "activity_bonus", mode="add") for _ in range(STAGE_FROM + 1)]
    stop = asyncio.Event()
    settling = asyncio.create_task(HeldSettling(app(pool).score_feed(), interval_seconds=0.2).run(stop))
    try:
        async with bulk_write(postgres_dsn, new_guild_id, bulk):
            held = await post(client, scores, token, [score(1, "42")])
            assert held[0] == 202
            await asyncio.sleep(0.6)  # rounds come and go: none can settle it yet
            assert (await status(client, held[1]["status"], token))["state"] == "queued"
        async with asyncio.timeout(ANSWER_WITHIN):
            while (outcome := await status(client, held[1]["status"], token))["state"] == "queued":
                await asyncio.sleep(0.1)
        assert outcome["state"] == "applied" and outcome["done_at"] is not None
        assert await conviction(pool, new_guild_id, 1) == Decimal(42)
    finally:
        stop.set()
        await settling


async def test_a_held_write_is_read_only_by_its_own_community(
    door: tuple[TestClient[Any, Any], Any], pool: AsyncConnectionPool[Any], postgres_dsn: str, new_guild_id: int
) -> None:
    client, env = door
    token, (one, _, _) = env["token"], env["ids"]
    other = new_guild_id + 1
    container = app(pool)
    await container.community_writes().upsert_community(Community(other, name="Giedi"))
    other_token = await container.ingest().new_token(other)
    bulk = [ScoreUpdate(one, "activity", Decimal(1), "activity_bonus", mode="add") for _ in range(STAGE_FROM + 1)]
    async with bulk_write(postgres_dsn, new_guild_id, bulk):
        held = await post(client, f"/v1/guilds/{new_guild_id}/scores", token, [score(1, "5")])
    write = held[1]["write"]
    auth = {"Authorization": f"Bearer {other_token}"}
    for path in (
        f"/v1/guilds/{other}/writes/{write}",
        f"/v1/guilds/{other}/writes/9{'9' * 40}",
        "/v1/guilds/1/writes/x",
    ):
        async with client.get(path, headers=auth) as answer:
            assert answer.status in (401, 404), path
    async with client.get(f"/v1/guilds/{new_guild_id}/writes/{write}") as answer:
        assert answer.status == 401  # no token
    await HeldSettling(container.score_feed()).settle_all()


async def test_requests_past_the_staging_size_settle_in_two_processes_at_once_each_once(
    door: tuple[TestClient[Any, Any], Any], pool: AsyncConnectionPool[Any], postgres_dsn: str, new_guild_id: int
) -> None:
    """A held request larger than a bulk write's staging size is applied in memory: settling it never
    waits for the bulk lock it holds shared (two processes settling at once would deadlock), and however
    many processes settle, each request is applied once."""
    _, env = door
    token, (one, _, _) = env["token"], env["ids"]
    scores = f"/v1/guilds/{new_guild_id}/scores"
    container = app(pool)
    roomy = FeedServer(container.score_feed(), container.ingest(), max_items=2 * STAGE_FROM, max_body_bytes=1 << 22)
    bulk = [ScoreUpdate(one, "activity", Decimal(1), "activity_bonus", mode="add") for _ in range(STAGE_FROM + 1)]
    big = [score(1, "1", "add") for _ in range(STAGE_FROM + 1)]
    async with TestClient(TestServer(roomy.app())) as client:
        async with bulk_write(postgres_dsn, new_guild_id, bulk):
            held = [await post(client, scores, token, body) for body in (big, big, [score(2, "7")])]
        assert [answer for answer, _ in held] == [202, 202, 202]
        await asyncio.gather(*(HeldSettling(app(pool).score_feed()).settle_all() for _ in range(3)))
        outcomes = [await status(client, body["status"], token) for _, body in held]
    assert [o["state"] for o in outcomes] == ["applied"] * 3
    assert await conviction(pool, new_guild_id, 1) == Decimal(1 + 2 * (STAGE_FROM + 1))
    assert await conviction(pool, new_guild_id, 2) == Decimal(7)


async def test_a_held_request_that_cannot_be_read_is_refused_alone_and_holds_nothing_back(
    door: tuple[TestClient[Any, Any], Any], pool: AsyncConnectionPool[Any], postgres_dsn: str, new_guild_id: int
) -> None:
    """A request that would fail every time it is tried is refused, not retried for ever: retried, it
    would keep every later request of its community held."""
    client, env = door
    token, (one, _, _) = env["token"], env["ids"]
    scores = f"/v1/guilds/{new_guild_id}/scores"
    bulk = [ScoreUpdate(one, "activity", Decimal(1), "activity_bonus", mode="add") for _ in range(STAGE_FROM + 1)]
    async with bulk_write(postgres_dsn, new_guild_id, bulk):
        first = await post(client, scores, token, [score(1, "5")])
        second = await post(client, scores, token, [score(1, "6")])
    async with pool.connection() as conn:  # as no version of the code writes it
        await conn.execute(
            "UPDATE held_writes SET items = '[[\"not-a-profile\", 1]]' WHERE write_id = %s", (first[1]["write"],)
        )
    await HeldSettling(app(pool).score_feed()).settle_all()
    refused = await status(client, first[1]["status"], token)
    assert refused["state"] == "refused" and "cannot be read" in refused["error"]
    assert (await status(client, second[1]["status"], token))["state"] == "applied"
    assert await conviction(pool, new_guild_id, 1) == Decimal(6)
