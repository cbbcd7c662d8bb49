"""The emulator's member-role, member, role-list and DM routes, driven by the real nextcord HTTP client.

No gateway and no database: a logged-in `nextcord.Client` is enough for REST calls.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import nextcord
import pytest
import pytest_asyncio

from tests.emulator import DiscordEmulator

GUILD_ID = 1100000000000000300
OTHER_GUILD_ID = 1100000000000000301
ALICE, BOB, CAROL = 1100000000000000310, 1100000000000000311, 1100000000000000312


@pytest_asyncio.fixture
async def emu(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[DiscordEmulator]:
    emulator = DiscordEmulator()
    await emulator.start()
    monkeypatch.setattr(nextcord.http.Route, "BASE", emulator.base_url)
    emulator.add_guild(GUILD_ID, "Arrakis")
    emulator.add_guild(OTHER_GUILD_ID, "Caladan")
    try:
        yield emulator
    finally:
        await emulator.stop()


async def logged_in(emulator: DiscordEmulator) -> nextcord.Client:
    client = nextcord.Client()
    await client.login(emulator.token)
    return client


@pytest_asyncio.fixture
async def client(emu: DiscordEmulator) -> AsyncIterator[nextcord.Client]:
    c = await logged_in(emu)
    try:
        yield c
    finally:
        await c.close()


def hierarchy(emu: DiscordEmulator) -> dict[str, int]:
    """Council (12) > Sietch, the bot's role (10) > Naib (5) > Fremen (3)."""
    roles = {name: emu.add_role(GUILD_ID, name, pos) for name, pos in (("Council", 12), ("Sietch", 10))}
    roles |= {name: emu.add_role(GUILD_ID, name, pos) for name, pos in (("Naib", 5), ("Fremen", 3))}
    emu.give_bot_role(GUILD_ID, roles["Sietch"])
    return roles


async def test_roles_are_added_and_removed_with_their_audit_reasons(
    emu: DiscordEmulator, client: nextcord.Client
) -> None:
    roles = hierarchy(emu)
    naib, fremen = roles["Naib"], roles["Fremen"]
    emu.add_member(GUILD_ID, ALICE, roles=[fremen], name="alice")
    reason = "rank 1 → Naib (top 5% / conviction)"

    await client.http.add_role(GUILD_ID, ALICE, naib, reason=reason)
    await client.http.add_role(GUILD_ID, ALICE, naib, reason="again")  # held already: 204, no change
    assert emu.member_roles(GUILD_ID, ALICE) == {fremen, naib}
    await client.http.remove_role(GUILD_ID, ALICE, fremen, reason="below threshold")
    await client.http.remove_role(GUILD_ID, ALICE, fremen)  # not held: 204, no change
    assert emu.member_roles(GUILD_ID, ALICE) == {naib}
    assert emu.role_changes == [
        (GUILD_ID, ALICE, naib, "add", reason),
        (GUILD_ID, ALICE, fremen, "remove", "below threshold"),
    ]

    member: dict[str, Any] = dict(await client.http.get_member(GUILD_ID, ALICE))  # nextcord types deaf as str
    assert member["user"]["id"] == str(ALICE) and member["user"]["username"] == "alice"
    assert member["roles"] == [str(naib)] and member["joined_at"]
    assert (member["deaf"], member["mute"], member["flags"]) == (False, False, 0)
    bot = await client.http.get_member(GUILD_ID, emu.app_id)
    assert bot["roles"] == [str(roles["Sietch"])] and bot["user"]["bot"] is True

    listed = await client.http.get_roles(GUILD_ID)
    assert [(r["name"], r["position"]) for r in listed] == [
        ("@everyone", 0), ("Fremen", 3), ("Naib", 5), ("Sietch", 10), ("Council", 12),
    ]  # fmt: skip
    assert listed[0]["id"] == str(GUILD_ID)
    naib_role = next(r for r in listed if r["id"] == str(naib))
    assert naib_role["permissions"] == "0" and naib_role["color"] == 0 and naib_role["flags"] == 0
    assert not (naib_role["hoist"] or naib_role["managed"] or naib_role["mentionable"])
    assert emu.violations == [] and emu.unknown_routes == [] and emu.rate_limited == 0


