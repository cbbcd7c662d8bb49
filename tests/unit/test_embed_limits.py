"""Every embed stays inside Discord's limits for every value Sietch accepts (docs/domain.md, "Long
numbers"): built from records with the longest numbers and names, checked by the emulator's rules."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from uuid import uuid4

import pytest

from bot.discord.embeds import leaderboard_embed, position_embed, threshold_embed
from bot.domain.formatting import bgt, score_short
from bot.domain.records import LeaderboardEntry, LeaderboardPage, PositionData, ThresholdData, WaitlistEntry
from tests.emulator.rules import embed_problems

D = Decimal
NAME = "*_~`|>@<://" * 3  # 33 characters, each escaped: the longest a shown name gets
# The longest texts of each format (100 characters), and the edges of the range in scientific notation.
LONGEST = [D("1" * 74 + ".5"), D("-" + "1" * 92), D("1" * 102), D("9e1000"), D("-9.999999e1000"), D("1e-1000")]


def test_the_longest_numbers_are_100_characters() -> None:
    assert len(bgt(LONGEST[0])) == 100 and len(bgt(LONGEST[1])) == 100 and len(score_short(LONGEST[2])) == 100


@pytest.mark.parametrize("value", LONGEST)
def test_position_threshold_and_leaderboard_fit(value: Decimal) -> None:
    position = PositionData(75, value, value, value, value, False, False, False)
    threshold = ThresholdData(100, 69, 31, value, value, datetime.now(UTC), 69, 100)
    waitlist = [WaitlistEntry(70 + i, uuid4(), NAME, value, value) for i in range(5)]
    entries = [LeaderboardEntry(i + 1, uuid4(), NAME, value, "bronze") for i in range(100)]
    page = LeaderboardPage("conviction", entries, 1, 100, 1000, True)
    caller = LeaderboardEntry(999, uuid4(), NAME, value, "bronze")
    embeds = [position_embed(position), threshold_embed(threshold, waitlist), leaderboard_embed(page, caller)]
    for embed in embeds:
        assert embed_problems([embed.to_dict()], "") == [], embed.to_dict()
