"""A member's standing from their position (docs/domain.md, "Roles and alerts"), its roles and its alerts."""

from __future__ import annotations

from decimal import Decimal

import pytest

from backends.protocol import Community
from backends.roles import RoleConfig
from bot.roles.standing import decode, encode, events_between, roles_for, standing_of

C = Community(1, fedaykin=69, naib=7, at_risk=63, waitlist_end=100)
ROLES = RoleConfig(1, naib=11, fedaykin=22, at_risk=33, waiting=44)


@pytest.mark.parametrize(
    ("position", "parts", "roles"),
    [
        (1, {"naib", "fedaykin"}, {11, 22}),
        (7, {"naib", "fedaykin"}, {11, 22}),
        (8, {"fedaykin"}, {22}),
        (63, {"fedaykin"}, {22}),
        (64, {"fedaykin", "at_risk"}, {22, 33}),
        (69, {"fedaykin", "at_risk"}, {22, 33}),
        (70, {"waiting", "head"}, {44}),
        (100, {"waiting"}, {44}),
        (101, set(), set()),
        (None, set(), set()),
    ],
)
def test_positions_give_parts_and_roles(position: int | None, parts: set[str], roles: set[int]) -> None:
    got = standing_of(position, C, seated=_seated(position))
    assert got == parts and roles_for(got, ROLES) == roles
    assert decode(encode(got)) == got


def _seated(position: int | None) -> bool:
    """The seats of a settled council with no tie at the Nth position and no minimum balance: 1..N."""
    return position is not None and position <= C.naib


def test_naib_inside_the_at_risk_band_holds_both() -> None:
    small = Community(1, fedaykin=4, naib=4, at_risk=2, waitlist_end=6)
    assert standing_of(3, small, seated=True) == {"naib", "fedaykin", "at_risk"}


def test_naib_follows_the_seat_not_the_position() -> None:
    # A tie at the Nth position: the member at position N has no seat, the holder of it is at N + 1.
    assert standing_of(7, C, seated=False) == {"fedaykin"}
    assert standing_of(8, C, seated=True) == {"naib", "fedaykin"}


def test_a_member_below_the_minimum_balance_holds_no_part_not_even_the_waiting_pool() -> None:
    assert standing_of(3, C, eligible=False) == set()
    assert standing_of(70, C, eligible=False) == set()
    assert standing_of(70, C, eligible=True) == {"waiting", "head"}


def test_unset_roles_are_left_out() -> None:
    assert roles_for(frozenset({"naib", "fedaykin"}), RoleConfig(1, naib=11, minimum_balance=Decimal(1))) == {11}


@pytest.mark.parametrize(
    ("before", "after", "events"),
    [
        (None, 5, ("entered", "gained_naib")),
        (70, 69, ("entered", "at_risk")),
        (8, 64, ("at_risk",)),
        (64, 8, ()),
        (69, 70, ("lost_eligibility", "head_of_waiting_pool")),
        (3, 200, ("lost_eligibility", "lost_naib")),
        (71, 70, ("head_of_waiting_pool",)),
        (70, 71, ()),
        (8, 7, ("gained_naib",)),
        (7, 8, ("lost_naib",)),
    ],
)
def test_events_between_standings(before: int | None, after: int, events: tuple[str, ...]) -> None:
    assert (
        events_between(standing_of(before, C, seated=_seated(before)), standing_of(after, C, seated=_seated(after)))
        == events
    )
