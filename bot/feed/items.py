"""One score-feed item: what a line of `sietch scores apply` or an element of an HTTP batch may say.

    {"guild": "1234", "member": "5678" | "0x...", "board": "conviction", "value": "12.5",
     "mode": "set" | "add", "event_type": "token_hold", "tx_hash": "0x...", "at": "2026-11-29T10:00:00Z"}

`guild` and `member` are strings or integers of ASCII digits (a wallet is a 0x string); `value` is a
string or a JSON number read exactly (never through a float); `mode` defaults to "set"; `tx_hash` and
`at` are optional.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple

from backends.protocol import BOARDS, EVENT_TYPES
from bot.domain import inputs

FIELDS = ("guild", "member", "board", "value", "mode", "event_type", "tx_hash", "at")
_FIELDS = frozenset(FIELDS)
REQUIRED = ("guild", "member", "board", "value", "event_type")
MAX_TX_HASH = 200


class FeedItemError(ValueError):
    """Every problem of one item, joined in one line."""


class FeedItem(NamedTuple):  # a tuple, not a frozen dataclass: built for a file's every line, at a fifth of the cost
    guild: int
    discord_user_id: int | None  # the member, by Discord id ...
    wallet: str | None  # ... or by wallet
    board: str
    value: Decimal
    mode: str
    event_type: str
    tx_hash: str | None = None
    at: datetime | None = None

    @property
    def member(self) -> str:
        return str(self.discord_user_id) if self.discord_user_id is not None else str(self.wallet)


@dataclass(frozen=True)
class Unreadable:
    """A JSON number no Decimal holds (an exponent past 10^±10^18), or NaN/Infinity (which Python's json
    reads): kept as written, so that the item it is in is refused naming it, not the whole body."""

    text: str

    def __repr__(self) -> str:
        return self.text


def _number(text: str) -> Decimal | Unreadable:
    try:
        return Decimal(text)
    except InvalidOperation:
        return Unreadable(text)


# One decoder for every call: `json.loads` with hooks builds a new one each time, a tenth of a line's cost.
_DECODER = json.JSONDecoder(parse_float=_number, parse_int=_number, parse_constant=Unreadable)


def loads(text: str | bytes) -> Any:
    """JSON with every number kept exact: integers and fractions become Decimals (`Unreadable` when no
    Decimal holds them)."""
    if isinstance(text, bytes | bytearray):
        text = text.decode(json.detect_encoding(text), "surrogatepass")
    elif text.startswith("\ufeff"):  # as json.loads says it
        raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
    return _DECODER.decode(text)


def parse_item(raw: Any) -> FeedItem:
    """The item, or `FeedItemError` naming each problem."""
    if not isinstance(raw, dict):
        raise FeedItemError("an update must be a JSON object")
    problems = [f"unknown field {k!r}" for k in raw if k not in _FIELDS]
    problems += [f"{k} is required" for k in REQUIRED if raw.get(k) is None]
    if problems:
        raise FeedItemError("; ".join(problems))
    # Each check inline, not through a helper taking a closure: a file's every line comes through here.
    guild = user_id = wallet = value = at = None
    try:
        guild = inputs.discord_id(id_digits(raw["guild"], "guild"), "guild", "guild")
    except ValueError as exc:
        problems.append(str(exc))
    member = raw["member"]
    try:
        if isinstance(member, str) and member[:2].lower() == "0x":
            wallet = inputs.wallet(member, "member")
        else:
            user_id = inputs.discord_id(id_digits(member, "member"), "member")
    except ValueError as exc:
        problems.append(str(exc))
    board = raw["board"]
    if board not in BOARDS:
        problems.append(f"board {board!r} is not one of {', '.join(BOARDS)}")
    raw_value = raw["value"]
    if isinstance(raw_value, Unreadable):
        raw_value = raw_value.text  # out of range, or not finite: as if written as a string
    if isinstance(raw_value, bool) or not isinstance(raw_value, str | Decimal):
        problems.append(f"value {raw_value!r} must be a number or a string of one")
    else:
        try:
            value = inputs.score(raw_value, "value")
        except ValueError as exc:
            problems.append(str(exc))
    mode = raw.get("mode") or "set"
    if mode not in ("set", "add"):
        problems.append(f"mode {mode!r} is not set or add")
    event_type = raw["event_type"]
    if event_type not in EVENT_TYPES:
        problems.append(f"event_type {event_type!r} is not one of {', '.join(EVENT_TYPES)}")
    tx_hash = raw.get("tx_hash")
    if tx_hash is not None and not (
        isinstance(tx_hash, str) and 0 < len(tx_hash) <= MAX_TX_HASH and tx_hash.isprintable()
    ):
        problems.append(f"tx_hash must be a printable string of 1 to {MAX_TX_HASH} characters")
    raw_at = raw.get("at")
    if raw_at is not None:
        try:
            at = inputs.instant(raw_at, "at") if isinstance(raw_at, str) else _not_text("at", raw_at)
        except ValueError as exc:
            problems.append(str(exc))
    if problems:
        raise FeedItemError("; ".join(problems))
    return FeedItem(guild, user_id, wallet, board, value, mode, event_type, tx_hash, at)  # type: ignore[arg-type]


def id_digits(raw: Any, name: str) -> str:
    """An id written as a string, or as a JSON integer (read as an integral Decimal)."""
    if isinstance(raw, str):
        return raw
    if isinstance(raw, Decimal):
        text = str(raw)  # plain digits exactly when the exponent is 0: written without a point or an exponent
        if text.isascii() and text.lstrip("-").isdigit():
            return text
    raise ValueError(f"{name} {raw!r} is not a Discord id")


def _not_text(name: str, raw: Any) -> datetime:
    raise ValueError(f"{name} {raw!r} must be an ISO 8601 string")
