"""The score feed's HTTP door in front of a real PostgreSQL: every refusal writes nothing and says why;
what is accepted is durable when the answer comes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
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


Door = tuple[TestClient[Any, Any], dict[str, Any]]


@asynccontextmanager
async def open_door(pool: AsyncConnectionPool[Any], new_guild_id: int, **limits: int) -> AsyncIterator[Door]:
    container = app(pool)
    admin = container.community_writes()
    for guild in (new_guild_id, new_guild_id + 1):
        await admin.upsert_community(Community(guild, name="Arrakis"))
        await admin.import_members(guild, [MemberRow(discord_user_id=7, wallet_address=WALLET, conviction=Decimal(10))])
    ingest = container.ingest()
    tokens = {g: await ingest.new_token(g) for g in (new_guild_id, new_guild_id + 1)}
    server = FeedServer(container.score_feed(), ingest, **limits)
    async with TestClient(TestServer(server.app())) as client:
        yield client, {"guild": new_guild_id, "tokens": tokens, "source": container.postgres_backend()}


@pytest.fixture
async def door(pool: AsyncConnectionPool[Any], new_guild_id: int) -> AsyncIterator[Door]:
    async with open_door(pool, new_guild_id, max_body_bytes=4096, max_items=3, requests_per_minute=10) as opened:
        yield opened


@pytest.fixture
async def roomy_door(pool: AsyncConnectionPool[Any], new_guild_id: int) -> AsyncIterator[Door]:
    """The production body and batch limits, and a rate no test here spends."""
    async with open_door(pool, new_guild_id, requests_per_minute=10_000) as opened:
        yield opened


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


async def conviction(env: dict[str, Any]) -> Decimal:
    ctx = TenantContext(env["guild"])
    profile = await env["source"].get_profile_by_user(ctx, 7)
    return Decimal((await env["source"].get_score(ctx, profile.profile_id)).conviction)


async def test_an_add_past_the_range_refuses_the_whole_batch(door: Door) -> None:
    client, env = door
    guild = env["guild"]
    url, auth = f"/v1/guilds/{guild}/scores", {"Authorization": f"Bearer {env['tokens'][guild]}"}
    async with client.post(url, headers=auth, json=[item(value="9e1000")]) as answer:
        assert answer.status == 200, await answer.text()  # the first digit at the 10^1000 place: in range
    before = await version(env)
    too_big = [item(member=WALLET, value="5", mode="add"), item(value="9e1000", mode="add")]  # 1.8e1001
    too_small = [item(value="1.5e-1000"), item(value="-1.4e-1000", mode="add")]  # 1e-1001
    for batch in (too_big, too_small):
        async with client.post(url, headers=auth, json=batch) as answer:
            assert answer.status == 422, await answer.text()
            error = (await answer.json())["error"]
        assert "conviction score of member 7" in error and "out of range" in error, error
        assert "nothing was written" in error
    assert await version(env) == before and await conviction(env) == Decimal("9e1000")
    async with client.post(url, headers=auth, json=[item(value="-8e1000", mode="add")]) as answer:
        assert answer.status == 200, await answer.text()  # a sum inside the range is stored exactly
    assert await conviction(env) == Decimal("1e1000")


def raw_item(value: str, member: str = '"7"') -> bytes:
    return f'[{{"member": {member}, "board": "conviction", "value": {value}, "event_type": "token_hold"}}]'.encode()


HOSTILE: list[tuple[str, bytes, str]] = [
    ("an exponent no Decimal holds", raw_item("1e99999999999999999999999"), "out of range"),
    ("a negative one", raw_item("-1e-99999999999999999999999"), "out of range"),
    ("an exponent Decimal holds", raw_item("1e999999999999999999"), "out of range"),
    ("NaN", raw_item("NaN"), "not a finite number"),
    ("Infinity", raw_item("Infinity"), "not a finite number"),
    ("bare constants", b"[NaN, -Infinity]", "must be a JSON object"),
    ("a 100,000-digit integer", raw_item("9" * 100_000), "out of range"),
    ("a 100,000-digit member", raw_item("5", member="7" * 100_000), "is not a Discord user id"),
    ("a fraction of 20,000 digits", raw_item("1." + "0" * 20_000 + "1"), "digits after the point"),
    ("Arabic-Indic digits", raw_item('"٥"'), "is not a plain decimal"),
    ("Arabic-Indic member", raw_item("5", member='"٧"'), "is not a Discord user id"),
    ("fullwidth digits", raw_item('"１２"'), "is not a plain decimal"),
    ("spaces", raw_item('" 5 "'), "is not a plain decimal"),
    ("underscores", raw_item('"1_000"'), "is not a plain decimal"),
    ("a string NaN", raw_item('"NaN"'), "not a finite number"),
    ("a lone surrogate", raw_item("5", member='"\\ud800"'), "member"),
    ("deep nesting in an item", b'[{"member": ' + b"[" * 100_000 + b"]" * 100_000 + b"}]", "not JSON"),
    ("deep nesting of objects", b'{"a": ' * 50_000 + b"1" + b"}" * 50_000, "not JSON"),
    ("not UTF-8", b"\xff\xfe[1]", "not JSON"),
    ("nothing", b"", "not JSON"),
    ("updates not a list", b'{"updates": 5}', "must be a JSON list"),
    (
        "an update of the wrong shapes",
        b'[{"member": {}, "board": [], "value": [1], "event_type": {}, "mode": [], "tx_hash": 5, "at": {}}]',
        "must be a number or a string of one",
    ),
    ("too many updates", b"[" + b"1," * 6000 + b"1]", "at most 5000 updates"),
]


@pytest.mark.parametrize(("what", "body", "said"), HOSTILE, ids=[h[0] for h in HOSTILE])
async def test_no_body_gets_a_server_error(roomy_door: Door, what: str, body: bytes, said: str) -> None:
    client, env = roomy_door
    guild = env["guild"]
    url, auth = f"/v1/guilds/{guild}/scores", {"Authorization": f"Bearer {env['tokens'][guild]}"}
    before = await version(env)
    async with client.post(url, headers=auth, data=body) as answer:
        assert 400 <= answer.status < 500, (what, answer.status, (await answer.text())[:300])
        assert answer.content_type == "application/json"
        answered = await answer.json()
    assert said in str(answered), (what, str(answered)[:300])
    if answer.status == 422 and answered["problems"]:
        assert answered["problems"][0]["index"] == 0
    assert await version(env) == before


async def test_a_guild_of_thousands_of_digits_in_the_path_is_unknown(roomy_door: Door) -> None:
    client, env = roomy_door
    token = env["tokens"][env["guild"]]
    async with client.post(
        f"/v1/guilds/{'1' * 5000}/scores", headers={"Authorization": f"Bearer {token}"}, json=[item()]
    ) as answer:
        assert answer.status == 401 and (await answer.json())["error"] == "unknown guild or wrong token"
