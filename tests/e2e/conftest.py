"""A logged-in nextcord REST client on the Discord emulator, for tests of what the bot sends Discord
outside interactions (role changes, DMs)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import nextcord
import pytest

from tests.emulator import DiscordEmulator


@pytest.fixture
async def discord(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[DiscordEmulator, nextcord.Client]]:
    emulator = DiscordEmulator()
    await emulator.start()
    monkeypatch.setattr(nextcord.http.Route, "BASE", emulator.base_url)
    client = nextcord.Client(intents=nextcord.Intents.none())
    await client.login(emulator.token)
    try:
        yield emulator, client
    finally:
        await client.close()
        await emulator.stop()
