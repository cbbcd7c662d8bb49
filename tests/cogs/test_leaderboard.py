"""/leaderboard through the real client: lines, the caller's field, paging with buttons."""

from __future__ import annotations

from typing import Any

from bot.domain import messages
from tests.cogs.conftest import BotHarness
from tests.emulator import Message

GOLD = 0xD4AF37


def buttons(message: Message) -> list[dict[str, Any]]:
    return [c for row in message.components for c in row["components"]]


async def test_first_page_lines_caller_and_buttons(harness: BotHarness) -> None:
    await harness.configure()
    users = await harness.seed([2_500_000 - 1000 * i for i in range(25)])
    caller = harness.user(users[14])
    message = await harness.call("leaderboard", "conviction", user=caller)
    assert not message.ephemeral
    (embed,) = message.embeds
    assert (embed["title"], embed["color"]) == ("📊 Conviction Leaderboard", GOLD)
    lines = embed["description"].split("\n")
    assert lines[0] == "🥇 💎 **member0** — 2.50M conviction"
    assert lines[2] == "🥉 💎 **member2** — 2.50M conviction"
    assert lines[3] == "`# 4` 💎 **member3** — 2.50M conviction"
    assert len(lines) == 10
    assert embed["fields"] == [{"name": "📍 Your Position", "value": "**#15** 🏆 — 2.49M conviction", "inline": False}]
    assert embed["footer"]["text"] == "Rankings based on conviction score • Page 1/3"
    prev, nxt = buttons(message)
    assert prev["disabled"] and not nxt["disabled"]
    assert nxt["custom_id"] == f"lb:conviction:2:{users[14]}"


async def test_paging_with_the_buttons(harness: BotHarness) -> None:
    await harness.configure()
    users = await harness.seed([500 - i for i in range(25)])
    caller = harness.user(users[14])
    message = await harness.call("leaderboard", "conviction", user=caller)
    click = harness.emulator.click(message, f"lb:conviction:2:{users[14]}", guild_id=harness.guild_id, user=caller)
    page2 = await click.done()
    assert click.callback_types == [7]
    (embed,) = page2.embeds
    assert embed["description"].split("\n")[0] == "`#11` 🏆 **member10** — 490.00 conviction"
    assert embed["fields"][0]["value"] == "You are ranked **#15** in the leaderboard above"
    assert embed["footer"]["text"].endswith("Page 2/3")
    click = harness.emulator.click(page2, f"lb:conviction:3:{users[14]}", guild_id=harness.guild_id, user=caller)
    page3 = await click.done()
    assert len(page3.embeds[0]["description"].split("\n")) == 5
    prev, nxt = buttons(page3)
    assert not prev["disabled"] and nxt["disabled"]


async def test_someone_elses_buttons_answer_privately(harness: BotHarness) -> None:
    await harness.configure()
    users = await harness.seed([500 - i for i in range(25)])
    message = await harness.call("leaderboard", "conviction", user=harness.user(users[0]))
    before = message.embeds[0]["description"]
    stranger = harness.user(users[1])
    click = harness.emulator.click(message, f"lb:conviction:2:{users[0]}", guild_id=harness.guild_id, user=stranger)
    notice = await click.done()
    assert notice.ephemeral and notice.embeds[0]["description"] == messages.NOT_YOUR_BUTTONS
    assert message.embeds[0]["description"] == before


async def test_activity_board_and_a_caller_without_a_rank(harness: BotHarness) -> None:
    await harness.configure()
    users = await harness.seed([10, 20, 30], activities=[5, 0, 1200])
    message = await harness.call("leaderboard", "activity", user=harness.user(users[1]))
    (embed,) = message.embeds
    assert embed["title"] == "📊 Activity Leaderboard"
    assert embed["description"] == "🥇 💎 **member2** — 1.20K activity\n🥈 💎 **member0** — 5.00 activity"
    assert "fields" not in embed or embed["fields"] == []
    assert embed["footer"]["text"] == "Rankings based on activity score • Page 1/1"


