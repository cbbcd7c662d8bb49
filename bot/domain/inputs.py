"""What outside input may say: Discord ids, wallets, scores and instants, each checked the same way by
every door (the members CSV, the score feed's file and HTTP). Each check returns the value or raises
`ValueError` with one line that names what was wrong."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import MAX_EMAX, MIN_EMIN, Context, Decimal, InvalidOperation

from backends.protocol import MAX_SCORE_EXPONENT

WALLET = re.compile(r"^0x[0-9a-f]{40}$")
ASCII_DIGITS = re.compile(r"[0-9]+")  # str.isdigit() and int() also take other scripts' digits
# A plain decimal: an optional sign, digits, optionally a point and digits, optionally an exponent.
# Decimal() also reads spaces around it, underscores, other scripts' digits, NaN and Infinity.
PLAIN_DECIMAL = re.compile(r"[+-]?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
# Digits after the point a score may have (trailing zeros aside): a value of the smallest magnitude
# with a thousand significant digits.
MAX_DECIMALS = 2 * MAX_SCORE_EXPONENT
PLAIN_DECIMAL_HELP = "an optional sign, ASCII digits, optionally a point and digits, optionally an exponent"
# Dates every store and Python round-trip, whatever the offset written with them.
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 12, 30, tzinfo=UTC)


def discord_id(raw: str, name: str = "discord_user_id", kind: str = "user") -> int:
    """A snowflake: ASCII digits, 1 to 2**63 - 1 (what every store keeps as a signed 64-bit integer)."""
    # int() of over 4300 digits raises: no snowflake has more than 19 past its leading zeros
    if ASCII_DIGITS.fullmatch(raw) and len(raw.lstrip("0")) <= 19 and 0 < int(raw) < 2**63:
        return int(raw)
    raise ValueError(f"{name} {_shown(raw)} is not a Discord {kind} id")


def wallet(raw: str, name: str = "wallet_address") -> str:
    if WALLET.match(raw.lower()):
        return raw.lower()
    raise ValueError(f"{name} {_shown(raw)} is not a 0x-prefixed 40-hex-digit address")


def score(raw: str | Decimal, name: str) -> Decimal:
    """Exact: the decimal as written (`Decimal(str)`, never through a float).

    A string must be a plain ASCII decimal (PLAIN_DECIMAL). A value other than 0 has its first
    significant digit between the 10^-MAX_SCORE_EXPONENT and the 10^MAX_SCORE_EXPONENT place (9e1000 is
    in range) and at most MAX_DECIMALS digits after the point, trailing zeros aside. A zero written with
    an exponent past those is 0.
    """
    if isinstance(raw, Decimal):
        value = raw
    elif not isinstance(raw, str) or not PLAIN_DECIMAL.fullmatch(raw):
        raise ValueError(_not_plain(raw, name))
    else:
        try:
            value = Decimal(raw)
        except InvalidOperation:  # a plain decimal whose exponent no Decimal holds (past 10^±10^18)
            if re.sub("[eE].*", "", raw).strip("+-0."):
                raise ValueError(_out_of_range(raw, name)) from None
            value = Decimal(0)  # zero, whatever its exponent
    if not value.is_finite():
        raise ValueError(f"{name} {_shown(raw)} is not a finite number")
    exponent = int(value.as_tuple().exponent)
    if not value:
        return value if -MAX_DECIMALS <= exponent <= MAX_SCORE_EXPONENT else Decimal(0)
    if not -MAX_SCORE_EXPONENT <= value.adjusted() <= MAX_SCORE_EXPONENT:
        raise ValueError(_out_of_range(raw, name))
    if exponent < -MAX_DECIMALS:  # trailing zeros are no digits of the value
        value = value.normalize(Context(prec=len(value.as_tuple().digits), Emax=MAX_EMAX, Emin=MIN_EMIN))
        if int(value.as_tuple().exponent) < -MAX_DECIMALS:
            raise ValueError(f"{name} {_shown(raw)} has more than {MAX_DECIMALS} digits after the point")
    return value


def _not_plain(raw: object, name: str) -> str:
    try:
        finite = isinstance(raw, str) and Decimal(raw).is_finite()
    except InvalidOperation:
        finite = None
    if finite is None or not isinstance(raw, str):
        return f"{name} {_shown(raw)} is not a number"
    if not finite:
        return f"{name} {_shown(raw)} is not a finite number"
    return (
        f"{name} {_shown(raw)} is not a plain decimal ({PLAIN_DECIMAL_HELP}:"
        " no spaces, underscores or other scripts' digits)"
    )


def _out_of_range(raw: object, name: str) -> str:
    return (
        f"{name} {_shown(raw)} is out of range"
        f" (its first significant digit must lie between the 10^-{MAX_SCORE_EXPONENT}"
        f" and the 10^{MAX_SCORE_EXPONENT} place)"
    )


def _shown(raw: object) -> str:
    """`raw` quoted, its middle left out when long (a value may be a megabyte of digits)."""
    text = str(raw)
    return repr(text if len(text) <= 60 else f"{text[:40]}…{text[-10:]}")


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
