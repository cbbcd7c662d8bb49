"""Interaction callbacks that fail on Discord's side (5xx, not applied) and the 3-second deadline, with
the real nextcord client: one 5xx is retried in time, two in a row are not (nextcord waits 1 s, then 3 s),
and an interaction left without an initial response is a violation as soon as the deadline passes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import nextcord
import pytest
import pytest_asyncio

from tests.e2e.test_emulator_rules import GUILD_ID, Harness, _until, start_bot, stop_bot
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


async def test_one_failed_callback_is_retried_within_the_deadline(harness: Harness) -> None:
    emu = harness.emulator
    emu.fail_callbacks(500)
    inter = emu.invoke("ping", guild_id=GUILD_ID, user=harness.alice)
    message = await inter.done(timeout=5)
    assert message.embeds[0]["title"] == "Pong" and message.ephemeral
    assert inter.callback_types == [4, 4] and inter.rejections == [(500, 0)]
    assert emu.callback_failures == []
    assert emu.violations == [] and harness.errors == []


async def test_two_failed_callbacks_in_a_row_leave_the_interaction_unanswered(harness: Harness) -> None:
    emu = harness.emulator
    emu.fail_callbacks(502, 503)
    inter = emu.invoke("ping", guild_id=GUILD_ID, user=harness.alice)
    await harness.watch(_until(lambda: harness.errors, timeout=8), timeout=10)
    assert inter.expired and inter.ack_type is None and inter.original is None
    assert inter.callback_types == [4, 4, 4]
    assert inter.rejections == [(502, 0), (503, 0), (404, 10062)]  # the third try came after 1 + 3 s
    (violation,) = emu.violations
    assert "no initial response within the 3s deadline" in violation
    assert harness.error_codes() == [10062]
    with pytest.raises(ValueError, match="5xx"):
        emu.fail_callbacks(429)


async def test_no_initial_response_is_a_violation_when_the_deadline_passes(harness: Harness) -> None:
    emu = harness.emulator
    emu.response_deadline = 0.3
    inter = emu.invoke("slow", guild_id=GUILD_ID, user=harness.alice)  # answers after 0.6 s
    await asyncio.sleep(0.45)
    assert inter.callback_types == [] and inter.expired  # not answered yet, and already too late
    (violation,) = emu.violations
    assert "no initial response within the 0.3s deadline" in violation
    await harness.watch(_until(lambda: harness.errors))
    assert inter.rejections == [(404, 10062)] and len(emu.violations) == 1  # recorded once
