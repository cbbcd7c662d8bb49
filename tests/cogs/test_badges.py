"""/leaderboard badges through the real client and the emulator: badges awarded through the feed's HTTP
door, the worked example's texts on each backend within Discord's 3 s, and the flag file's `leaderboard`
entry routing it to Scylla with every answer shadowed on PostgreSQL."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from tests.cogs.conftest import BotHarness, flags_yaml
from tests.cogs.test_routing import eventually, served_by

GOLD = 0xD4AF37


async def award(h: BotHarness, changes: list[tuple[int, str, str]], guild_id: int | None = None) -> None:
    """(user, action, type) changes through POST /v1/guilds/{guild}/badges, then the copies are given them."""
    guild = guild_id or h.guild_id
    token = await h.container.ingest().new_token(guild)
    body = [{"member": str(user), "action": action, "type": kind} for user, action, kind in changes]
    async with (
        TestClient(TestServer(h.container.feed_server().app())) as client,
        client.post(f"/v1/guilds/{guild}/badges", headers={"Authorization": f"Bearer {token}"}, json=body) as answer,
    ):
        assert answer.status == 200, await answer.text()
    relay = h.container.relay()
    if relay is not None:
        await relay.flush()


async def badges(h: BotHarness, user_id: int) -> tuple[Any, float]:
    interaction = h.emulator.invoke("leaderboard", "badges", guild_id=h.guild_id, user=h.user(user_id))
    message = await interaction.done(timeout=5)
    assert interaction.responded_at is not None
    return message, interaction.responded_at


async def test_the_worked_example_in_time(harness: BotHarness) -> None:
    """Worked example 2 with every member joining within the launch's first 30 days (all `og`)."""
    await harness.configure(fedaykin=1, naib=1, at_risk=0)
    ada, ben, cal, dee = await harness.seed([5000, 600, 0, 0])
    await award(
        harness,
        [
            (ada, "award", "og"),
            (ada, "award", "water_sharer"),
            (ada, "award", "first_maker"),
            (ben, "award", "desert_active"),
            (ben, "award", "sietch_engaged"),
            (ben, "award", "water_sharer"),
            (cal, "award", "desert_active"),
            (cal, "award", "former_naib"),
            (cal, "revoke", "former_naib"),
        ],
    )
    message, answered_in = await badges(harness, dee)
    assert answered_in < 3 and not message.ephemeral
    (embed,) = message.embeds
    assert (embed["title"], embed["color"]) == ("🏆 Engagement Leaderboard", GOLD)
    assert embed["description"] == (
        "🥇 👑 **member0** 🏛️ — 3 badges\n🥇 🏔️ **member1** 🏛️ — 3 badges\n🥉 🌱 **member2** 🏛️ — 1 badge"
    )
    assert not embed.get("fields")  # Dee holds nothing
    assert embed["footer"]["text"] == "Rankings based on badge count • 4 total members"


async def test_a_caller_past_the_first_ten_and_the_empty_board(harness: BotHarness) -> None:
    await harness.configure(fedaykin=5, naib=3, at_risk=0)
    users = await harness.seed([0] * 21)
    kinds = ["og", "veteran", "elder"]
    await award(
        harness,
        [(u, "award", k) for u in users[:11] for k in kinds]
        + [(users[11], "award", "og"), (users[11], "award", "elder")],
    )
    message, _ = await badges(harness, users[11])
    (embed,) = message.embeds
    assert embed["description"].count("\n") == 9
    assert embed["fields"] == [
        {"name": "Your Position", "value": "You are ranked **#12** of 21 members", "inline": False}
    ]

    other = harness.guild_id + 1
    await harness.configure(other, fedaykin=2, naib=1, at_risk=1)
    (only,) = await harness.seed([10], guild_id=other, first_user_id=7000)
    interaction = harness.emulator.invoke("leaderboard", "badges", guild_id=other, user=harness.user(only))
    (empty,) = (await interaction.done(timeout=5)).embeds
    assert empty["description"] == "No leaderboard data available yet."
    assert "footer" not in empty and not empty.get("fields")


async def test_routed_to_scylla_with_every_answer_shadowed(both: BotHarness) -> None:
    """The flag file's `leaderboard` entry routes /leaderboard badges; PostgreSQL answers each one again."""
    await both.configure(fedaykin=3, naib=1, at_risk=0, rate_limit_per_minute=1000)
    users = await both.seed([5000, 4000, 3000, 700, 150, 50] + [0] * 40)
    kinds = ["og", "veteran", "elder", "water_sharer", "first_maker", "desert_active"]
    changes = [(u, "award", kinds[j]) for i, u in enumerate(users[:30]) for j in range(i % 5 + 1)]
    await award(both, [*changes, (users[3], "revoke", "og"), (users[7], "revoke", "og")])
    await both.set_flags(flags_yaml("postgres", leaderboard={"backend": "scylla", "shadow": 100}))
    metrics = both.container.metrics()
    callers = users[:4] + users[20:24] + users[-4:]
    for user_id in callers:
        backend, message = await served_by(both, "leaderboard", "badges", user=both.user(user_id))
        assert backend == "scylla" and message.embeds[0]["title"] == "🏆 Engagement Leaderboard"
    await eventually(lambda: metrics.shadow_results[("leaderboard", "postgres", "match")] == len(callers))
    assert metrics.shadow_results[("leaderboard", "postgres", "mismatch")] == 0
    assert metrics.shadow_results[("leaderboard", "postgres", "stale")] == 0
