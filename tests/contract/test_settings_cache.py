"""Each process keeps a community's settings for a few seconds; on every backend."""

from __future__ import annotations

import asyncio

import pytest

from backends.protocol import Community, NotConfigured
from bot.domain.service import HotPathService
from tests.contract.conftest import World


async def test_settings_are_reused_within_the_ttl_and_reread_after(world: World) -> None:
    await world.community(fedaykin=69)
    lasting = HotPathService(world.backend, community_ttl_seconds=3600)
    brief = HotPathService(world.backend, community_ttl_seconds=0.05)
    assert (await lasting.open_context(world.guild_id)).community.fedaykin == 69  # type: ignore[union-attr]
    assert (await brief.open_context(world.guild_id)).community.fedaykin == 69  # type: ignore[union-attr]

    await world.community(fedaykin=50, at_risk=40)
    await asyncio.sleep(0.2)
    assert (await lasting.open_context(world.guild_id)).community.fedaykin == 69  # type: ignore[union-attr]
    assert (await brief.open_context(world.guild_id)).community.fedaykin == 50  # type: ignore[union-attr]


async def test_an_unknown_guild_is_served_as_soon_as_it_is_configured(world: World) -> None:
    service = HotPathService(world.backend, community_ttl_seconds=3600)
    with pytest.raises(NotConfigured):
        await service.open_context(world.guild_id)
    await world.community()
    ctx = await service.open_context(world.guild_id)
    assert ctx.community == Community(world.guild_id, name=f"guild {world.guild_id}")
