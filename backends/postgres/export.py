"""The source of truth as the copy pipeline reads it (`backends.copies.CopySource`): member states,
the outbox of score events, versions."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg import AsyncConnection

from backends.copies import BadgeMove
from backends.postgres.badges import badge_facts, badge_histogram
from backends.postgres.council import read_council
from backends.postgres.pool import Pool, fetch_community, pooled
from backends.protocol import BackendConflict, BadgeFacts, Community, Council, MemberState, Profile, ScoreEvent

_STATE = (
    "SELECT p.profile_id, p.community_id, p.joined_at, p.discord_user_id, p.wallet_address, p.nym,"
    " coalesce(s.conviction, 0) AS conviction, coalesce(s.activity, 0) AS activity,"
    " coalesce(s.updated_at, p.joined_at) AS updated_at, coalesce(b.held, 0) AS badges"
    " FROM profiles p LEFT JOIN scores s ON s.profile_id = p.profile_id"
    " LEFT JOIN badge_counts b ON b.profile_id = p.profile_id"
)

Conn = AsyncConnection[dict[str, Any]]


def _state(row: dict[str, Any]) -> MemberState:
    profile = Profile(
        row["profile_id"],
        row["community_id"],
        row["joined_at"],
        row["discord_user_id"],
        row["wallet_address"],
        row["nym"],
    )
    return MemberState(profile, row["conviction"], row["activity"], row["updated_at"], int(row["badges"]))


async def score_version(conn: Conn, community_id: int) -> int | None:
    cur = await conn.execute("SELECT score_version FROM communities WHERE community_id = %s", (community_id,))
    row = await cur.fetchone()
    return int(row["score_version"]) if row else None


async def copy_floor(conn: Conn, community_id: int) -> int:
    cur = await conn.execute("SELECT copy_floor FROM communities WHERE community_id = %s", (community_id,))
    row = await cur.fetchone()
    return int(row["copy_floor"]) if row else 0


async def member_states(conn: Conn, community_id: int, profile_ids: Sequence[UUID]) -> list[MemberState]:
    cur = await conn.execute(
        _STATE + " WHERE p.community_id = %s AND p.profile_id = ANY(%s)", (community_id, list(profile_ids))
    )
    return [_state(r) for r in await cur.fetchall()]


async def member_states_after(conn: Conn, community_id: int, after: UUID | None, limit: int) -> list[MemberState]:
    """The next `limit` members in profile id order: a resumable walk over a community."""
    cur = await conn.execute(
        _STATE + " WHERE p.community_id = %s AND (%s::uuid IS NULL OR p.profile_id > %s)"
        " ORDER BY p.profile_id LIMIT %s",
        (community_id, after, after, limit),
    )
    return [_state(r) for r in await cur.fetchall()]


async def count_members(conn: Conn, community_id: int) -> int:
    cur = await conn.execute("SELECT count(*) AS n FROM profiles WHERE community_id = %s", (community_id,))
    row = await cur.fetchone()
    return int(row["n"]) if row else 0


async def community_ids(conn: Conn) -> list[int]:
    cur = await conn.execute("SELECT community_id FROM communities ORDER BY community_id")
    return [r["community_id"] for r in await cur.fetchall()]


# A write of more events than this is copied in parts (readers of the copy may see a part for a moment).
WHOLE_WRITES_UP_TO = 10_000


async def claim_unmirrored(conn: Conn, limit: int) -> list[tuple[int, ScoreEvent]]:
    """The oldest events no copy has yet, locked for this transaction; other flushers skip them.

    Every event of a write (one score version of one community) among the oldest `limit` comes with them,
    so the copy receives, and shows, each write whole."""
    cur = await conn.execute(
        "SELECT event_id, community_id, profile_id, board, event_type, delta, value_after, tx_hash, created_at"
        " FROM score_events WHERE NOT mirrored AND (community_id, score_version) IN ("
        "   SELECT community_id, score_version FROM score_events WHERE NOT mirrored ORDER BY event_id LIMIT %s)"
        " ORDER BY event_id LIMIT %s FOR UPDATE SKIP LOCKED",
        (limit, max(limit, WHOLE_WRITES_UP_TO)),
    )
    return [
        (
            r["community_id"],
            ScoreEvent(
                r["event_id"],
                r["profile_id"],
                r["board"],
                r["event_type"],
                r["delta"],
                r["value_after"],
                r["tx_hash"],
                r["created_at"],
            ),
        )
        for r in await cur.fetchall()
    ]


async def claim_badge_events(conn: Conn, limit: int) -> list[tuple[int, BadgeMove]]:
    """The oldest badge changes no copy has yet, as (event id, change), locked like score events."""
    cur = await conn.execute(
        "SELECT event_id, community_id, profile_id, held_before FROM badge_events WHERE NOT mirrored"
        " ORDER BY event_id LIMIT %s FOR UPDATE SKIP LOCKED",
        (limit,),
    )
    return [
        (r["event_id"], BadgeMove(r["community_id"], r["profile_id"], int(r["held_before"])))
        for r in await cur.fetchall()
    ]


async def mark_mirrored(conn: Conn, event_ids: Sequence[int], badge_event_ids: Sequence[int] = ()) -> None:
    await conn.execute("UPDATE score_events SET mirrored = true WHERE event_id = ANY(%s)", (list(event_ids),))
    if badge_event_ids:
        await conn.execute("UPDATE badge_events SET mirrored = true WHERE event_id = ANY(%s)", (list(badge_event_ids),))


# Score events and badge changes alike wait in the outbox.
_UNMIRRORED = (
    "(SELECT community_id, created_at FROM score_events WHERE NOT mirrored"
    " UNION ALL SELECT community_id, created_at FROM badge_events WHERE NOT mirrored) e"
)


async def count_unmirrored(conn: Conn, community_id: int | None = None) -> int:
    cur = await conn.execute(
        f"SELECT count(*) AS n FROM {_UNMIRRORED} WHERE (%s::bigint IS NULL OR community_id = %s)",
        (community_id, community_id),
    )
    row = await cur.fetchone()
    return int(row["n"]) if row else 0


async def oldest_unmirrored(conn: Conn, community_id: int | None = None) -> datetime | None:
    """When the oldest event no copy has yet was written: the community's, or any community's."""
    cur = await conn.execute(
        f"SELECT min(created_at) AS oldest FROM {_UNMIRRORED} WHERE (%s::bigint IS NULL OR community_id = %s)",
        (community_id, community_id),
    )
    row = await cur.fetchone()
    return row["oldest"] if row else None


class _View:
    """Reads inside one REPEATABLE READ transaction: every state is the state at the version read."""

    def __init__(self, conn: Conn) -> None:
        self._conn = conn

    async def score_version(self, community_id: int) -> int | None:
        return await score_version(self._conn, community_id)

    async def copy_floor(self, community_id: int) -> int:
        return await copy_floor(self._conn, community_id)

    async def member_states(self, community_id: int, profile_ids: Sequence[UUID]) -> list[MemberState]:
        return await member_states(self._conn, community_id, profile_ids)

    async def member_states_after(self, community_id: int, after: UUID | None, limit: int) -> list[MemberState]:
        return await member_states_after(self._conn, community_id, after, limit)

    async def badge_histogram(self, community_id: int) -> dict[int, int]:
        return await badge_histogram(self._conn, community_id)

    async def badge_facts(self, community_id: int) -> BadgeFacts:
        return await badge_facts(self._conn, community_id)

    async def council_version(self, community_id: int) -> int:
        cur = await self._conn.execute(
            "SELECT council_version FROM communities WHERE community_id = %s", (community_id,)
        )
        row = await cur.fetchone()
        return int(row["council_version"]) if row else 0

    async def council(self, community_id: int) -> Council:
        return await read_council(self._conn, community_id)


class _Batch(_View):
    def __init__(
        self, conn: Conn, events: Sequence[tuple[int, ScoreEvent]], badge_events: Sequence[tuple[int, BadgeMove]]
    ) -> None:
        super().__init__(conn)
        self.events = events
        self.badge_moves: Sequence[BadgeMove] = [move for _, move in badge_events]
        self.badge_event_ids = [event_id for event_id, _ in badge_events]


CLAIM_ATTEMPTS = 5


class PostgresCopySource:
    """Implements `backends.copies.CopySource` on the source of truth's pool."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    @asynccontextmanager
    async def consistent_view(self) -> AsyncIterator[_View]:
        async with pooled(self._pool) as conn, conn.transaction():
            await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            yield _View(conn)

    @asynccontextmanager
    async def outbox_batch(self, limit: int) -> AsyncIterator[_Batch]:
        """Claimed events leave the outbox in the transaction that claimed them, once the caller's copy
        landed (the block exits without an error).

        Two relays claiming at once can meet on an event the other marked after this transaction's snapshot:
        PostgreSQL refuses the claim as a serialization failure (`BackendConflict`). The claim is then made again
        in a new transaction (the other relay's events are gone from the outbox by then), a few times."""
        for attempt in range(1, CLAIM_ATTEMPTS + 1):
            claimed = False
            try:
                async with pooled(self._pool) as conn, conn.transaction():
                    await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                    batch = _Batch(conn, await claim_unmirrored(conn, limit), await claim_badge_events(conn, limit))
                    claimed = True
                    yield batch
                    await mark_mirrored(conn, [e.event_id for _, e in batch.events], batch.badge_event_ids)
                return
            except BackendConflict:
                if claimed or attempt == CLAIM_ATTEMPTS:
                    raise
            await asyncio.sleep(random.uniform(0.01, 0.05) * attempt)

    async def pending(self, community_id: int | None = None) -> int:
        async with pooled(self._pool) as conn:
            return await count_unmirrored(conn, community_id)

    async def oldest_pending(self, community_id: int | None = None) -> datetime | None:
        async with pooled(self._pool) as conn:
            return await oldest_unmirrored(conn, community_id)

    async def community(self, community_id: int) -> Community | None:
        async with pooled(self._pool) as conn:
            return await fetch_community(conn, community_id)

    async def community_ids(self) -> list[int]:
        async with pooled(self._pool) as conn:
            return await community_ids(conn)

    async def count_members(self, community_id: int) -> int:
        async with pooled(self._pool) as conn:
            return await count_members(conn, community_id)

    async def score_version(self, community_id: int) -> int | None:
        async with pooled(self._pool) as conn:
            return await score_version(conn, community_id)

    async def copy_floor(self, community_id: int) -> int:
        async with pooled(self._pool) as conn:
            return await copy_floor(conn, community_id)
