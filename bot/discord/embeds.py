"""Builds the replies members see from the service's records (docs/domain.md, "Commands and what they show")."""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime

import nextcord
from nextcord.utils import escape_markdown

from bot.domain.badges import TENURE_EMOJI
from bot.domain.formatting import TIER_EMOJI, bgt, rank_label, score_short, whole
from bot.domain.progression import TIER_EMOJI as PROGRESSION_EMOJI
from bot.domain.progression import TIER_NAMES
from bot.domain.records import (
    BadgeBoard,
    LeaderboardEntry,
    LeaderboardPage,
    PositionData,
    ThresholdData,
    TierBoard,
    TierEntry,
    WaitlistEntry,
)

GOLD = 0xD4AF37
SILVER = 0xC0C0C0
BLUE = 0x4169E1
GREEN = 0x2E8B57
ORANGE = 0xFF8C00
RED = 0xDC143C
BROWN = 0x8B4513

SPACER = "\u200b"
MAX_NAME = 32
FIELD_LIMIT = 1024  # Discord's limits on an embed field's value and on the description
DESCRIPTION_LIMIT = 4096


def _now() -> datetime:
    return datetime.now(UTC)


# Invisible or direction-changing characters (zero-width, bidi overrides and isolates, BOM): a name
# could hide in them or reorder the line around it.
_INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]")


def _name(name: str) -> str:
    """Member-chosen names are shown as plain text: control and invisible characters dropped, markdown,
    mentions (`<@id>`, `<#id>`, `<t:...>`) and links escaped, kept on one line and shortened, so they can
    neither style, ping, link, reorder nor overflow an embed."""
    one_line = " ".join(_INVISIBLE.sub("", name).split())
    name = "".join(c for c in one_line if unicodedata.category(c) != "Cc") or "Unknown"
    short = name if len(name) <= MAX_NAME else name[: MAX_NAME - 1] + "…"
    return escape_markdown(short).replace("<", "\\<").replace("://", ":\\/\\/").replace("@", "@\u200b")


def _fit(parts: list[str], separator: str, limit: int) -> str:
    """As many whole parts as fit in `limit` characters, and "…" for the rest: numbers are at most 100
    characters (docs/domain.md, "Long numbers"), but a waiting pool of long names and numbers or a long
    page of a board may still not fit Discord's limits whole."""
    text = separator.join(parts)
    if len(text) <= limit:
        return text
    kept: list[str] = []
    for part in parts:
        if len(separator.join([*kept, part, "…"])) > limit:
            break
        kept.append(part)
    return separator.join([*kept, "…"]) if kept else "…"


def error_embed(message: str) -> nextcord.Embed:
    return nextcord.Embed(title="Error", description=message, colour=RED, timestamp=_now())


def position_embed(data: PositionData) -> nextcord.Embed:
    if data.is_naib:
        colour, status = GOLD, "👑 **Naib** - Top 7 seat holder"
    elif data.is_at_risk:
        colour, status = ORANGE, "⚠️ **At Risk** - Bottom 10% of eligible"
    elif data.is_fedaykin:
        colour, status = BLUE, "⚔️ **Fedaykin** - Eligible member"
    else:
        colour, status = BROWN, "⏳ **Waiting Pool** - Not yet eligible"
    embed = nextcord.Embed(title="📍 Your Position", description=status, colour=colour, timestamp=_now())
    embed.add_field(name="📊 Position", value=f"**#{data.position}**", inline=True)
    embed.add_field(name="💰 BGT Holdings", value=f"**{bgt(data.conviction)}** BGT", inline=True)
    embed.add_field(name=SPACER, value=SPACER, inline=True)
    if data.distance_to_above is not None:
        embed.add_field(name="⬆️ To Move Up", value=f"+**{bgt(data.distance_to_above)}** BGT", inline=True)
    if data.distance_to_below is not None:
        embed.add_field(name="⬇️ Buffer", value=f"**{bgt(data.distance_to_below)}** BGT", inline=True)
    if data.distance_to_entry is not None and not data.is_fedaykin:
        embed.add_field(name="🚪 To Entry", value=f"+**{bgt(data.distance_to_entry)}** BGT", inline=True)
    embed.set_footer(text="Use /alerts to manage position notifications")
    return embed


