"""The naib council as pure rules (docs/domain.md, "Naib seats"): one settling of the seats, seat order,
founding naib, tenure and its text, and the order of former members.

PostgreSQL runs `settle` inside every write that can move the seats; the tests hold every backend's
council to these rules applied to the history of writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import UUID

FOUNDING_WINDOW = timedelta(seconds=3600)
DAY = timedelta(days=1)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Eligible:
    """A member of the eligible set: positions 1..F, less those below the minimum balance, in "Ordering"
    (a list of them is in board order)."""

    profile_id: UUID
    conviction: Decimal


@dataclass(frozen=True)
class Held:
    """An open term: who holds a seat and since when."""

    profile_id: UUID
    seated_at: datetime


@dataclass(frozen=True)
class SeatChanges:
    """What one settling does: members unseated and members seated, each in the order it happened."""

    unseated: tuple[UUID, ...] = ()
    seated: tuple[UUID, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.unseated or self.seated)


def seat_order(held: Sequence[Held], eligible: Sequence[Eligible]) -> list[Held]:
    """Seats in seat order: conviction, highest first; then the current term's `seated_at`, earliest
    first; then "Ordering". Every holder must be eligible (after a settling, every one is)."""
    place = {e.profile_id: (i, e.conviction) for i, e in enumerate(eligible)}
    return sorted(held, key=lambda h: (place[h.profile_id][1].copy_negate(), h.seated_at, place[h.profile_id][0]))


def settle(held: Sequence[Held], eligible: Sequence[Eligible], seats: int, at: datetime) -> SeatChanges:
    """One settling of `seats` (N) seats at the moment `at`, in the four steps of "Naib seats"."""
    eligible_ids = {e.profile_id for e in eligible}
    unseated: list[UUID] = []
    seated: list[UUID] = []
    # 1. Every holder outside the eligible set is unseated.
    current = []
    for h in held:
        if h.profile_id in eligible_ids:
            current.append(h)
        else:
            unseated.append(h.profile_id)
    current = seat_order(current, eligible)
    # 2. N was lowered: the lowest seats go.
    while len(current) > seats:
        unseated.append(current.pop().profile_id)
    holding = {h.profile_id for h in current}
    waiting = [e for e in eligible if e.profile_id not in holding]  # in "Ordering"
    # 3. Empty seats go to the first eligible members without one.
    while len(current) < seats and waiting:
        newcomer = waiting.pop(0)
        current.append(Held(newcomer.profile_id, at))
        seated.append(newcomer.profile_id)
    current = seat_order(current, eligible)
    conviction = {e.profile_id: e.conviction for e in eligible}
    index = {e.profile_id: i for i, e in enumerate(eligible)}
    # 4. A strictly greater conviction takes the lowest seat; on equal conviction the holder keeps it.
    while current and waiting:
        lowest = current[-1]
        challenger = next((e for e in waiting if e.conviction > conviction[lowest.profile_id]), None)
        if challenger is None:
            break
        waiting.remove(challenger)
        waiting.append(Eligible(lowest.profile_id, conviction[lowest.profile_id]))
        waiting.sort(key=lambda e: index[e.profile_id])
        current[-1] = Held(challenger.profile_id, at)
        unseated.append(lowest.profile_id)
        seated.append(challenger.profile_id)
        current = seat_order(current, eligible)
    return SeatChanges(tuple(unseated), tuple(seated))


def is_founding(first_seated_at: datetime, community_first_seat: datetime | None) -> bool:
    """Whether a member whose first term began at `first_seated_at` is a founding naib: at most one hour
    after the community's first seat was taken, the boundary included."""
    return community_first_seat is not None and first_seated_at - community_first_seat <= FOUNDING_WINDOW


def days(length: timedelta) -> int:
    """⌊x ÷ 86,400 s⌋ on the exact length."""
    return length // DAY


def tenure_text(length: timedelta) -> str:
    """`{y}y {d}d` from 365 days, `{m}mo {d}d` from 30 days, else `{n}d`."""
    n = days(length)
    if n >= 365:
        return f"{n // 365}y {n % 365}d"
    if n >= 30:
        return f"{n // 30}mo {n % 30}d"
    return f"{n}d"


def former_key(tenure: timedelta, left_at: datetime, profile_id: UUID) -> tuple[timedelta, timedelta, int]:
    """The sort key of former members: total tenure, longest first; then the end of their last term,
    latest first; then profile id."""
    return (-tenure, -(left_at - EPOCH), profile_id.int)
