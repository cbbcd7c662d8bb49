"""A feed item: what a line of `sietch scores apply` or an element of an HTTP batch may say."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from bot.feed.items import FeedItemError, loads, parse_item

GOOD = {"guild": "1234", "member": "5678", "board": "conviction", "value": "12.5", "event_type": "token_hold"}


def test_a_minimal_item_defaults_to_set() -> None:
    item = parse_item(loads('{"guild": 1234, "member": 5678, "board": "activity", "value": 3, "event_type": "decay"}'))
    assert (item.guild, item.discord_user_id, item.wallet, item.board, item.mode) == (
        1234,
        5678,
        None,
        "activity",
        "set",
    )
    assert item.value == Decimal(3) and item.tx_hash is None and item.at is None


def test_numbers_are_read_exactly_at_any_magnitude() -> None:
    wei = "123456789012345678901234567890123456789012345678901234567890.123456789012345678"
    item = parse_item(
        loads('{"guild": "1", "member": "2", "board": "conviction", "value": ' + wei + ', "event_type": "token_hold"}')
    )
    assert item.value == Decimal(wei)
    assert parse_item(
        loads('{"guild": "1", "member": "2", "board": "conviction", "value": 0.1, "event_type": "decay"}')
    ).value == Decimal("0.1")


def test_a_wallet_member_and_the_optional_fields() -> None:
    item = parse_item(
        GOOD | {"member": "0x" + "AB" * 20, "mode": "add", "tx_hash": "0xfeed", "at": "2026-11-29T10:00:00+02:00"}
    )
    assert item.wallet == "0x" + "ab" * 20 and item.discord_user_id is None
    assert item.mode == "add" and item.tx_hash == "0xfeed" and item.at == datetime(2026, 11, 29, 8, tzinfo=UTC)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"guild": "0"}, "guild '0' is not a Discord guild id"),
        ({"guild": "١٢٣"}, "is not a Discord guild id"),  # Arabic-Indic digits
        ({"member": str(2**63)}, "member"),
        ({"member": "0x123"}, "is not a 0x-prefixed 40-hex-digit address"),
        ({"member": 12.5}, "member"),
        ({"board": "karma"}, "board 'karma' is not one of"),
        ({"value": "twelve"}, "value 'twelve' is not a number"),
        ({"value": "NaN"}, "not a finite number"),
        ({"value": "1e2000"}, "out of range"),
        ({"value": "9e1000", "mode": "add"}, None),  # in range; the sum is checked where it is computed
        ({"value": "1e-1001"}, "value '1e-1001' is out of range"),
        ({"value": "٥"}, "value '٥' is not a plain decimal"),  # Arabic-Indic 5
        ({"value": " 5 "}, "value ' 5 ' is not a plain decimal"),
        ({"value": "1_000"}, "value '1_000' is not a plain decimal"),
        ({"value": "Infinity"}, "value 'Infinity' is not a finite number"),
        ({"value": ".5"}, "value '.5' is not a plain decimal"),
        ({"value": True}, "must be a number or a string of one"),
        ({"mode": "multiply"}, "mode 'multiply' is not set or add"),
        ({"event_type": "airdrop"}, "event_type 'airdrop' is not one of"),
        ({"tx_hash": ""}, "tx_hash must be a printable string"),
        ({"tx_hash": "0x\n1"}, "tx_hash must be a printable string"),
        ({"at": "yesterday"}, "is not an ISO 8601 date and time"),
        ({"at": "0001-01-01T00:00:00+14:00"}, "is outside 1900-01-01"),
        ({"at": 1700000000}, "must be an ISO 8601 string"),
        ({"colour": "red"}, "unknown field 'colour'"),
        ({"value": None}, "value is required"),
    ],
)
def test_every_problem_is_named(change: dict[str, Any], problem: str | None) -> None:
    if problem is None:
        parse_item(GOOD | change)
        return
    with pytest.raises(FeedItemError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        parse_item({k: v for k, v in (GOOD | change).items()})


def test_all_problems_of_an_item_at_once() -> None:
    with pytest.raises(FeedItemError) as caught:
        parse_item(GOOD | {"board": "karma", "mode": "x", "event_type": "y"})
    assert str(caught.value).count(";") == 2


def test_not_an_object() -> None:
    with pytest.raises(FeedItemError, match="JSON object"):
        parse_item([GOOD])


def item_text(value: str) -> str:
    return '{"guild": "1", "member": "2", "board": "conviction", "value": ' + value + ', "event_type": "decay"}'


@pytest.mark.parametrize(
    ("number", "problem"),
    [
        ("1e99999999999999999999999", "value '1e99999999999999999999999' is out of range"),  # no Decimal holds it
        ("-1e-99999999999999999999999", "value '-1e-99999999999999999999999' is out of range"),
        ("1e999999999999999999", "value '1E+999999999999999999' is out of range"),
        ("1" * 5000, "value '1111111111111111111111111111111111111111…1111111111' is out of range"),
        ("NaN", "value 'NaN' is not a finite number"),  # Python's json reads NaN and Infinity
        ("-Infinity", "value '-Infinity' is not a finite number"),
    ],
)
def test_json_numbers_no_store_can_keep_refuse_their_item_not_the_body(number: str, problem: str) -> None:
    raw = loads(item_text(number))  # the body is JSON: the item says what is wrong
    with pytest.raises(FeedItemError) as caught:
        parse_item(raw)
    assert problem in str(caught.value)


def test_a_zero_with_any_exponent_is_zero() -> None:
    assert parse_item(loads(item_text("0e99999999999999999999999"))).value == 0


@pytest.mark.parametrize("number", ["1e99999999999999999999999", "NaN", "1" * 5000, "1e999999999999999999"])
def test_ids_written_as_unusable_numbers_are_named(number: str) -> None:
    text = f'{{"guild": {number}, "member": {number}, "board": "conviction", "value": 1, "event_type": "decay"}}'
    with pytest.raises(FeedItemError) as caught:
        parse_item(loads(text))
    assert "guild" in str(caught.value) and "member" in str(caught.value) and len(str(caught.value)) < 400