def threshold_embed(data: ThresholdData, waitlist: list[WaitlistEntry]) -> nextcord.Embed:
    embed = nextcord.Embed(
        title="⛩️ The Threshold",
        description="The entry requirements for joining the Sietch. "
        "Those who hold sufficient BGT may pass through and join the Fedaykin.",
        colour=BROWN,
        timestamp=data.as_of,
    )
    embed.add_field(
        name="🚪 Entry Requirement",
        value=f"**{bgt(data.entry_threshold)} BGT**\nPosition #{data.fedaykin} threshold",
        inline=True,
    )
    embed.add_field(
        name="📊 Statistics",
        value=f"Eligible: **{data.eligible_count}** members\nWaiting: **{data.waitlist_count}** positions",
        inline=True,
    )
    if data.gap_to_entry is not None and data.gap_to_entry > 0:
        embed.add_field(
            name="📏 Gap to Entry",
            value=f"**{bgt(data.gap_to_entry)} BGT**\nDistance from #{data.fedaykin + 1} to entry",
            inline=True,
        )
    if waitlist:
        blocks = [
            f"**#{w.position}** {_name(w.name)}\n└ {bgt(w.conviction)} BGT • +{bgt(w.distance_to_entry)} to entry"
            for w in waitlist
        ]
        embed.add_field(name="⏳ Waiting Pool (Top 5)", value=_fit(blocks, "\n\n", FIELD_LIMIT), inline=False)
    else:
        embed.add_field(
            name="⏳ Waiting Pool",
            value=f"No wallets currently in positions {data.fedaykin + 1}-{data.waitlist_end}",
            inline=False,
        )
    embed.set_footer(text="Use /position to see where you stand")
    return embed


def leaderboard_embed(page: LeaderboardPage, caller: LeaderboardEntry | None) -> nextcord.Embed:
    label = page.board
    embed = nextcord.Embed(title=f"📊 {label.title()} Leaderboard", colour=GOLD, timestamp=_now())
    if page.entries:
        lines = [
            f"{rank_label(e.rank)} {TIER_EMOJI[e.tier]} **{_name(e.nym)}** — {score_short(e.score)} {label}"
            for e in page.entries
        ]
        embed.description = _fit(lines, "\n", DESCRIPTION_LIMIT)
    elif page.total == 0:
        embed.description = "No leaderboard data available yet."
    else:
        embed.description = f"No entries on page {page.page}. The leaderboard ends at page {page.pages}."
    if caller is not None:
        on_page = any(e.rank == caller.rank for e in page.entries)
        value = (
            f"You are ranked **#{caller.rank}** in the leaderboard above"
            if on_page
            else f"**#{caller.rank}** {TIER_EMOJI[caller.tier]} — {score_short(caller.score)} {label}"
        )
        embed.add_field(name="📍 Your Position", value=value, inline=False)
    embed.set_footer(text=f"Rankings based on {label} score • Page {page.page}/{page.pages}")
    return embed


def _progress(entry: TierEntry) -> str:
    """`Fremen → Stillsuit (5 BGT away)`: the distance rounded for privacy, no conviction shown."""
    return f"{TIER_NAMES[entry.tier]} → {TIER_NAMES[entry.next_tier]} ({whole(entry.distance)} BGT away)"


def tier_board_embed(board: TierBoard) -> nextcord.Embed:
    """/leaderboard tiers (docs/domain.md, "/leaderboard tiers")."""
    embed = nextcord.Embed(title="🏆 Tier Progression Leaderboard", colour=GOLD, timestamp=_now())
    if not board.entries:
        embed.description = (
            "No tier progression data available.\nTier leaderboard excludes Fedaykin and Naib (rank-based tiers)."
        )
        return embed
    embed.description = "Members closest to their next tier promotion"
    blocks = [f"{rank_label(e.rank)} **{_name(e.name)}**\n   {_progress(e)}" for e in board.entries]
    embed.add_field(name="Top Progressors", value=_fit(blocks, "\n\n", FIELD_LIMIT), inline=False)
    caller = board.caller
    if caller is not None and all(e.rank != caller.rank for e in board.entries):
        embed.add_field(name="Your Position", value=f"**Rank {caller.rank}**\n{_progress(caller)}", inline=False)
    embed.set_footer(text="Excludes Fedaykin and Naib (rank-based tiers) • BGT values rounded for privacy")
    return embed


def badge_board_embed(board: BadgeBoard) -> nextcord.Embed:
    """/leaderboard badges (docs/domain.md, "/leaderboard badges")."""
    embed = nextcord.Embed(title="🏆 Engagement Leaderboard", colour=GOLD, timestamp=_now())
    if not board.entries:
        embed.description = "No leaderboard data available yet."
        return embed
    lines = [
        f"{rank_label(e.rank)} {PROGRESSION_EMOJI[e.tier]} **{_name(e.name)}** {TENURE_EMOJI[e.tenure]}"
        f" — {e.held} {'badge' if e.held == 1 else 'badges'}"
        for e in board.entries
    ]
    embed.description = _fit(lines, "\n", DESCRIPTION_LIMIT)
    if board.caller_rank is not None:
        embed.add_field(
            name="Your Position",
            value=f"You are ranked **#{board.caller_rank}** of {board.members} members",
            inline=False,
        )
    embed.set_footer(text=f"Rankings based on badge count • {board.members} total members")
    return embed
