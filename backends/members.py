"""Members as an admin brings them in (a CSV file, `sietch demo`): the rows of an import and what an
import refuses."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from backends.protocol import utcnow


@dataclass(frozen=True)
class MemberRow:
    """One member to import; matched to an existing profile by Discord user id, then by wallet."""

    discord_user_id: int | None = None
    wallet_address: str | None = None
    nym: str | None = None
    joined_at: datetime = field(default_factory=utcnow)
    conviction: Decimal = Decimal(0)
    activity: Decimal = Decimal(0)
    line: int | None = None  # where the row came from, for error messages


@dataclass(frozen=True)
class RepeatedKey:
    """A row of a streamed import that repeats an earlier row's Discord id or wallet."""

    line: int
    column: str  # discord_user_id | wallet_address
    value: str
    first_line: int  # the earliest row with that value


# Called once every row of a streamed import is staged, with the first repeated keys (by line) and how
# many there are in all; raising from it rolls the whole import back.
StagedCheck = Callable[[list[RepeatedKey], int], None]