async def test_a_page_past_the_end_is_empty_not_an_error(harness: BotHarness) -> None:
    await harness.configure()
    users = await harness.seed([3, 2, 1])
    message = await harness.call("leaderboard", "conviction", user=harness.user(users[0]), page=9)
    (embed,) = message.embeds
    assert embed["title"] == "📊 Conviction Leaderboard"
    assert embed["description"] == "No entries on page 9. The leaderboard ends at page 1."
    assert embed["footer"]["text"].endswith("Page 9/1")
    prev, nxt = buttons(message)
    assert not prev["disabled"] and nxt["disabled"]


async def test_an_empty_board(harness: BotHarness) -> None:
    await harness.configure()
    message = await harness.call("leaderboard", "conviction", user=harness.user(1))
    assert message.embeds[0]["description"] == "No leaderboard data available yet."


async def test_the_registered_command_has_the_boards_and_a_page_option(harness: BotHarness) -> None:
    registered = harness.emulator.commands["leaderboard"]
    boards = {o["name"]: o for o in registered["options"]}
    assert set(boards) == {"conviction", "activity", "tiers", "badges"}
    assert boards["tiers"].get("options", []) == []  # the tier and badge boards have no pages
    assert boards["badges"].get("options", []) == []
    (page,) = boards["conviction"]["options"]
    assert (page["name"], page["type"], page.get("min_value"), page.get("required", False)) == (
        "page",
        4,
        1,
        False,
    )


async def test_wei_sized_and_enormous_scores_are_shown_exactly_within_discords_limits(harness: BotHarness) -> None:
    await harness.configure()
    wei = "110000000000000000000000000.000000000000000001"
    users = await harness.seed(["1e400"] * 10 + [wei, "1004999.99999999999999999999999999"])
    message = await harness.call("leaderboard", "conviction", user=harness.user(users[10]))
    (embed,) = message.embeds
    lines = embed["description"].split("\n")
    # A score whose text would pass 100 characters is shown in scientific notation: the page fits whole.
    assert len(embed["description"]) <= 4096 and len(lines) == 10
    assert lines[0] == "🥇 💎 **member0** — 1.00000e+400 conviction"
    assert embed["fields"][0]["value"] == "**#11** 🏆 — 110000000000000000000.00M conviction"
    page2 = await harness.call("leaderboard", "conviction", user=harness.user(users[11]), page=2)
    assert page2.embeds[0]["description"].split("\n")[1] == "`#12` 🏆 **member11** — 1.00M conviction"

    position = await harness.call("position", user=harness.user(users[10]))
    fields = {f["name"]: f["value"] for f in position.embeds[0]["fields"]}
    assert fields["💰 BGT Holdings"] == "**110,000,000,000,000,000,000,000,000** BGT"
    assert fields["⬇️ Buffer"] == "**109,999,999,999,999,999,998,995,000** BGT"


async def test_previous_from_past_the_end_goes_to_the_last_page(harness: BotHarness) -> None:
    await harness.configure()
    users = await harness.seed([500 - i for i in range(25)])
    message = await harness.call("leaderboard", "conviction", user=harness.user(users[0]), page=40)
    prev, nxt = buttons(message)
    assert prev["custom_id"] == f"lb:conviction:3:{users[0]}" and not prev["disabled"] and nxt["disabled"]
    click = harness.emulator.click(message, prev["custom_id"], guild_id=harness.guild_id, user=harness.user(users[0]))
    clicked = await click.done(timeout=5)
    assert clicked.embeds[0]["footer"]["text"] == "Rankings based on conviction score • Page 3/3"


async def test_a_button_that_leads_nowhere_is_still_answered(harness: BotHarness) -> None:
    await harness.configure()
    users = await harness.seed([500 - i for i in range(25)])
    message = await harness.call("leaderboard", "conviction", user=harness.user(users[0]))
    custom_id = f"lb:conviction:{10**6}:{users[0]}"  # past MAX_PAGE, as a message from an older version might carry
    buttons(message)[1].update(custom_id=custom_id, disabled=False)
    click = harness.emulator.click(message, custom_id, guild_id=harness.guild_id, user=harness.user(users[0]))
    answer = await click.done(timeout=5)
    assert answer.ephemeral and answer.embeds[0]["description"] == messages.STALE_BUTTONS
