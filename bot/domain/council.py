"""The naib council as pure rules (docs/domain.md, "Naib seats"): one settling of the seats and seat
order (kept in `backends.seats`, where the source of truth runs them inside every write that can move the
seats), founding naib, tenure and its text, and the order of former members."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

from backends.seats import Eligible, Held, SeatChanges, seat_order, settle

__all__ = [
    "Eligible",
    "Held",
    "SeatChanges",
    "days",
    "former_key",
    "is_founding",
    "seat_order",
    "settle",
    "tenure_text",
]

FOUNDING_WINDOW = timedelta(seconds=3600)
DAY = timedelta(days=1)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


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
