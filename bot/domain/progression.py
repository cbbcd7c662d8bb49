"""Progression tiers and the tier progression board's bands, as pure rules (docs/domain.md, "Tier progression").

The board holds the ranked members outside positions 1..F whose tier is a conviction tier with a
conviction tier above it. In board order a tier's members are one run of ranks (a band), so each band is a
rank range found from counts of members at or above a threshold, and within a band the distance to the next
threshold grows with the rank: the board is the bands merged by (distance, rank).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from itertools import pairwise
from typing import Literal

from backends.exact import subtract

ProgressionTier = Literal["fremen", "stillsuit", "sietch", "sayyadina", "fedaykin", "naib"]

TIER_NAMES: dict[ProgressionTier, str] = {
    "fremen": "Fremen",
    "stillsuit": "Stillsuit",
    "sietch": "Sietch",
    "sayyadina": "Sayyadina",
    "fedaykin": "Fedaykin",
    "naib": "Naib",
}
TIER_EMOJI: dict[ProgressionTier, str] = {
    "fremen": "🌱",
    "stillsuit": "💧",
    "sietch": "🏔️",
    "sayyadina": "🌟",
    "fedaykin": "⚔️",
    "naib": "👑",
}
# The conviction tiers, lowest first, with the conviction each starts at. `fedaykin` and `naib` are held by
# rank (positions 1..F, a seat), so their thresholds (5,000 and 10,000) are never used.
CONVICTION_TIERS: tuple[tuple[ProgressionTier, Decimal], ...] = (
    ("fremen", Decimal(0)),
    ("stillsuit", Decimal(100)),
    ("sietch", Decimal(500)),
    ("sayyadina", Decimal(1000)),
)


def conviction_tier(conviction: Decimal) -> ProgressionTier:
    """The highest conviction tier whose threshold the conviction reaches (reached exactly counts)."""
    reached: ProgressionTier = "fremen"
    for name, threshold in CONVICTION_TIERS:
        if conviction >= threshold:
            reached = name
    return reached


@dataclass(frozen=True)
class Band:
    """The board members of one tier: `tier` → `next_tier` at `threshold`, ranks `after` + 1 .. `last`."""

    tier: ProgressionTier
    next_tier: ProgressionTier
    floor: Decimal  # the tier's own threshold
    threshold: Decimal  # the next tier's
    after: int
    last: int

    @property
    def size(self) -> int:
        return max(0, self.last - self.after)

    def distance(self, conviction: Decimal) -> Decimal:
        return subtract(self.threshold, conviction)


# The tiers with a conviction tier above them: (tier, its threshold, next tier, the next threshold).
BAND_TIERS: tuple[tuple[ProgressionTier, Decimal, ProgressionTier, Decimal], ...] = tuple(
    (low, floor, high, threshold) for (low, floor), (high, threshold) in pairwise(CONVICTION_TIERS)
)


def bands(fedaykin: int, ranked: int, at_or_above: dict[Decimal, int]) -> list[Band]:
    """The board's bands, highest conviction first, from the number ranked and, per next threshold, the
    number of ranked members at or above it; positions 1..F are left out of every band."""
    found = []
    for low, floor, high, threshold in reversed(BAND_TIERS):
        below = ranked if floor == 0 else at_or_above[floor]
        found.append(Band(low, high, floor, threshold, max(fedaykin, at_or_above[threshold]), below))
    return found


def band_of(found: list[Band], rank: int) -> Band | None:
    return next((b for b in found if b.after < rank <= b.last), None)