async def test_roles_at_or_above_the_bots_highest_are_forbidden(emu: DiscordEmulator, client: nextcord.Client) -> None:
    roles = hierarchy(emu)
    emu.add_member(GUILD_ID, ALICE)
    for name in ("Sietch", "Council"):  # its own highest role is out of reach too
        with pytest.raises(nextcord.Forbidden) as caught:
            await client.http.add_role(GUILD_ID, ALICE, roles[name], reason="sync")
        assert caught.value.status == 403 and caught.value.code == 50013
    other = emu.add_role(OTHER_GUILD_ID, "Naib", 1)
    emu.add_member(OTHER_GUILD_ID, ALICE)
    with pytest.raises(nextcord.Forbidden, match="Missing Permissions"):  # a bot without roles manages none
        await client.http.add_role(OTHER_GUILD_ID, ALICE, other)
    assert emu.member_roles(GUILD_ID, ALICE) == set() and emu.role_changes == []


async def test_unknown_member_role_and_guild_are_404(emu: DiscordEmulator, client: nextcord.Client) -> None:
    naib = hierarchy(emu)["Naib"]
    emu.add_member(GUILD_ID, BOB, roles=[naib])
    emu.remove_member(GUILD_ID, BOB)
    for call in (client.http.add_role, client.http.remove_role):
        with pytest.raises(nextcord.NotFound) as caught:
            await call(GUILD_ID, BOB, naib, reason="left")
        assert caught.value.code == 10007
    with pytest.raises(nextcord.NotFound) as caught:
        await client.http.get_member(GUILD_ID, BOB)
    assert caught.value.code == 10007
    emu.add_member(GUILD_ID, CAROL)
    for guild_id, role_id, code in ((GUILD_ID, 42, 10011), (1100000000000000399, naib, 10004)):
        with pytest.raises(nextcord.NotFound) as caught:
            await client.http.add_role(guild_id, CAROL, role_id)
        assert caught.value.code == code
    with pytest.raises(LookupError):
        emu.member_roles(GUILD_ID, BOB)
    assert emu.role_changes == [] and emu.violations == []


async def test_a_429_is_waited_out_by_nextcord(emu: DiscordEmulator, client: nextcord.Client) -> None:
    """Two processes on one token share Discord's bucket: the second learns of it from a 429."""
    roles = hierarchy(emu)
    emu.role_route_limit, emu.role_route_window = 2, 1.5  # longer than nextcord's own 1 s default wait
    emu.add_member(GUILD_ID, ALICE)
    second = await logged_in(emu)
    try:
        window_opened = time.monotonic()
        await client.http.add_role(GUILD_ID, ALICE, roles["Naib"])
        await client.http.add_role(GUILD_ID, ALICE, roles["Fremen"])  # the bucket is empty now
        await second.http.remove_role(GUILD_ID, ALICE, roles["Naib"], reason="sync")
        done = time.monotonic() - window_opened
    finally:
        await second.close()
    assert emu.rate_limited >= 1 and emu.violations == []
    assert 1.5 - 0.05 < done < 3, done  # it slept until the window's reset, then succeeded
    assert emu.member_roles(GUILD_ID, ALICE) == {roles["Fremen"]}
    assert emu.role_changes[-1] == (GUILD_ID, ALICE, roles["Naib"], "remove", "sync")


