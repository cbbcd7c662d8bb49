"""Argument types of the `sietch` commands: what the parser accepts, with one line when it does not."""

from __future__ import annotations

import argparse
import re

_DIGITS = re.compile(r"[0-9]{1,19}")  # ASCII only: int() also reads other scripts' digits


def snowflake(text: str) -> int:
    """A Discord id (guild, user): 1 to 2**63 - 1."""
    if not _DIGITS.fullmatch(text) or not 0 < int(text) < 2**63:
        raise argparse.ArgumentTypeError(f"{text!r} is not a Discord id (ASCII digits, 1 to 2**63 - 1)")
    return int(text)
