"""Alert DMs through the real nextcord client and the emulator: recorded as due before they are sent and
gone only once Discord took them, so another process delivers what one left behind, exactly once; each
member's DM channel opened once; paced; a member Discord will not let the bot message (DMs closed, no
server in common) switched off with a note; losing eligibility told past the daily cap at most once an
hour."""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any

import nextcord
import psycopg

from backends.postgres.community_writes import CommunityWrites
from backends.postgres.standing import StandingStore
from backends.protocol import Community
from bot.discord.members import DiscordMembers
from bot.roles.alerts import DMS_CLOSED, AlertSender
from bot.roles.standing import Alert
from tests.emulator import DiscordEmulator


async def due_rows(dsn: str, guild: int) -> list[tuple[Any, ...]]:
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        cur = await conn.execute(
            "SELECT discord_user_id, urgent FROM alerts_due WHERE community_id = %s ORDER BY discord_user_id", (guild,)
        )
        return await cur.fetchall()


async def test_due_alerts_survive_a_process_and_are_sent_once_each_on_a_reused_channel(
    discord: tuple[DiscordEmulator, nextcord.Client], pool: Any, postgres_dsn: str, new_guild_id: int
) -> None:
    emulator, client = discord
    members = DiscordMembers(lambda: client.http)
    guild = new_guild_id
    community = Community(guild, name="Arrakis")
    await CommunityWrites(pool).upsert_community(community)
    emulator.add_guild(guild, name="Arrakis")
    store = StandingStore(pool)
    for user in (1, 2, 3, 4):
        emulator.add_member(guild, user, name=f"m{user}")
        await store.subscribe(guild, user, True)
    emulator.close_dms(3)
    emulator.remove_member(guild, 4)  # no server in common with the bot any more

    # A process records the alerts as due, then dies before delivering them.
    gone = AlertSender(store, members, per_second=1000)
    alerts = [Alert(u, ("entered",), 3) for u in (1, 2, 3, 4)]
    assert await gone.send(community, alerts) == 4
    assert [r[0] for r in await due_rows(postgres_dsn, guild)] == [1, 2, 3, 4]
    assert all(emulator.dms_to(u) == [] for u in (1, 2, 3, 4))

    # Another process delivers what is due: each once; the two members Discord refuses are switched off.
    sender = AlertSender(store, members, per_second=1000)
    assert await sender.deliver_due() == 2
    assert await sender.deliver_due() == 0  # nothing is due twice
    assert [len(emulator.dms_to(u)) for u in (1, 2, 3, 4)] == [1, 1, 0, 0]
    assert "eligible set (Fedaykin)" in emulator.dms_to(1)[0]["content"]
    assert await due_rows(postgres_dsn, guild) == []
    closed, strayed = await store.subscription(guild, 3), await store.subscription(guild, 4)
    assert closed is not None and not closed.enabled and closed.note == DMS_CLOSED
    assert strayed is not None and not strayed.enabled and "no server in common" in (strayed.note or "")

    # Losing eligibility is told past the daily cap, once within the loss period; the channel is reused.
    lost = [Alert(1, ("lost_eligibility",), 70)]
    assert await sender.send(community, lost) == 1
    assert await sender.deliver_due() == 1
    assert await sender.send(community, lost) == 0  # within the hour: held back
    assert await sender.send(community, [Alert(2, ("at_risk",), 65)]) == 0  # within the day: held back
    assert len(emulator.dms_to(1)) == 2 and emulator.dm_opens[1] == 1
    assert emulator.violations == [] and emulator.invalid_requests == 2  # the two refusals, asked once


async def test_dms_are_paced(discord: tuple[DiscordEmulator, nextcord.Client], pool: Any, new_guild_id: int) -> None:
    emulator, client = discord
    members = DiscordMembers(lambda: client.http)
    guild = new_guild_id
    community = Community(guild, name="Caladan")
    await CommunityWrites(pool).upsert_community(community)
    emulator.add_guild(guild, name="Caladan")
    store = StandingStore(pool)
    users = list(range(10, 16))
    for user in users:
        emulator.add_member(guild, user, name=f"m{user}")
        await store.subscribe(guild, user, True)
    sender = AlertSender(store, members, per_second=5)
    await sender.send(community, [Alert(u, ("head_of_waiting_pool",), 70) for u in users])
    assert await sender.deliver_due() == len(users)
    sent = sorted(datetime.fromisoformat(emulator.dms_to(u)[0]["timestamp"]) for u in users)
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(sent)]
    assert min(gaps) >= 0.19, gaps  # five a second at most
    assert emulator.violations == [] and emulator.rate_limited == 0
