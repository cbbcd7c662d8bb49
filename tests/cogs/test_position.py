"""/position through the real client, checked field by field against docs/domain.md."""

from __future__ import annotations

from typing import Any

from bot.domain import messages
from tests.cogs.conftest import BotHarness

GOLD, BLUE, ORANGE, BROWN, RED = 0xD4AF37, 0x4169E1, 0xFF8C00, 0x8B4513, 0xDC143C
SPACER = {"name": "\u200b", "value": "\u200b", "inline": True}


def hundred() -> list[int]:
    return [1000 - 10 * i for i in range(100)]


def fields(embed: dict[str, Any]) -> list[dict[str, Any]]:
    return embed.get("fields", [])


async def position_of(h: BotHarness, user_id: int) -> dict[str, Any]:
    message = await h.call("position", user=h.user(user_id))
    assert message.ephemeral
    assert len(message.embeds) == 1
    embed = message.embeds[0]
    assert embed["timestamp"]
    return embed


async def test_a_naib_sees_gold_and_both_neighbours(harness: BotHarness) -> None:
    await harness.configure()
    users = await harness.seed(hundred())
    embed = await position_of(harness, users[2])
    assert embed["title"] == "📍 Your Position"
    assert embed["color"] == GOLD
    assert embed["description"] == "👑 **Naib** - Top 7 seat holder"
    assert fields(embed) == [
        {"name": "📊 Position", "value": "**#3**", "inline": True},
        {"name": "💰 BGT Holdings", "value": "**980** BGT", "inline": True},
        SPACER,
        {"name": "⬆️ To Move Up", "value": "+**10** BGT", "inline": True},
        {"name": "⬇️ Buffer", "value": "**10** BGT", "inline": True},
    ]
    assert embed["footer"]["text"] == "Use /alerts to manage position notifications"  # /alerts exists


async def test_an_at_risk_member_sees_orange(harness: BotHarness) -> None:
    await harness.configure()
    users = await harness.seed(hundred())
    embed = await position_of(harness, users[64])
    assert (embed["color"], embed["description"]) == (ORANGE, "⚠️ **At Risk** - Bottom 10% of eligible")
    assert fields(embed)[0]["value"] == "**#65**"
    assert "🚪 To Entry" not in [f["name"] for f in fields(embed)]


async def test_a_fedaykin_sees_blue(harness: BotHarness) -> None:
    await harness.configure()
    users = await harness.seed(hundred())
    embed = await position_of(harness, users[19])
    assert (embed["color"], embed["description"]) == (BLUE, "⚔️ **Fedaykin** - Eligible member")
    assert fields(embed)[1]["value"] == "**810** BGT"


async def test_a_waiting_member_sees_the_distance_to_entry(harness: BotHarness) -> None:
    await harness.configure()
    users = await harness.seed(hundred())
    embed = await position_of(harness, users[74])
    assert (embed["color"], embed["description"]) == (BROWN, "⏳ **Waiting Pool** - Not yet eligible")
    assert fields(embed)[-1] == {"name": "🚪 To Entry", "value": "+**60** BGT", "inline": True}


async def test_the_last_member_has_no_buffer(harness: BotHarness) -> None:
    await harness.configure()
    users = await harness.seed(["0.5", "0.25"])
    embed = await position_of(harness, users[1])
    names = [f["name"] for f in fields(embed)]
    assert "⬇️ Buffer" not in names
    assert fields(embed)[1]["value"] == "**0.250000** BGT"
    assert fields(embed)[3]["value"] == "+**0.250000** BGT"


async def assert_error(embed: dict[str, Any], text: str) -> None:
    assert (embed["title"], embed["color"], embed["description"]) == ("Error", RED, text)
    assert embed["timestamp"]


async def test_a_non_member_is_told_administrators_add_members(harness: BotHarness) -> None:
    await harness.configure()
    await harness.seed(hundred())
    await assert_error(await position_of(harness, 999_999), messages.NOT_A_MEMBER)


async def test_an_unranked_member_is_told_the_score_is_too_low(harness: BotHarness) -> None:
    await harness.configure()
    users = await harness.seed([10, 0])
    await assert_error(await position_of(harness, users[1]), messages.NOT_RANKED)


async def test_an_unconfigured_guild_is_told_to_ask_an_admin(harness: BotHarness) -> None:
    await assert_error(await position_of(harness, 5000), messages.NOT_CONFIGURED)
