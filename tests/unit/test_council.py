"""The naib council's pure rules (docs/domain.md, "Naib seats"): the four steps of a settling, seat order,
founding at its boundary, tenure texts and the order of former members."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import UUID

import pytest

from bot.domain.council import (
    Eligible,
    Held,
    former_key,
    is_founding,
    seat_order,
    settle,
    tenure_text,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
ADA, BEN, CAL, DEE, EVE, FAY = (UUID(int=i) for i in range(1, 7))


def board(*members: tuple[UUID, int | str]) -> list[Eligible]:
    return [Eligible(pid, Decimal(str(c))) for pid, c in members]


def test_empty_seats_go_to_the_first_eligible_in_ordering() -> None:
    changes = settle([], board((ADA, 500), (BEN, 400), (CAL, 300), (DEE, 200)), 3, T0)
    assert changes.seated == (ADA, BEN, CAL) and changes.unseated == ()


def test_a_strictly_greater_conviction_takes_the_lowest_seat() -> None:
    held = [Held(ADA, T0), Held(BEN, T0), Held(CAL, T0 + timedelta(minutes=30))]
    changes = settle(held, board((ADA, 500), (BEN, 400), (DEE, 350), (CAL, 300)), 3, T0 + timedelta(hours=1))
    assert changes.seated == (DEE,) and changes.unseated == (CAL,)


def test_tenure_wins_ties_and_one_millionth_more_takes_the_seat() -> None:
    held = [Held(ADA, T0), Held(BEN, T0), Held(CAL, T0)]
    # Fay joined first: she is ahead of Cal on the board, but equal conviction does not take the seat.
    assert not settle(held, board((ADA, 500), (BEN, 400), (FAY, 300), (CAL, 300)), 3, T0 + timedelta(hours=1))
    changes = settle(held, board((ADA, 500), (BEN, 400), (FAY, "300.000001"), (CAL, 300)), 3, T0)
    assert changes.seated == (FAY,) and changes.unseated == (CAL,)


def test_holders_outside_the_eligible_set_are_unseated_first() -> None:
    held = [Held(ADA, T0), Held(BEN, T0), Held(CAL, T0)]
    changes = settle(held, board((ADA, 500), (BEN, 400)), 3, T0)
    assert changes.unseated == (CAL,) and changes.seated == ()


def test_lowering_n_unseats_the_lowest_seats() -> None:
    held = [Held(ADA, T0), Held(BEN, T0), Held(CAL, T0)]
    changes = settle(held, board((ADA, 500), (BEN, 400), (CAL, 300)), 1, T0)
    assert changes.unseated == (CAL, BEN)


def test_seat_order_by_conviction_then_tenure_then_ordering() -> None:
    eligible = board((ADA, 500), (BEN, 300), (CAL, 300), (DEE, 300))
    held = [Held(DEE, T0), Held(CAL, T0 + timedelta(seconds=1)), Held(BEN, T0 + timedelta(seconds=1)), Held(ADA, T0)]
    assert [h.profile_id for h in seat_order(held, eligible)] == [ADA, DEE, BEN, CAL]


def test_on_equal_conviction_the_later_seat_is_the_lowest() -> None:
    held = [Held(BEN, T0 + timedelta(seconds=5)), Held(CAL, T0)]
    # Ben is ahead of Cal on the board, but Cal sat first: Ben's seat is the lowest and goes to Dee.
    changes = settle(held, board((DEE, 301), (BEN, 300), (CAL, 300)), 2, T0 + timedelta(hours=1))
    assert changes.unseated == (BEN,) and changes.seated == (DEE,)


def test_a_settled_council_holds_everyone_above_the_unseated() -> None:
    """After any settling, every seat holder's conviction is at least every unseated eligible member's."""
    rng = random.Random(7)
    for _ in range(300):
        ids = [UUID(int=i) for i in range(1, 12)]
        eligible = sorted(
            board(*((pid, rng.randint(1, 6)) for pid in rng.sample(ids, rng.randint(0, 10)))),
            key=lambda e: (-e.conviction, e.profile_id.int),
        )
        held = [Held(pid, T0 + timedelta(seconds=rng.randint(0, 3))) for pid in rng.sample(ids, rng.randint(0, 5))]
        n = rng.randint(1, 5)
        changes = settle(held, eligible, n, T0 + timedelta(hours=1))
        seated = ({h.profile_id for h in held} - set(changes.unseated)) | set(changes.seated)
        conviction = {e.profile_id: e.conviction for e in eligible}
        assert seated <= set(conviction) and len(seated) == min(n, len(eligible))
        for waiting in set(conviction) - seated:
            assert all(conviction[s] >= conviction[waiting] for s in seated)
        # Nobody is both unseated and seated by one settling.
        assert not set(changes.unseated) & set(changes.seated)


@pytest.mark.parametrize(
    ("after", "founding"),
    [(timedelta(0), True), (timedelta(seconds=3600), True), (timedelta(seconds=3600, microseconds=1), False)],
)
def test_founding_within_one_hour_of_the_first_seat_boundary_included(after: timedelta, founding: bool) -> None:
    assert is_founding(T0 + after, T0) is founding


def test_nobody_is_founding_before_a_first_seat() -> None:
    assert not is_founding(T0, None)


@pytest.mark.parametrize(
    ("length", "text"),
    [
        (timedelta(days=29, hours=23, minutes=59), "29d"),
        (timedelta(days=30), "1mo 0d"),
        (timedelta(days=50, hours=12, minutes=30), "1mo 20d"),
        (timedelta(days=364), "12mo 4d"),
        (timedelta(days=365), "1y 0d"),
        (timedelta(days=400), "1y 35d"),
        (timedelta(hours=1), "0d"),
    ],
)
def test_tenure_text(length: timedelta, text: str) -> None:
    assert tenure_text(length) == text


def test_former_members_by_total_tenure_then_latest_end_then_profile_id() -> None:
    rows = [
        (timedelta(hours=1), T0, CAL),
        (timedelta(hours=2), T0, DEE),
        (timedelta(hours=1), T0 + timedelta(microseconds=1), EVE),
        (timedelta(hours=1), T0, BEN),
    ]
    ordered = sorted(rows, key=lambda r: former_key(*r))
    assert [r[2] for r in ordered] == [DEE, EVE, BEN, CAL]
