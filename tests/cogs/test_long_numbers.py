"""Scores at the edges of what Sietch accepts (10^±1000) through the real bot: every answer is delivered,
inside Discord's embed limits, with long numbers in scientific notation (docs/domain.md, "Long numbers")."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from backends.exact import add
from tests.cogs.conftest import BotHarness

TINY = Decimal("1e-999")


def scores() -> list[str]:
    """100 members (fedaykin 69, waiting pool to 100): 69 near 10^999, each with a tiny tail so that every
    distance between them is exact to the last of ~2000 digits, then 31 tiny ones near 10^-999."""
    huge = [add(Decimal(f"{100 - i}e997"), TINY * (i + 1)) for i in range(69)]
    tiny = [Decimal(f"{100 - i}e-999") for i in range(69, 100)]
    return [str(v) for v in huge + tiny]


def within_limits(embed: dict[str, Any]) -> None:
    fields = embed.get("fields", [])
    assert len(embed.get("description") or "") <= 4096
    assert all(len(f["value"]) <= 1024 and len(f["name"]) <= 256 for f in fields)
    total = sum(len(embed.get(k) or "") for k in ("title", "description"))
    total += sum(len(f["name"]) + len(f["value"]) for f in fields) + len(embed.get("footer", {}).get("text", ""))
    assert total <= 6000


async def test_position_threshold_and_leaderboard_answer_for_scores_near_the_limits(harness: BotHarness) -> None:
    await harness.configure()
    users = await harness.seed(scores())

    embeds = {}
    for rank in (1, 5, 75):
        message = await harness.call("position", user=harness.user(users[rank - 1]))
        (embeds[rank],) = message.embeds
        within_limits(embeds[rank])
    values = {rank: {f["name"]: f["value"] for f in e["fields"]} for rank, e in embeds.items()}
    assert values[1]["📊 Position"] == "**#1**"
    assert values[1]["💰 BGT Holdings"] == "**1.00000e+999** BGT"
    assert values[1]["⬇️ Buffer"] == "**1.00000e+997** BGT"  # 100e997 - 99e997, the tails ignored at 6 digits
    assert values[5]["💰 BGT Holdings"] == "**9.60000e+998** BGT"
    assert values[5]["⬆️ To Move Up"] == "+**1.00000e+997** BGT"
    assert values[75]["📊 Position"] == "**#75**"
    assert values[75]["💰 BGT Holdings"] == "**0.000000** BGT"
    assert values[75]["⬆️ To Move Up"] == "+**0.000000** BGT"  # 10^-999: six decimals, short as always
    assert values[75]["🚪 To Entry"] == "+**3.20000e+998** BGT"  # 32e997 + 69e-999 - 26e-999

    (threshold,) = (await harness.call("threshold", user=harness.user(users[0]))).embeds
    within_limits(threshold)
    fields = {f["name"]: f["value"] for f in threshold["fields"]}
    assert fields["🚪 Entry Requirement"] == "**3.20000e+998 BGT**\nPosition #69 threshold"
    assert fields["📏 Gap to Entry"] == "**3.20000e+998 BGT**\nDistance from #70 to entry"
    assert fields["⏳ Waiting Pool (Top 5)"].startswith("**#70** member69\n└ 0.000000 BGT • +3.20000e+998 to entry")

    (board,) = (await harness.call("leaderboard", "conviction", user=harness.user(users[74]))).embeds
    within_limits(board)
    lines = board["description"].split("\n")
    assert lines[0] == "🥇 💎 **member0** — 1.00000e+999 conviction"
    assert len(lines) == 10
    assert board["fields"][0]["value"] == "**#75** 🥇 — 0.00 conviction"  # gold tier
    assert harness.emulator.violations == []
