"""Failures belong to whoever failed: one guild's request errors never open a breaker or trip a latch
for everyone, a reroute honours readiness, and slow is deferred, never an error, while a backend can
still answer."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest

import bot.discord.embeds
from backends.members import MemberRow
from backends.protocol import Community
from bot.domain import formatting, messages
from tests.cogs.conftest import BotHarness, flags_yaml
from tests.cogs.test_failures import blocked_communities, until, waiting_on_a_lock
from tests.cogs.test_routing import served_by

RED = 0xDC143C


def is_error(message: Any, text: str) -> bool:
    (embed,) = message.embeds
    return bool(message.ephemeral and embed["color"] == RED and embed["description"] == text)


async def test_one_guilds_unrenderable_data_opens_no_breaker_and_other_guilds_are_served(
    both: BotHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    await both.configure()
    users = await both.seed([30, 20, 10])
    other = both.guild_id + 1
    # The other guild lives in PostgreSQL only: a reroute to Scylla would tell its members "not configured".
    admin = await both.admin()
    await admin.upsert_community(Community(other, name="Caladan"))
    await admin.import_members(
        other, [MemberRow(discord_user_id=9000, conviction=5), MemberRow(discord_user_id=9001, conviction=3)]
    )
    poisoned = both.guild_id

    def bgt(value: Decimal) -> str:
        if value in (30, 20, 10):  # this guild's numbers cannot be shown
            raise ValueError(f"cannot render {value}")
        return formatting.bgt(value)

    monkeypatch.setattr(bot.discord.embeds, "bgt", bgt)
    for _ in range(8):  # past the breaker's 5 failures, under the 10-a-minute rate limit
        message = await both.call("position", user=both.user(users[0]), guild_id=poisoned)
        assert is_error(message, messages.FAILED["position"]), message.embeds
    router = both.container.router()
    assert {name: b.state for name, b in router.breakers.items()} == {"postgres": "closed", "scylla": "closed"}
    assert router.rollback.latches == {}
    backend, message = await served_by(both, "position", user=both.user(9001), guild_id=other)
    assert backend == "postgres"
    assert {"name": "📊 Position", "value": "**#2**", "inline": True} in message.embeds[0]["fields"]


async def test_a_query_held_behind_a_lock_is_deferred_and_answered(both: BotHarness, postgres_dsn: str) -> None:
    await both.configure()
    await both.seed([10, 5])
    other = both.guild_id + 1
    admin = await both.admin()
    await admin.upsert_community(Community(other, name="Caladan"))  # never copied: PostgreSQL alone can answer
    await admin.import_members(other, [MemberRow(discord_user_id=9000, conviction=5)])
    lock = await blocked_communities(postgres_dsn)
    try:
        interaction = both.emulator.invoke("threshold", guild_id=other, user=both.user(9000))
        await until(lambda: interaction.deferred, "a deferred answer while the database is locked")
        await until(lambda: waiting_on_a_lock(postgres_dsn), "the bot's query waiting on the lock")
        await asyncio.sleep(2.5)  # the slowness under test: well past the 1.5 s time budget
    finally:
        await lock.rollback()
        await lock.close()
    message = await interaction.done()
    assert not message.ephemeral and message.embeds[0]["title"] == "⛩️ The Threshold"
    router = both.container.router()
    assert router.breakers["postgres"].state == "closed"


async def test_a_cold_copy_that_cannot_prepare_falls_back_to_postgres(both: BotHarness) -> None:
    await both.configure()
    users = await both.seed([30, 20, 10])
    await both.set_flags(flags_yaml("postgres", position={"backend": "scylla", "rollout": 100}))
    assert (await served_by(both, "position", user=both.user(users[0])))[0] == "scylla"
    cql = both.container.cql()
    cql._prepared.clear()  # a cold start: nothing prepared yet...
    await asyncio.to_thread(cql.session.cluster.shutdown)  # ...and the cluster gone
    backend, message = await served_by(both, "position", user=both.user(users[1]))
    assert backend == "postgres"
    assert {"name": "📊 Position", "value": "**#2**", "inline": True} in message.embeds[0]["fields"]
