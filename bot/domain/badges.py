"""Badges as pure rules (docs/domain.md, "Badges"): the types, tenure categories from the join date, and
the badge board's ranks."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from backends.protocol import BADGE_TYPES

BADGE_NAMES: dict[str, str] = {
    "og": "OG",
    "veteran": "Sietch Veteran",
    "elder": "Elder",
    "naib_ascended": "Naib Ascended",
    "fedaykin_initiated": "Fedaykin Initiated",
    "usul_ascended": "Usul Ascended",
    "first_maker": "First Maker",
    "desert_active": "Desert Active",
    "sietch_engaged": "Sietch Engaged",
    "water_sharer": "Water Sharer",
    "former_naib": "Former Naib",
    "founding_naib": "Founding Naib",
}
assert tuple(BADGE_NAMES) == BADGE_TYPES

TenureCategory = Literal["og", "elder", "veteran", "member"]
TENURE_EMOJI: dict[TenureCategory, str] = {"og": "🏛️", "elder": "🌟", "veteran": "⭐", "member": "🌱"}

DAY_SECONDS = 86_400
OG_DAYS, ELDER_DAYS, VETERAN_DAYS = 30, 180, 90


def days(seconds: float) -> int:
    """Whole days of a length: ⌊x ÷ 86,400 s⌋."""
    return int(seconds // DAY_SECONDS)


def tenure_category(joined_at: datetime, launched_at: datetime | None, now: datetime) -> TenureCategory:
    """The first category that applies: `og` joined less than 30 days after the launch, then `elder`
    (180 days or more), `veteran` (90 or more), else `member`."""
    if launched_at is not None and (joined_at - launched_at).total_seconds() < OG_DAYS * DAY_SECONDS:
        return "og"
    held = days((now - joined_at).total_seconds())
    if held >= ELDER_DAYS:
        return "elder"
    if held >= VETERAN_DAYS:
        return "veteran"
    return "member"


def badge_rank(held_above: int) -> int:
    """A member's rank on the badge board: 1 + the members holding more badges (equal counts share it)."""
    return 1 + held_above
