"""/threshold through the real client: public, every field as docs/domain.md writes it."""

from __future__ import annotations

from tests.cogs.conftest import BotHarness

BROWN = 0x8B4513


async def test_threshold_with_a_waiting_pool(harness: BotHarness) -> None:
    await harness.configure()
    users = await harness.seed([1000 - 10 * i for i in range(100)])
    message = await harness.call("threshold", user=harness.user(users[0]))
    assert not message.ephemeral
    (embed,) = message.embeds
    assert embed["title"] == "⛩️ The Threshold"
    assert embed["color"] == BROWN
    assert embed["description"] == (
        "The entry requirements for joining the Sietch. "
        "Those who hold sufficient BGT may pass through and join the Fedaykin."
    )
    assert embed["timestamp"]
    waiting = "\n\n".join(
        f"**#{70 + i}** member{69 + i}\n└ {310 - 10 * i} BGT • +{10 + 10 * i} to entry" for i in range(5)
    )
    assert embed["fields"] == [
        {"name": "🚪 Entry Requirement", "value": "**320 BGT**\nPosition #69 threshold", "inline": True},
        {
            "name": "📊 Statistics",
            "value": "Eligible: **69** members\nWaiting: **31** positions",
            "inline": True,
        },
        {"name": "📏 Gap to Entry", "value": "**10 BGT**\nDistance from #70 to entry", "inline": True},
        {"name": "⏳ Waiting Pool (Top 5)", "value": waiting, "inline": False},
    ]
    assert embed["footer"]["text"] == "Use /position to see where you stand"


async def test_threshold_of_an_empty_community(harness: BotHarness) -> None:
    await harness.configure()
    message = await harness.call("threshold", user=harness.user(1))
    (embed,) = message.embeds
    assert embed["fields"] == [
        {"name": "🚪 Entry Requirement", "value": "**0.000000 BGT**\nPosition #69 threshold", "inline": True},
        {
            "name": "📊 Statistics",
            "value": "Eligible: **0** members\nWaiting: **0** positions",
            "inline": True,
        },
        {"name": "⏳ Waiting Pool", "value": "No wallets currently in positions 70-100", "inline": False},
    ]


async def test_threshold_follows_the_community_settings(harness: BotHarness) -> None:
    await harness.configure(fedaykin=5, naib=2, at_risk=4, waitlist_end=8)
    await harness.seed([100, 90, 80, 70, 60, 60, 50, 40, 30, 20])
    (embed,) = (await harness.call("threshold", user=harness.user(1))).embeds
    values = [f["value"] for f in embed["fields"]]
    assert values[0] == "**60 BGT**\nPosition #5 threshold"
    assert values[1] == "Eligible: **5** members\nWaiting: **3** positions"
    assert embed["fields"][2]["name"] == "⏳ Waiting Pool (Top 5)"  # gap 0 is not shown
    assert values[2].split("\n\n")[0] == "**#6** member5\n└ 60 BGT • +0.000000 to entry"
    assert len(values[2].split("\n\n")) == 3
