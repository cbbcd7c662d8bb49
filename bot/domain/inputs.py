"""What outside input may say: Discord ids, wallets, scores and instants, each checked the same way by
every door (the members CSV, the score feed's file and HTTP). Each check returns the value or raises
`ValueError` with one line that names what was wrong."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation

from backends.protocol import MAX_SCORE_EXPONENT

WALLET = re.compile(r"^0x[0-9a-f]{40}$")
ASCII_DIGITS = re.compile(r"[0-9]+")  # str.isdigit() and int() also take other scripts' digits
# Dates every store and Python round-trip, whatever the offset written with them.
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 12, 30, tzinfo=UTC)


def discord_id(raw: str, name: str = "discord_user_id", kind: str = "user") -> int:
    """A snowflake: ASCII digits, 1 to 2**63 - 1 (what every store keeps as a signed 64-bit integer)."""
    if ASCII_DIGITS.fullmatch(raw) and 0 < int(raw) < 2**63:
        return int(raw)
    raise ValueError(f"{name} {raw!r} is not a Discord {kind} id")


def wallet(raw: str, name: str = "wallet_address") -> str:
    if WALLET.match(raw.lower()):
        return raw.lower()
    raise ValueError(f"{name} {raw!r} is not a 0x-prefixed 40-hex-digit address")


def score(raw: str | Decimal, name: str) -> Decimal:
    """Exact: the decimal as written (`Decimal(str)`, never through a float)."""
    try:
        value = raw if isinstance(raw, Decimal) else Decimal(raw)
    except InvalidOperation:
        raise ValueError(f"{name} {raw!r} is not a number") from None
    if not value.is_finite():
        raise ValueError(f"{name} {raw!r} is not a finite number")
    if value and not -MAX_SCORE_EXPONENT <= value.adjusted() <= MAX_SCORE_EXPONENT:
        raise ValueError(
            f"{name} {raw!r} is out of range (at most {MAX_SCORE_EXPONENT} digits before or after the point)"
        )
    return value


def instant(raw: str, name: str) -> datetime:
    """ISO 8601; no offset means UTC; within EARLIEST..LATEST once in UTC."""
    try:
        when = datetime.fromisoformat(raw)
    except ValueError:
        raise ValueError(f"{name} {raw!r} is not an ISO 8601 date and time") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    try:
        when = when.astimezone(UTC)
    except OverflowError:
        when = EARLIEST - timedelta(days=1)
    if not EARLIEST <= when <= LATEST:
        raise ValueError(f"{name} {raw!r} is outside {EARLIEST:%Y-%m-%d} to {LATEST:%Y-%m-%d} (UTC)")
    return when
