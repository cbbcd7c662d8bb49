"""The emulator's DM limits: opening DM channels (40003 when too fast), the per-channel message bucket,
the reused channel id and the 403s for users the bot may not message."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import aiohttp
import nextcord
import pytest
import pytest_asyncio

from tests.emulator import DiscordEmulator

GUILD_ID = 1100000000000000600
USERS = [1100000000000000610 + i for i in range(12)]
ALICE, BOB = USERS[0], USERS[1]


@pytest_asyncio.fixture
async def emu(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[DiscordEmulator]:
    emulator = DiscordEmulator()
    await emulator.start()
    monkeypatch.setattr(nextcord.http.Route, "BASE", emulator.base_url)
    emulator.add_guild(GUILD_ID, "Arrakis")
    for user in USERS:
        emulator.add_member(GUILD_ID, user, name=f"user{user}")
    try:
        yield emulator
    finally:
        await emulator.stop()


async def logged_in(emu: DiscordEmulator) -> nextcord.Client:
    client = nextcord.Client()
    await client.login(emu.token)
    return client


async def test_opening_dms_too_fast_is_40003_with_retry_after(emu: DiscordEmulator) -> None:
    assert (emu.dm_open_limit, emu.dm_open_window) == (10, 10.0)
    url = f"{emu.base_url}/users/@me/channels"
    async with aiohttp.ClientSession(headers={"Authorization": f"Bot {emu.token}"}) as http:
        for i, user in enumerate(USERS[:10]):
            async with http.post(url, json={"recipient_id": str(user)}) as r:
                assert r.status == 200
                assert r.headers["X-RateLimit-Limit"] == "10"
                assert r.headers["X-RateLimit-Remaining"] == str(9 - i)
                assert 9 < float(r.headers["X-RateLimit-Reset-After"]) <= 10
        async with http.post(url, json={"recipient_id": str(USERS[10])}) as r:
            assert r.status == 429 and r.headers["Retry-After"] == "10"
            assert r.headers["X-RateLimit-Scope"] == "user" and r.headers["X-RateLimit-Remaining"] == "0"
            body = await r.json()
            assert body["code"] == 40003 and body["message"] == "You are opening direct messages too fast."
            assert 9 < body["retry_after"] <= 10 and body["global"] is False
    assert emu.dm_opens == {user: 1 for user in USERS[:10]}
    assert emu.rate_limited == 1 and emu.invalid_requests == 1 and emu.violations == []


async def test_nextcord_waits_out_the_dm_open_limit_and_the_channel_is_reused(emu: DiscordEmulator) -> None:
    emu.dm_open_limit, emu.dm_open_window = 3, 1.0
    client = await logged_in(emu)
    try:
        started = time.monotonic()
        channels = [await client.http.start_private_message(user) for user in USERS[:5]]
        took = time.monotonic() - started
        again = await client.http.start_private_message(ALICE)
    finally:
        await client.close()
    assert took > 1 - 0.05, took  # the fourth open waited for the next window
    assert len({c["id"] for c in channels}) == 5
    assert again["id"] == channels[0]["id"]  # Discord reuses a user's DM channel
    assert emu.dm_opens[ALICE] == 2 and emu.dm_opens[BOB] == 1
    assert emu.violations == []


async def test_dm_messages_have_a_per_channel_bucket_of_5_per_5_seconds(emu: DiscordEmulator) -> None:
    client = await logged_in(emu)
    try:
        alice = (await client.http.start_private_message(ALICE))["id"]
        bob = (await client.http.start_private_message(BOB))["id"]
    finally:
        await client.close()
    async with aiohttp.ClientSession(headers={"Authorization": f"Bot {emu.token}"}) as http:
        buckets = set()
        for i in range(5):
            async with http.post(f"{emu.base_url}/channels/{alice}/messages", json={"content": str(i)}) as r:
                assert r.status == 200
                assert (r.headers["X-RateLimit-Limit"], r.headers["X-RateLimit-Remaining"]) == ("5", str(4 - i))
                assert 4 < float(r.headers["X-RateLimit-Reset-After"]) <= 5
                buckets.add(r.headers["X-RateLimit-Bucket"])
        async with http.post(f"{emu.base_url}/channels/{alice}/messages", json={"content": "6"}) as r:
            assert r.status == 429 and r.headers["Retry-After"] == "5"
            assert (await r.json())["message"] == "You are being rate limited."
        async with http.post(f"{emu.base_url}/channels/{bob}/messages", json={"content": "hi"}) as r:
            assert r.status == 200  # each channel has its own window
            buckets.add(r.headers["X-RateLimit-Bucket"])
        async with http.post(f"{emu.base_url}/channels/{alice}/messages", json={"content": "7"}) as r:
            assert r.status == 429  # again before retry_after: a violation
    assert len(buckets) == 1  # one bucket id; the channel is its major parameter
    assert [m["content"] for m in emu.dms_to(ALICE)] == ["0", "1", "2", "3", "4"]
    assert emu.rate_limited == 2
    (violation,) = emu.violations
    assert "before the retry_after" in violation


async def test_nextcord_sends_a_burst_of_dms_within_the_channel_bucket(emu: DiscordEmulator) -> None:
    emu.dm_message_window = 1.0
    client = await logged_in(emu)
    try:
        dm = await client.create_dm(nextcord.Object(ALICE))
        started = time.monotonic()
        for i in range(7):
            await dm.send(f"alert {i}")
        took = time.monotonic() - started
    finally:
        await client.close()
    assert took > 1 - 0.05, took
    assert [m["content"] for m in emu.dms_to(ALICE)] == [f"alert {i}" for i in range(7)]
    assert emu.violations == []


async def test_no_mutual_guild_is_50278_and_closed_dms_50007(emu: DiscordEmulator) -> None:
    emu.close_dms(ALICE)
    emu.remove_member(GUILD_ID, BOB)
    client = await logged_in(emu)
    try:
        for user, code, text in (
            (ALICE, 50007, "Cannot send messages to this user"),
            (BOB, 50278, "Cannot send messages to this user due to having no mutual guilds"),
        ):
            channel = await client.http.start_private_message(user)  # opening still succeeds
            with pytest.raises(nextcord.Forbidden) as caught:
                await client.http.send_message(channel["id"], content="hello")
            assert (caught.value.status, caught.value.code, caught.value.text) == (403, code, text)
    finally:
        await client.close()
    assert emu.dms_to(ALICE) == emu.dms_to(BOB) == []
    assert emu.invalid_requests == 2 and emu.violations == []
