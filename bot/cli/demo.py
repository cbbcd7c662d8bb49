"""Synthetic members for `sietch demo`, so a new server shows a filled leaderboard at once."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from backends.members import MemberRow

NAMES = (
    "Stilgar",
    "Chani",
    "Jamis",
    "Harah",
    "Liet",
    "Shishakli",
    "Otheym",
    "Korba",
    "Farok",
    "Mapes",
    "Turok",
    "Geurney",
    "Ramallo",
    "Tharthar",
    "Shadout",
    "Alia",
    "Idaho",
    "Leto",
    "Jessica",
    "Sihaya",
)


def demo_members(count: int, seed: int = 0) -> list[MemberRow]:
    """`count` members with long-tailed scores (a few whales, many small holders), some with zero."""
    rng = random.Random(seed)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    rows = []
    for i in range(count):
        conviction = Decimal(str(round(rng.paretovariate(1.2) * 100 - 100, 4))) if rng.random() > 0.05 else Decimal(0)
        rows.append(
            MemberRow(
                discord_user_id=700_000_000_000_000_000 + i,
                wallet_address=f"0x{rng.getrandbits(160):040x}",
                nym=f"{rng.choice(NAMES)}{i}" if rng.random() > 0.1 else None,
                joined_at=start + timedelta(minutes=rng.randrange(0, 60 * 24 * 365)),
                conviction=conviction,
                activity=Decimal(rng.randrange(0, 500)),
            )
        )
    return rows
