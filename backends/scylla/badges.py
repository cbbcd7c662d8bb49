"""The badge board on the Scylla copy: its writes (rows of `badge_board`, `badge_histogram`, `badge_facts`,
stamped with the score version like member states) and its reads, each one keyed read."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from backends.protocol import BadgeEntry, BadgeFacts, MemberState
from backends.scylla.session import CqlSession
from backends.scylla.tables import Tables, from_micros, to_micros

MOST_BADGES = 12  # one of each type

Statement = tuple[str, tuple[Any, ...]]


class BadgeTables:
    def __init__(self, cql: CqlSession, tables: Tables) -> None:
        self.cql = cql
        self.t = tables

    # --- writes -------------------------------------------------------------------------------------

    def places(self, community_id: int, states: Sequence[MemberState], version: int) -> list[Statement]:
        """The board place of each member holding a badge (members with none have no row to write)."""
        query = (
            f"INSERT INTO {self.t.badge_board} (community_id, held, joined_at_us, profile_id, nym, wallet_address)"
            f" VALUES (?, ?, ?, ?, ?, ?) USING TIMESTAMP ?"
        )
        return [
            (
                query,
                (
                    community_id,
                    s.badges,
                    to_micros(s.profile.joined_at),
                    s.profile.profile_id,
                    s.profile.nym,
                    s.profile.wallet_address,
                    version,
                ),
            )
            for s in states
            if s.badges > 0
        ]

    def clear(self, community_id: int, held: int, joined_at_us: int, profile_id: UUID, version: int) -> Statement:
        return (
            f"DELETE FROM {self.t.badge_board} USING TIMESTAMP ? WHERE community_id = ? AND held = ?"
            f" AND joined_at_us = ? AND profile_id = ?",
            (version, community_id, held, joined_at_us, profile_id),
        )

    def counts(self, community_id: int, histogram: dict[int, int], facts: BadgeFacts, version: int) -> list[Statement]:
        """Every count's row (0 where nobody holds it: overwritten, never deleted) and the facts row."""
        row = f"INSERT INTO {self.t.badge_histogram} (community_id, held, members) VALUES (?, ?, ?) USING TIMESTAMP ?"
        launched = None if facts.launched_at is None else to_micros(facts.launched_at)
        return [
            *((row, (community_id, held, histogram.get(held, 0), version)) for held in range(1, MOST_BADGES + 1)),
            (
                f"INSERT INTO {self.t.badge_facts} (community_id, members, launched_at_us) VALUES (?, ?, ?)"
                f" USING TIMESTAMP ?",
                (community_id, facts.members, launched, version),
            ),
        ]

    def forget(self, community_id: int, older_than: int) -> Statement:
        """One partition tombstone: places written at `older_than` or later survive it."""
        return (
            f"DELETE FROM {self.t.badge_board} USING TIMESTAMP ? WHERE community_id = ?",
            (older_than - 1, community_id),
        )

    # --- reads --------------------------------------------------------------------------------------

    async def board(self, community_id: int, limit: int) -> list[BadgeEntry]:
        if limit < 1:
            return []
        rows = await self.cql.execute(
            f"SELECT held, joined_at_us, profile_id, nym, wallet_address FROM {self.t.badge_board}"
            f" WHERE community_id = ? LIMIT ?",
            (community_id, limit),
        )
        return [BadgeEntry(r.profile_id, from_micros(r.joined_at_us), r.held, r.nym, r.wallet_address) for r in rows]

    async def holders_above(self, community_id: int, held: int) -> int:
        rows = await self.cql.execute(
            f"SELECT held, members FROM {self.t.badge_histogram} WHERE community_id = ?", (community_id,)
        )
        return sum(r.members or 0 for r in rows if r.held > held)

    async def facts(self, community_id: int) -> BadgeFacts:
        rows = await self.cql.execute(
            f"SELECT members, launched_at_us FROM {self.t.badge_facts} WHERE community_id = ?", (community_id,)
        )
        if not rows:
            return BadgeFacts(0, None)
        r = rows[0]
        return BadgeFacts(r.members or 0, None if r.launched_at_us is None else from_micros(r.launched_at_us))
