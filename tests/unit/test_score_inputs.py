"""The one check of a score every door uses (docs/domain.md, "Input values"): plain ASCII decimals, exact,
in range; and the command line's amounts, which go through it."""

from __future__ import annotations

import argparse
from decimal import Decimal

import pytest

from bot.cli.arguments import balance
from bot.domain.inputs import MAX_DECIMALS, discord_id, score


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("5", "5"),
        ("-5", "-5"),
        ("+5", "5"),
        ("-0", "-0"),
        ("0.00", "0.00"),  # kept as written: the same score as 0
        ("1.5", "1.5"),
        ("1e5", "1E+5"),
        ("1E-5", "0.00001"),
        ("9e1000", "9E+1000"),  # the first digit at the 10^1000 place
        ("-9.999e1000", "-9.999E+1000"),
        ("1e-1000", "1E-1000"),
        ("1.5e-1000", "1.5E-1000"),
        ("123456789012345678901234567890.123456789012345678", "123456789012345678901234567890.123456789012345678"),
        ("1." + "0" * 20000, "1"),  # trailing zeros past MAX_DECIMALS are no digits of the value
        ("0e99999999999999999999999", "0"),  # zero, whatever its exponent
        ("0e-5000", "0"),
    ],
)
def test_plain_decimals_are_read_exactly(raw: str, value: str) -> None:
    got = score(raw, "value")
    assert str(got) == value and got == Decimal(value)


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("٥", "value '٥' is not a plain decimal"),  # Arabic-Indic five: Decimal() reads it as 5
        ("１２", "value '１２' is not a plain decimal"),  # fullwidth digits
        (" 5 ", "value ' 5 ' is not a plain decimal"),
        ("5\n", "is not a plain decimal"),
        ("1_000", "value '1_000' is not a plain decimal"),
        ("1 000", "value '1 000' is not a number"),
        (".5", "value '.5' is not a plain decimal"),
        ("5.", "value '5.' is not a plain decimal"),
        ("0x10", "value '0x10' is not a number"),
        ("", "value '' is not a number"),
        ("NaN", "value 'NaN' is not a finite number"),
        ("-Infinity", "value '-Infinity' is not a finite number"),
        ("sNaN", "value 'sNaN' is not a finite number"),
        ("1e1001", "value '1e1001' is out of range"),
        ("-1e1001", "value '-1e1001' is out of range"),
        ("1e-1001", "value '1e-1001' is out of range"),
        ("1e99999999999999999999999", "value '1e99999999999999999999999' is out of range"),  # no Decimal holds it
        ("1e-99999999999999999999999", "is out of range"),
        ("1" * 1002, "is out of range"),
        ("1." + "0" * MAX_DECIMALS + "1", f"has more than {MAX_DECIMALS} digits after the point"),
    ],
)
def test_anything_else_is_refused_with_one_line(raw: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem) as caught:
        score(raw, "value")
    assert "\n" not in str(caught.value) and len(str(caught.value)) < 200


def test_decimals_from_json_are_checked_the_same_way() -> None:
    assert score(Decimal("12.5"), "value") == Decimal("12.5")
    for bad in (Decimal("NaN"), Decimal("Infinity"), Decimal("1e1001"), Decimal("1E+999999999999999999")):
        with pytest.raises(ValueError):
            score(bad, "value")


def test_a_discord_id_of_thousands_of_digits_is_refused_not_an_error() -> None:
    with pytest.raises(ValueError, match="is not a Discord user id"):
        discord_id("1" * 5000)
    assert discord_id("0" * 30 + "42") == 42


@pytest.mark.parametrize("text", ["٥", " 5 ", "1_000", "NaN", "Infinity", "1e99999999999999999999999", "1e1001"])
def test_minimum_balance_goes_through_the_same_check(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        balance(text)


def test_minimum_balance_accepts_plain_amounts() -> None:
    assert balance("1000.5") == Decimal("1000.5") and balance("none") == "none" and balance("2e3") == Decimal(2000)
