"""Progression tiers, the tier board's bands and `whole(x)` (docs/domain.md, "Tier progression",
"Number formatting"), without a database."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bot.domain.formatting import whole
from bot.domain.progression import band_of, bands, conviction_tier

D = Decimal


@pytest.mark.parametrize(
    ("conviction", "tier"),
    [
        ("0.4", "fremen"),
        ("99.999999", "fremen"),
        ("100", "stillsuit"),  # a threshold reached exactly counts
        ("499.6", "stillsuit"),
        ("500", "sietch"),
        ("990", "sietch"),
        ("1000", "sayyadina"),
        ("1100", "sayyadina"),
        ("5000", "sayyadina"),  # fedaykin and naib are held by rank, never by conviction
        ("10000", "sayyadina"),
    ],
)
def test_conviction_tier_is_the_highest_threshold_reached(conviction: str, tier: str) -> None:
    assert conviction_tier(D(conviction)) == tier


@pytest.mark.parametrize(
    ("value", "shown"),
    [("99.5", "100"), ("0.4", "0"), ("0.5", "1"), ("99.6", "100"), ("1234.5", "1,235"), ("400", "400"), ("2.5", "3")],
)
def test_whole_rounds_half_away_from_zero_with_thousands_separated(value: str, shown: str) -> None:
    assert whole(D(value)) == shown


def test_bands_are_rank_ranges_below_positions_one_to_f() -> None:
    # Ranks: 1..3 at 1,000 or more, 4..6 in sietch, 7..9 in stillsuit, 10..12 in fremen; F = 5.
    found = bands(5, 12, {D(1000): 3, D(500): 6, D(100): 9})
    assert [(b.tier, b.next_tier, b.after, b.last, b.size) for b in found] == [
        ("sietch", "sayyadina", 5, 6, 1),
        ("stillsuit", "sietch", 6, 9, 3),
        ("fremen", "stillsuit", 9, 12, 3),
    ]
    assert band_of(found, 5) is None and band_of(found, 6) is found[0] and band_of(found, 12) is found[2]


def test_a_band_inside_positions_one_to_f_is_empty() -> None:
    found = bands(10, 12, {D(1000): 0, D(500): 4, D(100): 8})
    assert [b.size for b in found] == [0, 0, 2]
    assert band_of(found, 3) is None


def test_the_distance_is_exact() -> None:
    (sietch, _, fremen) = bands(0, 3, {D(1000): 0, D(500): 1, D(100): 2})
    assert sietch.distance(D("999.999999999999999999999999999999")) == D("1e-30")
    assert fremen.distance(D("0.4")) == D("99.6")
