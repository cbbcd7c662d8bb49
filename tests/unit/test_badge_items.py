"""Badge changes as the feed and the CLI read them: each problem named, a member by Discord id or wallet."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bot.feed.badges import BadgeItem, parse_badge_item
from bot.feed.items import FeedItemError

WALLET = "0x" + "Ab" * 20


def test_a_member_by_id_or_wallet_and_an_optional_reason() -> None:
    assert parse_badge_item({"member": "5678", "action": "award", "type": "og"}) == BadgeItem(5678, None, "award", "og")
    assert parse_badge_item({"member": Decimal(5678), "action": "revoke", "type": "elder", "reason": "left"}) == (
        BadgeItem(5678, None, "revoke", "elder", "left")
    )
    assert parse_badge_item({"member": WALLET, "action": "award", "type": "og"}).wallet == WALLET.lower()


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ([], "a badge change must be a JSON object"),
        ({"member": "1", "action": "award"}, "type is required"),
        ({"member": "1", "action": "award", "type": "og", "board": "x"}, "unknown field 'board'"),
        ({"member": "1", "action": "give", "type": "og"}, "action 'give' is not award or revoke"),
        ({"member": "1", "action": "award", "type": "OG"}, "unknown badge type 'OG'"),
        ({"member": "1", "action": "award", "type": 3}, "type 3 must be a string"),
        ({"member": "x", "action": "award", "type": "og"}, "member"),
        ({"member": "1", "action": "award", "type": "og", "reason": "a\nb"}, "a badge reason is one line"),
        ({"member": "1", "action": "award", "type": "og", "reason": "r" * 201}, "at most 200 characters"),
        ({"member": "1", "action": "award", "type": "og", "reason": 7}, "reason must be a string"),
    ],
)
def test_each_problem_is_named(raw: object, problem: str) -> None:
    with pytest.raises(FeedItemError, match=problem):
        parse_badge_item(raw)
