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
LONGEST = 100  # characters of a formatted number; longer ones are shown in scientific notation
SIGNIFICANT = 6


_round = round_half_up  # half away from zero on the exact value, once


def _drop_trailing_zeros(text: str) -> str:
    return text.rstrip("0").rstrip(".") if "." in text else text


def scientific(value: Decimal) -> str:
    """6 significant digits, half away from zero on the exact value: `9.00000e+999`, `-1.23457e-150`."""
    if not value:
        return f"{0:.{SIGNIFICANT - 1}f}e+0"
    exponent = value.adjusted()
    mantissa = _round(scale_down(value, exponent), SIGNIFICANT - 1)  # 1 <= |mantissa| <= 10
    if abs(mantissa) == 10:  # 9.999995e+500 rounds up to 1.00000e+501
        mantissa, exponent = mantissa.scaleb(-1), exponent + 1
    return f"{mantissa:.{SIGNIFICANT - 1}f}e{exponent:+d}"


def _fitted(text: str, value: Decimal) -> str:
    """`text`, or the value in scientific notation when `text` is longer than LONGEST characters."""
    return text if len(text) <= LONGEST else scientific(value)


def score_short(value: Decimal) -> str:
    """`2.50M`, `1.23K`, `500.00`; no carry between units (999,995 is `1000.00K`)."""
    if value >= _MILLION:
        return _fitted(f"{_round(scale_down(value, 6), 2):f}M", value)
    if value >= _THOUSAND:
        return f"{_round(scale_down(value, 3), 2):f}K"
    return _fitted(f"{_round(value, 2):.2f}", value)


def bgt(value: Decimal) -> str:
    """Token amounts: grouped with at most 2 (>= 1000) or 4 (>= 1) decimals, else 6 fixed decimals."""
    if value >= _THOUSAND:
        return _fitted(_drop_trailing_zeros(f"{_round(value, 2):,.2f}"), value)
    if value >= 1:
        return _drop_trailing_zeros(f"{_round(value, 4):,.4f}")
    return _fitted(f"{_round(value, 6):.6f}", value)


def whole(value: Decimal) -> str:
    """Rounded to a whole number, thousands separated by commas, no point: 99.5 → `100`, 1234.5 → `1,235`."""
    return _fitted(f"{_round(value, 0):,f}", value)


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
