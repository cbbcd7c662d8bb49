"""The emulator's gateway sessions: op 7 Reconnect and op 9 Invalid Session with the real nextcord client
(which must RESUME, or IDENTIFY anew, and go on answering), RESUME's replay, and IDENTIFY pacing under
`max_concurrency` 1 with a two-shard AutoShardedBot and with a raw websocket."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import nextcord
import pytest
import pytest_asyncio
from nextcord.ext import commands

from tests.e2e.test_emulator_rules import GUILD_ID, Harness, start_bot, stop_bot
from tests.emulator import DiscordEmulator


@pytest_asyncio.fixture
async def harness(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Harness]:
    emulator = DiscordEmulator()
    await emulator.start()
    monkeypatch.setattr(nextcord.http.Route, "BASE", emulator.base_url)
    emulator.add_guild(GUILD_ID, "Arrakis")
    h = await start_bot(emulator)
    try:
        yield h
    finally:
        await stop_bot(h)
        await emulator.stop()


async def ping(h: Harness, timeout: float = 5) -> str:
    message = await h.emulator.invoke("ping", guild_id=GUILD_ID, user=h.alice).done(timeout)
    return str(message.embeds[0]["title"])


async def test_op_7_reconnect_is_resumed_and_missed_events_are_replayed(harness: Harness) -> None:
    emu = harness.emulator
    session = emu.session_of(0)
    seq_before = session.seq
    emu.reconnect(0)
    # dispatched while the client reconnects: kept in the session, replayed on RESUME
    missed = emu.invoke("ping", guild_id=GUILD_ID, user=harness.alice)
    assert (await missed.done(timeout=5)).embeds[0]["title"] == "Pong"
    (resume,) = emu.resumes
    assert resume["session_id"] == session.session_id and resume["seq"] == seq_before
    assert missed.session_id == session.session_id and len(emu.identifies) == 1
    assert emu.session_of(0) is session and emu.connected_shards == {0}
    assert await ping(harness) == "Pong"
    assert emu.violations == [] and harness.errors == []


async def test_op_9_resumable_is_resumed(harness: Harness) -> None:
    emu = harness.emulator
    session = emu.invalidate_session(0, resumable=True)
    await harness.watch(emu.wait_for_shards({0}))
    assert [r["session_id"] for r in emu.resumes] == [session.session_id] and len(emu.identifies) == 1
    assert await ping(harness) == "Pong"
    assert emu.violations == [] and harness.errors == []


async def test_op_9_not_resumable_makes_the_client_identify_anew_after_a_wait(harness: Harness) -> None:
    emu = harness.emulator
    old = emu.invalidate_session(0, resumable=False)
    told = asyncio.get_running_loop().time()
    assert emu.connected_shards == set()
    with pytest.raises(RuntimeError, match="no bot is connected"):
        emu.invoke("ping", guild_id=GUILD_ID, user=harness.alice)
    await harness.watch(emu.wait_for_shards({0}, timeout=15), timeout=20)
    (first, _), (again, _) = emu.identified_at
    assert again - told >= 1  # nextcord sleeps 5 s before any IDENTIFY but its first
    assert again - first >= emu.identify_interval
    assert emu.session_of(0).session_id != old.session_id and emu.resumes == []
    assert await ping(harness) == "Pong"
    assert emu.violations == [] and harness.errors == []


class Pinger(commands.Cog):
    @nextcord.slash_command(name="ping", description="Which shard answers")
    async def ping(self, interaction: nextcord.Interaction) -> None:
        await interaction.response.send_message(f"shard {interaction.guild.shard_id if interaction.guild else None}")


async def test_an_auto_sharded_bot_identifies_its_two_shards_5_seconds_apart(monkeypatch: pytest.MonkeyPatch) -> None:
    emu = DiscordEmulator(shard_count=2)
    await emu.start()
    monkeypatch.setattr(nextcord.http.Route, "BASE", emu.base_url)
    guild = {emu.shard_of(g): g for g in range(GUILD_ID, GUILD_ID + (8 << 22), 1 << 22)}
    for shard, guild_id in guild.items():
        emu.add_guild(guild_id, f"shard {shard}")
    bot = commands.AutoShardedBot(shard_count=2, intents=nextcord.Intents(guilds=True), guild_ready_timeout=0.05)
    bot.add_cog(Pinger())
    task = asyncio.create_task(bot.start(emu.token))
    try:
        await asyncio.wait_for(emu.wait_for_shards({0, 1}, timeout=20), 25)
        await emu.wait_for_commands({"ping"})
        (t0, s0), (t1, s1) = emu.identified_at
        assert (s0, s1) == (0, 1) and t1 - t0 >= 5
        user = emu.member(1100000000000000700, "alice")
        for shard, guild_id in guild.items():
            message = await emu.invoke("ping", guild_id=guild_id, user=user).done()
            assert message.content == f"shard {shard}"
        auth = {"Authorization": f"Bot {emu.token}"}
        async with aiohttp.ClientSession(headers=auth) as http, http.get(f"{emu.base_url}/gateway/bot") as r:
            limit = (await r.json())["session_start_limit"]
        assert limit["max_concurrency"] == 1 and limit["total"] == 1000 and limit["remaining"] == 998
        assert 0 < limit["reset_after"] <= 86_400_000
    finally:
        await bot.close()
        await asyncio.wait_for(task, 10)
        await emu.stop()
    assert emu.violations == []


async def receive(ws: aiohttp.ClientWebSocketResponse, *, until: str | int) -> dict[str, Any]:
    """Frames until a dispatch named `until` (or an opcode `until`); returns it."""
    while True:
        frame: dict[str, Any] = json.loads(await asyncio.wait_for(ws.receive_str(), 5))
        if frame["t"] == until or frame["op"] == until:
            return frame


async def test_identify_too_soon_is_invalid_session_and_resume_needs_a_known_session() -> None:
    emu = DiscordEmulator(shard_count=2)
    await emu.start()
    identify: dict[str, Any] = {"token": emu.token, "intents": 1, "properties": {}}
    try:
        async with aiohttp.ClientSession() as http:
            first = await http.ws_connect(emu.gateway_url)
            await first.send_json({"op": 2, "d": identify | {"shard": [0, 2]}})
            ready = await receive(first, until="READY")
            second = await http.ws_connect(emu.gateway_url)
            await second.send_json({"op": 2, "d": identify | {"shard": [1, 2]}})  # same bucket, too soon
            assert (await receive(second, until=9))["d"] is False
            assert emu.connected_shards == {0}

            third = await http.ws_connect(emu.gateway_url)
            resume = {"token": emu.token, "session_id": "nope", "seq": 1}
            await third.send_json({"op": 6, "d": resume})
            assert (await receive(third, until=9))["d"] is False
            fourth = await http.ws_connect(emu.gateway_url)
            resume |= {"session_id": ready["d"]["session_id"], "seq": ready["s"] + 5}  # seq never sent
            await fourth.send_json({"op": 6, "d": resume})
            assert (await receive(fourth, until=9))["d"] is False
            for ws in (first, second, third, fourth):
                await ws.close()
    finally:
        await emu.stop()
    (violation,) = emu.violations
    assert "shard 1 IDENTIFYed" in violation and "max_concurrency 1: one per 5s" in violation
    assert emu.session_starts == 1 and len(emu.identifies) == 2


async def test_identify_right_after_op_9_is_a_violation() -> None:
    emu = DiscordEmulator()
    await emu.start()
    emu.identify_interval = 0  # only the wait after op 9 is under test here
    identify: dict[str, Any] = {"token": emu.token, "intents": 1, "properties": {}}
    try:
        async with aiohttp.ClientSession() as http:
            first = await http.ws_connect(emu.gateway_url)
            await first.send_json({"op": 2, "d": identify})
            await receive(first, until="READY")
            emu.invalidate_session(0)
            assert (await receive(first, until=9))["d"] is False
            await first.close()
            second = await http.ws_connect(emu.gateway_url)
            await second.send_json({"op": 2, "d": identify})  # no wait at all
            await receive(second, until="READY")  # accepted, but recorded
            await second.close()
    finally:
        await emu.stop()
    (violation,) = emu.violations
    assert "after op 9 Invalid Session (Discord asks for a random wait of 1 to 5 s)" in violation
