"""/leaderboard tiers through the real client and the emulator: the worked example's texts on each backend,
answered within Discord's 3 s, and routed with the other boards under `leaderboard` in the flag file."""

from __future__ import annotations

from typing import Any

from tests.cogs.conftest import BotHarness, flags_yaml
from tests.cogs.test_routing import eventually, served_by

GOLD = 0xD4AF37
FOOTER = "Excludes Fedaykin and Naib (rank-based tiers) • BGT values rounded for privacy"
# Worked example 1 (F = 2): member0 5,000 and member1 1,200 hold rank tiers, member2 1,100 is sayyadina,
# member7 holds nothing; the board is member6, member3, member4, member5.
EXAMPLE = [5000, 1200, 1100, 990, 490, 480, 95, 0]
TOP = (
    "🥇 **member6**\n   Fremen → Stillsuit (5 BGT away)\n\n"
    "🥈 **member3**\n   Sietch → Sayyadina (10 BGT away)\n\n"
    "🥉 **member4**\n   Stillsuit → Sietch (10 BGT away)\n\n"
    "`# 4` **member5**\n   Stillsuit → Sietch (20 BGT away)"
)


async def tiers(h: BotHarness, user_id: int) -> tuple[Any, float]:
    interaction = h.emulator.invoke("leaderboard", "tiers", guild_id=h.guild_id, user=h.user(user_id))
    message = await interaction.done(timeout=5)
    assert interaction.responded_at is not None
    return message, interaction.responded_at


async def test_the_worked_example_in_time(harness: BotHarness) -> None:
    await harness.configure(fedaykin=2, naib=1, at_risk=1)
    users = await harness.seed(EXAMPLE)
    message, answered_in = await tiers(harness, users[4])
    assert answered_in < 3 and not message.ephemeral
    (embed,) = message.embeds
    assert (embed["title"], embed["color"]) == ("🏆 Tier Progression Leaderboard", GOLD)
    assert embed["description"] == "Members closest to their next tier promotion"
    assert embed["fields"] == [{"name": "Top Progressors", "value": TOP, "inline": False}]  # member4 is shown
    assert embed["footer"]["text"] == FOOTER


async def test_a_caller_past_the_first_ten_and_the_empty_board(harness: BotHarness) -> None:
    await harness.configure(fedaykin=2, naib=1, at_risk=1)
    users = await harness.seed([5000, 4000, 990, 960, 480, 470, 450, 95, 90, 85, 70, 50, 45, 40])
    message, _ = await tiers(harness, users[-1])
    fields = message.embeds[0]["fields"]
    assert fields[0]["value"].count("\n\n") == 9
    assert fields[1] == {
        "name": "Your Position",
        "value": "**Rank 12**\nFremen → Stillsuit (60 BGT away)",
        "inline": False,
    }

    other = harness.guild_id + 1
    await harness.configure(other, fedaykin=2, naib=1, at_risk=1)
    ranked_only_by_rank = await harness.seed([5000, 50], guild_id=other, first_user_id=7000)
    interaction = harness.emulator.invoke(
        "leaderboard", "tiers", guild_id=other, user=harness.user(ranked_only_by_rank[1])
    )
    (embed,) = (await interaction.done(timeout=5)).embeds
    assert embed["description"] == (
        "No tier progression data available.\nTier leaderboard excludes Fedaykin and Naib (rank-based tiers)."
    )
    assert "footer" not in embed and not embed.get("fields")


async def test_routed_to_scylla_with_every_answer_shadowed(both: BotHarness) -> None:
    """The flag file's `leaderboard` entry routes /leaderboard tiers; PostgreSQL answers each one again."""
    await both.configure(fedaykin=2, naib=1, at_risk=1, rate_limit_per_minute=1000)
    users = await both.seed(EXAMPLE + [1000 - 3 * i for i in range(1, 330)])  # past the first 200 ranks
    await both.set_flags(flags_yaml("postgres", leaderboard={"backend": "scylla", "shadow": 100}))
    metrics = both.container.metrics()
    callers = users[:8] + users[-5:]
    for user_id in callers:
        backend, message = await served_by(both, "leaderboard", "tiers", user=both.user(user_id))
        assert backend == "scylla" and message.embeds[0]["title"] == "🏆 Tier Progression Leaderboard"
    await eventually(lambda: metrics.shadow_results[("leaderboard", "postgres", "match")] == len(callers))
    assert metrics.shadow_results[("leaderboard", "postgres", "mismatch")] == 0
    assert metrics.shadow_results[("leaderboard", "postgres", "stale")] == 0

    interaction = both.emulator.invoke("leaderboard", "tiers", guild_id=both.guild_id, user=both.user(users[-1]))
    await interaction.done(timeout=5)
    assert interaction.responded_at is not None and interaction.responded_at < 3
