"""A third backend, registered beside PostgreSQL and Scylla, is routed to by the flag file alone: the
in-memory reference backend serves /position and /leaderboard, falls back, and shows in /backends."""

from __future__ import annotations

from decimal import Decimal

from backends.members import MemberRow
from backends.protocol import Community
from tests.cogs.conftest import BotHarness, flags_yaml
from tests.cogs.test_routing import served_by

MANAGE_GUILD = 1 << 5


async def test_the_flag_file_routes_a_command_to_the_third_backend(three: BotHarness) -> None:
    await three.configure()
    users = await three.seed([300, 200, 100])  # backfilled into every copy, the memory one included
    await three.set_flags(flags_yaml("postgres", position={"backend": "memory", "rollout": 100}))

    backend, message = await served_by(three, "position", user=three.user(users[1]))
    assert backend == "memory"
    assert {"name": "📊 Position", "value": "**#2**", "inline": True} in message.embeds[0]["fields"]

    backend, message = await served_by(three, "leaderboard", "conviction", user=three.user(users[0]))
    assert backend == "postgres" and "300" in str(message.embeds[0])


async def test_a_guild_override_and_the_status_name_the_third_backend(three: BotHarness) -> None:
    await three.configure()
    users = await three.seed([50, 40])
    await three.set_flags(flags_yaml("postgres", threshold={"guilds": f'{{"{three.guild_id}": memory}}'}))
    assert (await served_by(three, "threshold", user=three.user(users[0])))[0] == "memory"

    admin = three.user(users[0], permissions=MANAGE_GUILD)
    status = (await three.call("backends", "status", user=admin)).embeds[0]
    commands = next(f["value"] for f in status["fields"] if f["name"] == "Commands")
    assert "`/threshold` → **memory** — guild override" in commands
    breakers = next(f["value"] for f in status["fields"] if f["name"] == "Breakers")
    assert "memory: closed" in breakers


async def test_a_guild_the_third_backend_never_copied_is_served_by_the_next(three: BotHarness) -> None:
    await three.configure()
    users = await three.seed([10, 20])
    other = three.guild_id + 1
    # Written to PostgreSQL only: no copy has been backfilled for this guild.
    admin = await three.admin()
    await admin.upsert_community(Community(other, name="Caladan"))
    await admin.import_members(other, [MemberRow(discord_user_id=9000, conviction=Decimal(5))])
    await three.set_flags(flags_yaml("postgres", position={"backend": "memory", "rollout": 100}))

    assert (await served_by(three, "position", user=three.user(9000), guild_id=other))[0] == "postgres"
    assert (await served_by(three, "position", user=three.user(users[0])))[0] == "memory"
