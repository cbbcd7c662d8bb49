"""Argument types of the `sietch` commands: what the parser accepts, with one line when it does not."""

from __future__ import annotations

import argparse
import re
from decimal import Decimal

from bot.domain import inputs

_DIGITS = re.compile(r"[0-9]{1,19}")  # ASCII only: int() also reads other scripts' digits


def snowflake(text: str) -> int:
    """A Discord id (guild, user): 1 to 2**63 - 1."""
    if not _DIGITS.fullmatch(text) or not 0 < int(text) < 2**63:
        raise argparse.ArgumentTypeError(f"{text!r} is not a Discord id (ASCII digits, 1 to 2**63 - 1)")
    return int(text)


def role_id(text: str) -> int | str:
    """A role's Discord id, or `none`."""
    return "none" if text.strip().lower() == "none" else snowflake(text)


def balance(text: str) -> Decimal | str:
    """An exact non-negative amount, or `none`."""
    if text.strip().lower() == "none":
        return "none"
    try:
        value = inputs.score(text, "amount")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is negative")
    return value
