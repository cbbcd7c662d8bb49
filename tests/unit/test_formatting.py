"""The number formats of docs/domain.md, tiers and names, including half-up ties that banker's rounding gets wrong."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bot.domain.formatting import bgt, display_name, rank_label, scientific, score_short, tier


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("2500000", "2.50M"),
        ("1234", "1.23K"),
        ("500", "500.00"),
        ("999995", "1000.00K"),  # no carry into M
        ("1000", "1.00K"),
        ("1000000", "1.00M"),
        ("1225000", "1.23M"),  # tie: half-up 1.23, banker's 1.22
        ("1005", "1.01K"),  # tie on the exact value 1.005
        ("0.125", "0.13"),  # banker's gives 0.12
        ("0", "0.00"),
    ],
)
def test_score_short(value: str, shown: str) -> None:
    assert score_short(Decimal(value)) == shown


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("1234.5678", "1,234.57"),
        ("1000", "1,000"),
        ("500.1234", "500.1234"),
        ("1", "1"),
        ("0", "0.000000"),
        ("0.123", "0.123000"),
        ("1234.565", "1,234.57"),  # tie: banker's gives 1,234.56
        ("1234.5", "1,234.5"),
        ("1234567.891", "1,234,567.89"),
        ("2.00005", "2.0001"),  # tie at 4 decimals
        ("12.34565", "12.3457"),
        ("0.0000005", "0.000001"),  # tie at 6 decimals
        ("-5", "-5.000000"),
        ("-0.0000025", "-0.000003"),  # half away from zero, also below zero
        ("999.99999", "1,000"),
    ],
)
def test_bgt(value: str, shown: str) -> None:
    assert bgt(Decimal(value)) == shown


@pytest.mark.parametrize(
    ("rank", "expected"),
    [
        (1, "diamond"),
        (10, "diamond"),
        (11, "platinum"),
        (50, "platinum"),
        (51, "gold"),
        (100, "gold"),
        (101, "silver"),
        (500, "silver"),
        (501, "bronze"),
        (10**6, "bronze"),
    ],
)
def test_tier_bounds(rank: int, expected: str) -> None:
    assert tier(rank) == expected


def test_rank_labels_use_medals_for_the_podium() -> None:
    assert [rank_label(r) for r in (1, 2, 3, 4, 12, 123)] == ["🥇", "🥈", "🥉", "`# 4`", "`#12`", "`#123`"]


def test_display_name_prefers_nym_then_short_wallet() -> None:
    assert display_name("Stilgar", "0xabc") == "Stilgar"
    assert display_name(None, "0x1234567890abcdef1234") == "0x1234...1234"
    assert display_name("", None) == "Unknown"


WEI = "110000000.123456789012345678"  # a token balance with the 18 decimals of its wei


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("1.1e26", "110,000,000,000,000,000,000,000,000"),  # quantize to 2 places needs 29 digits
        ("123456789012345678901234567890.123456789012345678", "123,456,789,012,345,678,901,234,567,890.12"),
        ("999999999999999999999999999999.995", "1,000,000,000,000,000,000,000,000,000,000"),  # half-up carries
        (WEI, "110,000,000.12"),
        ("1.00000000000000000000000000000001", "1"),
        ("0.0000004999999999999999999999999999999", "0.000000"),
        ("0.0000005", "0.000001"),
        ("-123456789012345678901234567890.5", "-123456789012345678901234567890.500000"),
        ("2980.9579870417282000000000", "2,980.96"),
    ],
)
def test_bgt_is_exact_at_any_magnitude(value: str, shown: str) -> None:
    assert bgt(Decimal(value)) == shown


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("1004999.99999999999999999999999999", "1.00M"),  # one rounding, on the exact value (two give 1.01M)
        ("1004999.999999999999999999999999999999999", "1.00M"),
        ("1005000", "1.01M"),
        ("1.1e26", "110000000000000000000.00M"),
        ("999999999999999999999999994999.123456789012345678", "999999999999999999999999.99M"),
        ("999999999999999999999999995000", "1000000000000000000000000.00M"),
    ],
)
def test_score_short_is_exact_at_any_magnitude(value: str, shown: str) -> None:
    assert score_short(Decimal(value)) == shown


def test_a_score_of_1e400_formats_without_error() -> None:
    assert score_short(Decimal("1e400")) == "1.00000e+400"  # "Long numbers": over 100 characters written out
    assert bgt(Decimal("1e400")) == "1.00000e+400"


# Long numbers: past 100 characters a number is shown with 6 significant digits in scientific notation.
ONES_74 = "1" * 74  # 74 integer digits grouped by commas are 98 characters


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("9e999", "9.00000e+999"),
        ("1e1000", "1.00000e+1000"),
        ("-1e1000", "-1.00000e+1000"),
        ("9.999995e500", "1.00000e+501"),  # the tie rounds up and carries into the exponent
        ("-9.999995e500", "-1.00000e+501"),  # away from zero below zero too
        ("9.9999949999e500", "9.99999e+500"),
        ("1.234565e150", "1.23457e+150"),  # banker's gives 1.23456
        ("-1.234565e150", "-1.23457e+150"),
        ("1.2345650000000000000000000000000000000000001e150", "1.23457e+150"),
        ("1.2345649999999999999999999999999999999999999e150", "1.23456e+150"),  # one rounding, exact value
        ("1e-1000", "0.000000"),  # short: 6 decimals as always
        ("-1e-1000", "-0.000000"),
        (ONES_74 + ".5", "11" + ",111" * 24 + ".5"),  # 100 characters
        (ONES_74 + ".25", "1.11111e+73"),  # 101 characters
        ("-" + "1" * 92, "-" + "1" * 92 + ".000000"),  # 100 characters: below 1 the format has 6 decimals
        ("-" + "1" * 93, "-1.11111e+92"),
    ],
)
def test_bgt_of_long_numbers(value: str, shown: str) -> None:
    assert bgt(Decimal(value)) == shown
    assert len(bgt(Decimal(value))) <= 100


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("1" * 102, "1" * 96 + ".11M"),  # 100 characters
        ("1" * 103, "1.11111e+102"),
        ("9e999", "9.00000e+999"),
        ("-1e1000", "-1.00000e+1000"),
        ("-" + "1" * 96, "-" + "1" * 96 + ".00"),  # 100 characters
        ("-" + "1" * 97, "-1.11111e+96"),
        ("9.999995e500", "1.00000e+501"),
        ("1e-1000", "0.00"),
    ],
)
def test_score_short_of_long_numbers(value: str, shown: str) -> None:
    assert score_short(Decimal(value)) == shown
    assert len(score_short(Decimal(value))) <= 100


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("1e-1000", "1.00000e-1000"),
        ("-1.234565e-150", "-1.23457e-150"),
        ("9.999995e-7", "1.00000e-6"),
        ("123456.5", "1.23457e+5"),
        ("0", "0.00000e+0"),
    ],
)
def test_scientific_notation(value: str, shown: str) -> None:
    assert scientific(Decimal(value)) == shown


def test_every_accepted_magnitude_formats_within_100_characters() -> None:
    for exponent in range(-1000, 1001, 7):
        for mantissa in ("1", "9.999995", "-4.4444445", "123456789.987654321"):
            value = Decimal(f"{mantissa}e{exponent}")
            assert len(bgt(value)) <= 100 and len(score_short(value)) <= 100, value
