"""/naib through the real client and the emulator: a score written through the feed's HTTP door moves a
seat and /naib current shows it at once, the three views' texts, and the flag file's `naib` entry routing
/naib to Scylla with every answer shadowed on PostgreSQL."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from tests.cogs.conftest import BotHarness, flags_yaml
from tests.cogs.test_routing import eventually, served_by

GOLD = 0xD4AF37
SILVER = 0xC0C0C0


async def feed(h: BotHarness, scores: dict[int, str]) -> None:
    """Conviction values through POST /v1/guilds/{guild}/scores, then the copies are given them and their
    boards rebuilt."""
    token = await h.container.ingest().new_token(h.guild_id)
    body = [
        {"member": str(user), "board": "conviction", "value": value, "event_type": "token_hold"}
        for user, value in scores.items()
    ]
    async with (
        TestClient(TestServer(h.container.feed_server().app())) as client,
        client.post(
            f"/v1/guilds/{h.guild_id}/scores", headers={"Authorization": f"Bearer {token}"}, json=body
        ) as answer,
    ):
        assert answer.status == 200, await answer.text()
    relay = h.container.relay()
    if relay is not None:
        await relay.flush()
    for replica in h.container.replicas().values():  # as the rebuild loop would, a moment later
        await replica.rebuild(h.guild_id)


async def naib(h: BotHarness, view: str, user_id: int) -> tuple[dict[str, Any], float]:
    interaction = h.emulator.invoke("naib", view, guild_id=h.guild_id, user=h.user(user_id))
    message = await interaction.done(timeout=5)
    assert interaction.responded_at is not None and not message.ephemeral
    (embed,) = message.embeds
    return embed, interaction.responded_at


async def test_a_feed_write_moves_a_seat_and_naib_current_shows_it(harness: BotHarness) -> None:
    await harness.configure(fedaykin=5, naib=2, at_risk=0)
    ada, ben, cal = await harness.seed([500, 400, 300])
    embed, answered_in = await naib(harness, "current", cal)
    assert answered_in < 3
    assert (embed["title"], embed["color"]) == ("👑 Naib Council", GOLD)
    assert embed["description"] == (
        "The 2 members with the highest BGT holdings.\nSeats are defended by BGT amount, with tenure as tie-breaker."
    )
    assert [f["name"] for f in embed["fields"]] == ["Active Seats (2/2)"]
    assert embed["fields"][0]["value"] == (
        "1️⃣ **member0** 🏛️\n   └ Rank #1 • 0d tenure\n\n2️⃣ **member1** 🏛️\n   └ Rank #2 • 0d tenure"
    )
    assert embed["footer"]["text"] == "🏛️ = Founding Naib (first 2 members)"

    await feed(harness, {cal: "400"})  # equal to Ben's: tenure wins, Ben keeps the seat
    embed, _ = await naib(harness, "current", cal)
    assert "**member1**" in embed["fields"][0]["value"] and "member2" not in embed["fields"][0]["value"]

    await feed(harness, {cal: "400.000001"})
    embed, _ = await naib(harness, "current", ada)
    assert embed["fields"][0]["value"].startswith("1️⃣ **member0** 🏛️\n   └ Rank #1 • 0d tenure\n\n2️⃣ **member2**")

    former, _ = await naib(harness, "former", ben)
    assert (former["title"], former["color"]) == ("📜 Former Naib", SILVER)
    assert former["fields"] == [
        {
            "name": "Former Members (1)",
            "value": "1. **member1**\n   └ 0d total tenure • 1 term • left 0d ago",
            "inline": False,
        }
    ]
    overview, _ = await naib(harness, "overview", ben)
    assert overview["title"] == "👑 Naib Council Overview"
    assert [(f["name"], f["value"]) for f in overview["fields"]] == [
        # member2 took the seat within the hour of the first seat: founding too
        ("Current Council (2/2)", "1️⃣ **member0** 🏛️ (Rank #1)\n2️⃣ **member2** 🏛️ (Rank #2)"),
        ("📜 Former Naib (1)", "member1"),
    ]
    assert overview["footer"]["text"] == "Use /naib current or /naib former for detailed views"


async def test_the_registered_command_has_three_views(harness: BotHarness) -> None:
    registered = harness.emulator.commands["naib"]
    assert sorted(o["name"] for o in registered["options"]) == ["current", "former", "overview"]


async def test_routed_to_scylla_with_every_answer_shadowed(both: BotHarness) -> None:
    """The flag file's `naib` entry routes /naib; PostgreSQL answers each one again."""
    await both.configure(fedaykin=4, naib=3, at_risk=0, rate_limit_per_minute=1000)
    users = await both.seed([500, 400, 300, 200, 100] + [0] * 10)
    await feed(both, {users[3]: "450", users[4]: "350"})  # member2 leaves 1..F: member3 takes the seat
    await both.set_flags(flags_yaml("postgres", naib={"backend": "scylla", "shadow": 100}))
    metrics = both.container.metrics()
    calls = [(view, user) for view in ("overview", "current", "former") for user in users[:2] + users[-2:]]
    for view, user_id in calls:
        backend, message = await served_by(both, "naib", view, user=both.user(user_id))
        assert backend == "scylla" and message.embeds[0]["title"].startswith(("👑", "📜"))
    await eventually(lambda: metrics.shadow_results[("naib", "postgres", "match")] == len(calls))
    assert metrics.shadow_results[("naib", "postgres", "mismatch")] == 0
    assert metrics.shadow_results[("naib", "postgres", "stale")] == 0
    _, message = await served_by(both, "naib", "current", user=both.user(users[0]))
    value = message.embeds[0]["fields"][0]["value"]
    assert [line.split("**")[1] for line in value.split("\n\n")] == ["member0", "member3", "member1"]
