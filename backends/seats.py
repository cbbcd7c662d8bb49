"""The rules of naib seats (docs/domain.md, "Naib seats"), shared by the source of truth, which settles
the seats inside every write that can move them, and the bot (`bot.domain.council`): one settling in its
four steps, and seat order."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from uuid import UUID


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