async def test_rate_limit_headers_429_body_and_early_retries(emu: DiscordEmulator) -> None:
    roles = hierarchy(emu)
    emu.add_member(GUILD_ID, ALICE)
    emu.give_bot_role(OTHER_GUILD_ID, emu.add_role(OTHER_GUILD_ID, "Sietch", 10))
    other = emu.add_role(OTHER_GUILD_ID, "Naib", 5)
    emu.add_member(OTHER_GUILD_ID, ALICE)
    emu.role_route_limit, emu.role_route_window = 1, 5.0
    url = f"{emu.base_url}/guilds/{GUILD_ID}/members/{ALICE}/roles/{roles['Naib']}"
    async with aiohttp.ClientSession(headers={"Authorization": f"Bot {emu.token}"}) as http:
        async with http.put(url, headers={"X-Audit-Log-Reason": "first%20one"}) as r:
            assert r.status == 204
            assert (r.headers["X-RateLimit-Limit"], r.headers["X-RateLimit-Remaining"]) == ("1", "0")
            assert 4 < float(r.headers["X-RateLimit-Reset-After"]) <= 5
            assert abs(float(r.headers["X-RateLimit-Reset"]) - time.time() - 5) < 1
            bucket = r.headers["X-RateLimit-Bucket"]
        async with http.delete(url) as r:  # PUT and DELETE share the bucket
            assert r.status == 429 and r.headers["Retry-After"] == "5"
            assert r.headers["X-RateLimit-Bucket"] == bucket and r.headers["X-RateLimit-Scope"] == "user"
            body = await r.json()
            assert body["message"] == "You are being rate limited." and body["global"] is False
            assert 4 < body["retry_after"] <= 5
        async with http.delete(url) as r:  # ignoring retry_after is a violation
            assert r.status == 429
        other_url = f"{emu.base_url}/guilds/{OTHER_GUILD_ID}/members/{ALICE}/roles/{other}"
        async with http.put(other_url) as r:  # the major parameter: each guild has its own window
            assert r.status == 204 and r.headers["X-RateLimit-Bucket"] == bucket
        async with http.put(url, headers={"Authorization": "Bot nope"}) as r:
            assert r.status == 401
    assert emu.rate_limited == 2 and emu.member_roles(GUILD_ID, ALICE) == {roles["Naib"]}
    assert emu.role_changes[0] == (GUILD_ID, ALICE, roles["Naib"], "add", "first one")
    (violation,) = emu.violations
    assert "before the retry_after" in violation


async def test_dms_reach_open_users_only(emu: DiscordEmulator, client: nextcord.Client) -> None:
    emu.add_member(GUILD_ID, ALICE, name="alice")
    emu.add_member(GUILD_ID, BOB, name="bob")
    emu.add_member(GUILD_ID, CAROL, name="carol")
    emu.close_dms(BOB)
    emu.remove_member(GUILD_ID, CAROL)  # no guild in common any more

    channel = await client.http.start_private_message(ALICE)
    assert channel["type"] == 1 and [u["id"] for u in channel["recipients"]] == [str(ALICE)]
    assert (await client.http.start_private_message(ALICE))["id"] == channel["id"]
    sent = await client.http.send_message(channel["id"], content="You are now a Naib")
    assert sent["channel_id"] == channel["id"] and "guild_id" not in sent and "webhook_id" not in sent
    dm = await client.create_dm(nextcord.Object(ALICE))  # nextcord's own models accept the payloads
    assert isinstance(dm, nextcord.DMChannel) and dm.id == int(channel["id"]) and dm.recipient is not None
    message = await dm.send("second")
    assert message.author.id == emu.app_id and message.content == "second"
    assert [m["content"] for m in emu.dms_to(ALICE)] == ["You are now a Naib", "second"]

    for user_id, code in ((BOB, 50007), (CAROL, 50278)):  # DMs closed; no guild in common
        closed = await client.http.start_private_message(user_id)  # opening the channel still works
        with pytest.raises(nextcord.Forbidden) as caught:
            await client.http.send_message(closed["id"], content="hello")
        assert caught.value.status == 403 and caught.value.code == code
        assert emu.dms_to(user_id) == []
    emu.close_dms(BOB, closed=False)
    await client.http.send_message((await client.http.start_private_message(BOB))["id"], content="open again")
    assert [m["content"] for m in emu.dms_to(BOB)] == ["open again"]

    with pytest.raises(nextcord.NotFound):  # guild channels are not emulated: still an unknown route
        await client.http.send_message(emu.guilds[GUILD_ID].channel_id, content="hi")
    assert emu.unknown_routes == [f"POST /api/v10/channels/{emu.guilds[GUILD_ID].channel_id}/messages"]
    assert emu.violations == []
