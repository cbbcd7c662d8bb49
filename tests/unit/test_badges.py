"""Badges as pure rules and the /leaderboard badges embed (docs/domain.md, "Badges"): tenure categories at
their boundaries, the worked examples' texts byte for byte, the caller's field and the empty board."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

import pytest

from bot.discord.embeds import badge_board_embed
from bot.domain.badges import TenureCategory, tenure_category
from bot.domain.progression import ProgressionTier
from bot.domain.records import BadgeBoard, BadgeBoardEntry
from tests.emulator.rules import embed_problems

LAUNCH = datetime(2026, 1, 1, tzinfo=UTC)
JULY = datetime(2026, 7, 1, tzinfo=UTC)
SEPTEMBER = datetime(2026, 9, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("joined", "now", "category"),
    [
        (datetime(2026, 1, 30, 23, 59, 59, tzinfo=UTC), JULY, "og"),
        (datetime(2026, 1, 31, tzinfo=UTC), JULY, "veteran"),  # 30 days after the launch: not og; 151 days
        (datetime(2026, 4, 2, tzinfo=UTC), JULY, "veteran"),  # 90 days
        (datetime(2026, 4, 2, 0, 0, 1, tzinfo=UTC), JULY, "member"),  # 89 days
        (datetime(2026, 3, 5, tzinfo=UTC), SEPTEMBER, "elder"),  # 180 days
        (datetime(2026, 3, 6, tzinfo=UTC), SEPTEMBER, "veteran"),  # 179 days
    ],
)
def test_tenure_categories_of_worked_example_one(joined: datetime, now: datetime, category: str) -> None:
    assert tenure_category(joined, LAUNCH, now) == category


def test_with_no_launch_known_nobody_is_og() -> None:
    assert tenure_category(JULY, None, JULY) == "member"


def entry(rank: int, name: str, held: int, tier: ProgressionTier, tenure: TenureCategory) -> BadgeBoardEntry:
    return BadgeBoardEntry(rank, uuid4(), name, held, tier, tenure)


def test_worked_example_two_reads_as_written() -> None:
    board = BadgeBoard(
        [
            entry(1, "Ada", 3, "naib", "og"),
            entry(1, "Ben", 3, "sietch", "veteran"),
            entry(3, "Cal", 1, "fremen", "member"),
        ],
        None,
        4,
    )
    embed = badge_board_embed(board).to_dict()
    assert (embed["title"], embed["color"]) == ("🏆 Engagement Leaderboard", 0xD4AF37)
    assert embed["description"] == (
        "🥇 👑 **Ada** 🏛️ — 3 badges\n🥇 🏔️ **Ben** ⭐ — 3 badges\n🥉 🌱 **Cal** 🌱 — 1 badge"
    )
    assert "fields" not in embed or embed["fields"] == []
    assert embed["footer"]["text"] == "Rankings based on badge count • 4 total members"
    assert embed_problems([embed], "") == []


def test_a_caller_past_the_first_ten_reads_their_rank() -> None:
    entries = [entry(i + 1 if i < 3 else 4, f"m{i}", 3, "fremen", "member") for i in range(10)]
    embed = badge_board_embed(BadgeBoard(entries, 12, 21)).to_dict()
    assert embed["fields"] == [
        {"name": "Your Position", "value": "You are ranked **#12** of 21 members", "inline": False}
    ]
    assert "`# 4` 🌱 **m3** 🌱 — 3 badges" in embed["description"]


def test_an_empty_board_has_no_field_and_no_footer() -> None:
    embed = badge_board_embed(BadgeBoard([], None, 7)).to_dict()
    assert embed["description"] == "No leaderboard data available yet."
    assert "fields" not in embed or embed["fields"] == []
    assert "footer" not in embed
