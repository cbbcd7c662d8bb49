"""Every command option and odd caller, on both backends: a clear answer each time, no unhandled error."""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

import pytest

from backends.members import MemberRow
from bot.app.app import App
from bot.domain import messages
from tests.cogs.conftest import BotHarness


@pytest.mark.parametrize("page", [0, -1, -(2**31), 100_001, 2**63, "2", "abc", 1.5, None, True])
async def test_page_values_the_discord_client_refuses_never_reach_the_bot(harness: BotHarness, page: Any) -> None:
    """The registered option (integer, 1..100000) is what Discord validates against before delivering."""
    await harness.configure()
    with pytest.raises(ValueError):
        harness.emulator.invoke("leaderboard", "conviction", guild_id=harness.guild_id, user=harness.user(1), page=page)


@pytest.mark.parametrize("page", [1, 2, 3, 99, 100_000])
async def test_every_page_the_client_can_send_gets_a_board(harness: BotHarness, page: int, caplog: Any) -> None:
    await harness.configure()
    users = await harness.seed([100 - i for i in range(25)])
    caplog.set_level(logging.ERROR)
    message = await harness.call("leaderboard", "activity", user=harness.user(users[0]), page=page)
    (embed,) = message.embeds
    assert embed["title"] == "📊 Activity Leaderboard" and not message.ephemeral
    assert embed["footer"]["text"].endswith(f"Page {page}/1")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize(
    ("command", "path"),
    [("position", ()), ("threshold", ()), ("leaderboard", ("conviction",)), ("leaderboard", ("activity",))],
)
async def test_an_unknown_guild_is_told_it_is_not_configured(
    harness: BotHarness, command: str, path: tuple[str, ...], caplog: Any
) -> None:
    caplog.set_level(logging.ERROR)
    message = await harness.call(command, *path, user=harness.user(7), guild_id=harness.guild_id + 1)
    assert message.ephemeral and message.embeds[0]["description"] == messages.NOT_CONFIGURED
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_member_without_a_profile_gets_clear_answers(harness: BotHarness, caplog: Any) -> None:
    await harness.configure()
    await harness.seed([5, 4, 3])
    stranger = harness.user(999_999_999)
    caplog.set_level(logging.ERROR)
    position = await harness.call("position", user=stranger)
    assert position.ephemeral and position.embeds[0]["description"] == messages.NOT_A_MEMBER
    board = await harness.call("leaderboard", "conviction", user=stranger)
    assert "fields" not in board.embeds[0] or board.embeds[0]["fields"] == []  # no "Your Position"
    threshold = await harness.call("threshold", user=stranger)
    assert threshold.embeds[0]["title"] == "⛩️ The Threshold"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_names_that_look_like_markdown_or_sql_are_shown_literally(harness: BotHarness) -> None:
    await harness.configure()
    nasty = ["Robert'); DROP TABLE scores;--", "**bold** _it_ `code`", "x" * 80, "' OR 1=1 --", "🐛\u200b\n"]
    admin = await harness.admin()
    await admin.import_members(
        harness.guild_id,
        [MemberRow(discord_user_id=50 + i, nym=n, conviction=Decimal(10 - i)) for i, n in enumerate(nasty)],
    )
    await harness._copy(harness.guild_id)
    message = await harness.call("leaderboard", "conviction", user=harness.user(50))
    lines = message.embeds[0]["description"].split("\n")
    assert "Robert'); DROP TABLE scores;--" in lines[0]
    assert r"\*\*bold\*\* \_it\_ \`code\`" in lines[1]  # escaped: shown, not styled
    assert "x" * 31 + "…" in lines[2] and "x" * 33 not in lines[2]
    again = await harness.call("threshold", user=harness.user(50))  # the tables are all still there
    assert again.embeds[0]["title"] == "⛩️ The Threshold"


async def test_a_removed_member_is_a_stranger_on_every_backend(harness: BotHarness, caplog: Any) -> None:
    from bot.cli.community_commands import remove_member

    await harness.configure()
    users = await harness.seed([30, 20, 10])
    assert await remove_member(App(harness.container), harness.guild_id, users[1])
    caplog.set_level(logging.ERROR)
    position = await harness.call("position", user=harness.user(users[1]))
    assert position.ephemeral and position.embeds[0]["description"] == messages.NOT_A_MEMBER
    board = await harness.call("leaderboard", "conviction", user=harness.user(users[0]))
    assert "member1" not in board.embeds[0]["description"]
    assert (await harness.call("position", user=harness.user(users[2]))).embeds[0]["fields"][0]["value"] == "**#2**"
    assert not await remove_member(App(harness.container), harness.guild_id, users[1])
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
