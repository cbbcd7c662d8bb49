"""The emulator's bot-wide limits: the global rate limit and the ban for too many invalid requests.

Raw aiohttp shows the exact answers; the real nextcord HTTP client shows how a bot built on it fares.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import aiohttp
import nextcord
import pytest
import pytest_asyncio

from tests.emulator import DiscordEmulator
from tests.emulator.ratelimit import InvalidRequests

GUILD_ID = 1100000000000000500
ALICE = 1100000000000000510


@pytest_asyncio.fixture
async def emu(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[DiscordEmulator]:
    emulator = DiscordEmulator()
    await emulator.start()
    monkeypatch.setattr(nextcord.http.Route, "BASE", emulator.base_url)
    emulator.add_guild(GUILD_ID, "Arrakis")
    emulator.add_member(GUILD_ID, ALICE, name="alice")
    try:
        yield emulator
    finally:
        await emulator.stop()


def bot_session(emu: DiscordEmulator, token: str | None = None) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(headers={"Authorization": f"Bot {token or emu.token}"})


async def test_global_limit_is_50_a_second_across_routes_and_spares_interaction_routes(emu: DiscordEmulator) -> None:
    me, gateway = f"{emu.base_url}/users/@me", f"{emu.base_url}/gateway/bot"
    member = f"{emu.base_url}/guilds/{GUILD_ID}/members/{ALICE}"
    async with bot_session(emu) as http:
        started = time.time()
        for i in range(50):
            async with http.get(me if i % 2 else member) as r:
                assert r.status == 200
        assert time.time() - started < 0.9, "too slow a machine for this test"
        async with http.get(gateway) as r:  # any route: the 51st request within a second
            assert r.status == 429
            assert r.headers["X-RateLimit-Global"] == "true" and r.headers["X-RateLimit-Scope"] == "global"
            assert r.headers["Retry-After"] == "1" and "X-RateLimit-Bucket" not in r.headers
            assert r.headers["Via"]  # from Discord, not Cloudflare: nextcord waits it out
            body = await r.json()
            assert body["message"] == "You are being rate limited." and body["global"] is True
            assert 0 < body["retry_after"] <= 1
        async with http.get(gateway) as r:  # the same request again before retry_after: a violation
            assert r.status == 429
        async with http.get(me, headers={"Authorization": "Bot other-token"}) as r:
            assert r.status == 401  # another token is not this bot's limit (and is refused)
        # interaction endpoints are not bound to the bot's global limit
        async with http.post(f"{emu.base_url}/interactions/1/nope/callback", json={"type": 4}) as r:
            assert r.status == 404 and (await r.json())["code"] == 10062
        async with http.post(f"{emu.base_url}/webhooks/{emu.app_id}/nope", json={"content": "x"}) as r:
            assert r.status == 404 and (await r.json())["code"] == 10015
        await asyncio.sleep(body["retry_after"])
        async with http.get(gateway) as r:
            assert r.status == 200
    assert emu.rate_limited == 2
    assert emu.invalid_requests == 3  # two 429s and the 401
    (violation,) = emu.violations
    assert violation.startswith("global rate limit: GET /api/v10/gateway/bot came again")


async def test_nextcord_paces_itself_under_the_global_limit_without_early_retries(emu: DiscordEmulator) -> None:
    client = nextcord.Client()
    await client.login(emu.token)
    try:
        started = time.monotonic()
        members = await asyncio.gather(*(client.http.get_member(GUILD_ID, ALICE) for _ in range(120)))
        took = time.monotonic() - started
    finally:
        await client.close()
    assert all(m["user"]["id"] == str(ALICE) for m in members)
    assert took > 2 - 0.1, took  # 121 requests with login: three seconds' worth of the limit
    # nextcord counts 50 a second from its own first request, so at full speed a 1-second span can hold
    # more than 50 and meet a global 429 (counted as invalid); it never came back before the retry_after
    assert emu.violations == [], emu.violations
    assert emu.invalid_requests == emu.rate_limited


async def test_too_many_invalid_requests_ban_every_request_for_a_while(emu: DiscordEmulator) -> None:
    emu.invalid_request_limit, emu.ban_duration = 5, 1.5
    me = f"{emu.base_url}/users/@me"
    assert emu.invalid_request_window == 600 and not emu.banned
    emu.close_dms(ALICE)
    async with bot_session(emu) as http:
        async with http.post(f"{emu.base_url}/users/@me/channels", json={"recipient_id": str(ALICE)}) as r:
            channel = (await r.json())["id"]
        async with http.post(f"{emu.base_url}/channels/{channel}/messages", json={"content": "hi"}) as r:
            assert r.status == 403  # DMs closed: a 403 is an invalid request too
        async with http.get(f"{emu.base_url}/guilds/{GUILD_ID}/members/1") as r:
            assert r.status == 404  # not an invalid request
        assert emu.invalid_requests == 1
        for _ in range(5):
            async with http.get(me, headers={"Authorization": "Bot revoked"}) as r:
                assert r.status == 401
        assert emu.banned and emu.invalid_requests == 6
        for url, method in ((me, "GET"), (f"{emu.base_url}/interactions/1/x/callback", "POST")):
            async with http.request(method, url, json={"type": 4}) as r:  # interaction callbacks included
                assert r.status == 429 and r.headers["Retry-After"] == "2" and "Via" not in r.headers
                assert r.content_type == "text/plain" and await r.text() == "error code: 1015"

        client = nextcord.Client()
        with pytest.raises(nextcord.HTTPException) as caught:  # nextcord sees a ban and does not retry
            await client.login(emu.token)
        await client.close()
        assert caught.value.status == 429

        await asyncio.sleep(1.6)
        assert not emu.banned
        async with http.get(me) as r:
            assert r.status == 200
    assert emu.invalid_requests == 6  # the ban's own answers are Cloudflare's, not counted
    (violation,) = emu.violations
    assert violation.startswith("banned: more than 5 invalid requests (401, 403, 429) within 600s")
    assert InvalidRequests.counts(429, "user") and InvalidRequests.counts(429, "global")
    assert not InvalidRequests.counts(429, "shared") and not InvalidRequests.counts(404, None)
