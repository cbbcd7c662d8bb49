"""Pure rules of what members see: number formats, tiers, display names (docs/domain.md)."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from backends.exact import round_half_up, scale_down

Tier = Literal["diamond", "platinum", "gold", "silver", "bronze"]

TIER_EMOJI: dict[Tier, str] = {
    "diamond": "💎",
    "platinum": "🏆",
    "gold": "🥇",
    "silver": "🥈",
    "bronze": "🥉",
}
MEDALS = {1: "🥇", 2: "🥈", 3: "🥉"}

_THOUSAND = Decimal(1000)
_MILLION = Decimal(1_000_000)


_round = round_half_up  # half away from zero on the exact value, once


def _drop_trailing_zeros(text: str) -> str:
    return text.rstrip("0").rstrip(".") if "." in text else text


def score_short(value: Decimal) -> str:
    """`2.50M`, `1.23K`, `500.00`; no carry between units (999,995 is `1000.00K`)."""
    if value >= _MILLION:
        return f"{_round(scale_down(value, 6), 2):f}M"
    if value >= _THOUSAND:
        return f"{_round(scale_down(value, 3), 2):f}K"
    return f"{_round(value, 2):.2f}"


def bgt(value: Decimal) -> str:
    """Token amounts: grouped with at most 2 (>= 1000) or 4 (>= 1) decimals, else 6 fixed decimals."""
    if value >= _THOUSAND:
        return _drop_trailing_zeros(f"{_round(value, 2):,.2f}")
    if value >= 1:
        return _drop_trailing_zeros(f"{_round(value, 4):,.4f}")
    return f"{_round(value, 6):.6f}"


def tier(rank: int) -> Tier:
    if rank <= 10:
        return "diamond"
    if rank <= 50:
        return "platinum"
    if rank <= 100:
        return "gold"
    if rank <= 500:
        return "silver"
    return "bronze"


def rank_label(rank: int) -> str:
    """Medals for the podium, a right-aligned `#rank` in code style for everyone else."""
    return MEDALS.get(rank, f"`#{rank:>2}`")


def short_wallet(wallet: str) -> str:
    return f"{wallet[:6]}...{wallet[-4:]}"


def display_name(nym: str | None, wallet_address: str | None) -> str:
    if nym:
        return nym
    if wallet_address:
        return short_wallet(wallet_address)
    return "Unknown"
