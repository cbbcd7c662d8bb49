"""The /leaderboard tiers embed from records (docs/domain.md, "/leaderboard tiers"): texts byte for byte,
the caller's field only when they are not shown, the empty board, and Discord's limits."""

from __future__ import annotations

from decimal import Decimal
from uuid import uuid4

from bot.discord.embeds import tier_board_embed
from bot.domain.progression import ProgressionTier
from bot.domain.records import TierBoard, TierEntry
from tests.emulator.rules import embed_problems

D = Decimal
GOLD = 0xD4AF37
FOOTER = "Excludes Fedaykin and Naib (rank-based tiers) • BGT values rounded for privacy"


def entry(rank: int, name: str, tier: ProgressionTier, next_tier: ProgressionTier, distance: str) -> TierEntry:
    return TierEntry(rank, uuid4(), name, D(100) - D(distance), tier, next_tier, D(distance))


def worked_example() -> list[TierEntry]:
    return [
        entry(1, "Gus", "fremen", "stillsuit", "5"),
        entry(2, "Dee", "sietch", "sayyadina", "10"),
        entry(3, "Eve", "stillsuit", "sietch", "10"),
        entry(4, "Fay", "stillsuit", "sietch", "20"),
    ]


def test_the_worked_example_reads_as_written() -> None:
    embed = tier_board_embed(TierBoard(worked_example(), None, 4)).to_dict()
    assert (embed["title"], embed["color"]) == ("🏆 Tier Progression Leaderboard", GOLD)
    assert embed["description"] == "Members closest to their next tier promotion"
    assert embed["fields"] == [
        {
            "name": "Top Progressors",
            "value": "🥇 **Gus**\n   Fremen → Stillsuit (5 BGT away)\n\n"
            "🥈 **Dee**\n   Sietch → Sayyadina (10 BGT away)\n\n"
            "🥉 **Eve**\n   Stillsuit → Sietch (10 BGT away)\n\n"
            "`# 4` **Fay**\n   Stillsuit → Sietch (20 BGT away)",
            "inline": False,
        }
    ]
    assert embed["footer"]["text"] == FOOTER
    assert "timestamp" in embed


def test_distances_are_shown_rounded() -> None:
    shown = [entry(1, "a", "stillsuit", "sietch", "0.4"), entry(2, "b", "fremen", "stillsuit", "0.5")]
    value = tier_board_embed(TierBoard(shown, None, 2)).to_dict()["fields"][0]["value"]
    assert "(0 BGT away)" in value and "(1 BGT away)" in value


def test_a_caller_below_the_entries_shown_gets_their_rank() -> None:
    shown = [entry(i, f"m{i}", "fremen", "stillsuit", str(i)) for i in range(1, 11)]
    caller = entry(12, "me", "fremen", "stillsuit", "60")
    fields = tier_board_embed(TierBoard(shown, caller, 12)).to_dict()["fields"]
    assert fields[1] == {
        "name": "Your Position",
        "value": "**Rank 12**\nFremen → Stillsuit (60 BGT away)",
        "inline": False,
    }


def test_a_caller_among_the_entries_shown_gets_no_field() -> None:
    shown = worked_example()
    fields = tier_board_embed(TierBoard(shown, shown[2], 4)).to_dict()["fields"]
    assert [f["name"] for f in fields] == ["Top Progressors"]


def test_the_empty_board() -> None:
    embed = tier_board_embed(TierBoard([], None, 0)).to_dict()
    assert embed["description"] == (
        "No tier progression data available.\nTier leaderboard excludes Fedaykin and Naib (rank-based tiers)."
    )
    assert "fields" not in embed or embed["fields"] == []
    assert "footer" not in embed


def test_ten_of_the_longest_names_fit_discords_limits() -> None:
    name = "*_~`|>@<://" * 3  # escaped character by character: the longest a shown name gets
    shown = [entry(i, name, "stillsuit", "sietch", "399.5") for i in range(1, 11)]
    embed = tier_board_embed(TierBoard(shown, entry(99, name, "fremen", "stillsuit", "99.9"), 99))
    assert embed_problems([embed.to_dict()], "") == []
