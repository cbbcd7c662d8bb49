"""The PostgreSQL backend: the source of truth, positions computed live from the board indexes."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any
from uuid import UUID

import psycopg
from psycopg import AsyncConnection, sql
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from backends.postgres.score_writes import apply_updates
from backends.protocol import (
    BOARDS,
    BackendTimeout,
    BackendUnavailable,
    Board,
    Community,
    EligibilityResult,
    InvalidInput,
    Profile,
    RankedEntry,
    ScoreRecord,
    ScoreUpdate,
    SnapshotInfo,
    TenantContext,
    utcnow,
)

log = logging.getLogger(__name__)

HISTORY_RETENTION = timedelta(days=90)

# The board's sort key, negated so the index's ascending order is the board order (see the schema).
_AHEAD_OF = "(-{s}, joined_at, profile_id) < (-%(score)s::numeric, %(joined_at)s, %(profile_id)s)"


def _col(board: Board) -> sql.Identifier:
    if board not in BOARDS:
        raise InvalidInput(f"unknown board {board!r}")
    return sql.Identifier(board)


class PostgresBackend:
    """Implements `backends.protocol.Backend` on a psycopg async pool."""

    name = "postgres"

    def __init__(self, pool: AsyncConnectionPool[Any], *, outbox: bool = False) -> None:
        """`outbox=True` leaves every score event unmirrored until a copy (Scylla) has it."""
        self._pool = pool
        self.outbox = outbox

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[AsyncConnection[dict[str, Any]]]:
        """A pooled connection; driver failures leave as the Protocol's error types."""
        try:
            async with self._pool.connection() as conn:
                conn.row_factory = dict_row
                yield conn
        except PoolTimeout as exc:
            raise BackendUnavailable(f"postgres: no connection available ({exc})") from exc
        except psycopg.errors.QueryCanceled as exc:
            raise BackendTimeout(f"postgres: query cancelled ({exc})") from exc
        except psycopg.OperationalError as exc:
            raise BackendUnavailable(f"postgres: {exc}") from exc

    async def health(self) -> None:
        async with self.connection() as conn:
            await conn.execute("SELECT 1")

    async def get_community(self, ctx: TenantContext) -> Community | None:
        async with self.connection() as conn:
            cur = await conn.execute(
                "SELECT community_id, name, fedaykin, naib, at_risk, waitlist_end, page_size,"
                " rate_limit_per_minute FROM communities WHERE community_id = %s",
                (ctx.community_id,),
            )
            row = await cur.fetchone()
        return Community(**row) if row else None

    async def get_profile_by_user(self, ctx: TenantContext, discord_user_id: int) -> Profile | None:
        async with self.connection() as conn:
            cur = await conn.execute(
                "SELECT profile_id, community_id, joined_at, discord_user_id, wallet_address, nym"
                " FROM profiles WHERE community_id = %s AND discord_user_id = %s",
                (ctx.community_id, discord_user_id),
            )
            row = await cur.fetchone()
        return Profile(**row) if row else None

    async def get_score(self, ctx: TenantContext, profile_id: UUID) -> ScoreRecord | None:
        return (await self.get_scores(ctx, [profile_id])).get(profile_id)

    async def get_scores(self, ctx: TenantContext, profile_ids: Sequence[UUID]) -> dict[UUID, ScoreRecord]:
        if not profile_ids:
            return {}
        async with self.connection() as conn:
            cur = await conn.execute(
                "SELECT profile_id, conviction, activity, updated_at FROM scores"
                " WHERE community_id = %s AND profile_id = ANY(%s)",
                (ctx.community_id, list(profile_ids)),
            )
            rows = await cur.fetchall()
        return {row["profile_id"]: ScoreRecord(**row) for row in rows}

    async def get_rank(self, ctx: TenantContext, board: Board, profile_id: UUID) -> RankedEntry | None:
        col = _col(board)
        query = sql.SQL(
            "SELECT s.profile_id, s.{s} AS score, s.joined_at, p.nym, p.wallet_address"
            " FROM scores s JOIN profiles p USING (profile_id)"
            " WHERE s.community_id = %(community)s AND s.profile_id = %(profile_id)s AND s.{s} > 0"
        ).format(s=col)
        count_ahead = sql.SQL(
            "SELECT count(*) AS ahead FROM scores WHERE community_id = %(community)s AND {s} > 0 AND " + _AHEAD_OF
        ).format(s=col)
        async with self.connection() as conn:
            cur = await conn.execute(query, {"community": ctx.community_id, "profile_id": profile_id})
            me = await cur.fetchone()
            if me is None:
                return None
            cur = await conn.execute(count_ahead, {"community": ctx.community_id, **me})
            ahead = await cur.fetchone()
        assert ahead is not None
        return RankedEntry(ahead["ahead"] + 1, me["profile_id"], me["score"], me["nym"], me["wallet_address"])

    async def get_neighbours(
        self, ctx: TenantContext, board: Board, profile_id: UUID
    ) -> tuple[RankedEntry | None, RankedEntry | None, RankedEntry | None]:
        """The rows beside a member are read by key from the member's own row: no scan to their rank."""
        me = await self.get_rank(ctx, board, profile_id)
        if me is None:
            return None, None, None
        async with self.connection() as conn:
            cur = await conn.execute(
                "SELECT joined_at FROM scores WHERE community_id = %s AND profile_id = %s",
                (ctx.community_id, profile_id),
            )
            key = await cur.fetchone()
            assert key is not None
            params = {
                "community": ctx.community_id,
                "score": me.score,
                "joined_at": key["joined_at"],
                "profile_id": profile_id,
            }
            above = await _beside(conn, board, params, "<", "DESC")
            below = await _beside(conn, board, params, ">", "ASC")
        return (
            RankedEntry(me.rank - 1, *above) if above else None,
            me,
            RankedEntry(me.rank + 1, *below) if below else None,
        )

    async def get_range(self, ctx: TenantContext, board: Board, first_rank: int, last_rank: int) -> list[RankedEntry]:
        first_rank = max(first_rank, 1)
        if last_rank < first_rank:
            return []
        query = sql.SQL(
            "SELECT s.profile_id, s.score, p.nym, p.wallet_address FROM ("
            "  SELECT profile_id, {s} AS score, joined_at FROM scores"
            "   WHERE community_id = %(community)s AND {s} > 0"
            "   ORDER BY -{s}, joined_at, profile_id OFFSET %(offset)s LIMIT %(limit)s"
            ") s JOIN profiles p USING (profile_id) ORDER BY -s.score, s.joined_at, s.profile_id"
        ).format(s=_col(board))
        params = {
            "community": ctx.community_id,
            "offset": first_rank - 1,
            "limit": last_rank - first_rank + 1,
        }
        async with self.connection() as conn:
            cur = await conn.execute(query, params)
            rows = await cur.fetchall()
        return [
            RankedEntry(first_rank + i, r["profile_id"], r["score"], r["nym"], r["wallet_address"])
            for i, r in enumerate(rows)
        ]

    async def count_ranked(self, ctx: TenantContext, board: Board) -> int:
        query = sql.SQL("SELECT {c} AS ranked FROM communities WHERE community_id = %s").format(
            c=sql.Identifier(f"ranked_{board}")
        )
        async with self.connection() as conn:
            cur = await conn.execute(query, (ctx.community_id,))
            row = await cur.fetchone()
        return int(row["ranked"]) if row else 0

    async def snapshot_info(self, ctx: TenantContext, board: Board) -> SnapshotInfo:
        async with self.connection() as conn:
            cur = await conn.execute(
                "SELECT score_version FROM communities WHERE community_id = %s", (ctx.community_id,)
            )
            row = await cur.fetchone()
        return SnapshotInfo(as_of=utcnow(), score_version=int(row["score_version"]) if row else 0, live=True)

    async def get_eligibility(self, ctx: TenantContext, profile_id: UUID, rule_id: str) -> EligibilityResult | None:
        async with self.connection() as conn:
            cur = await conn.execute(
                "SELECT profile_id, rule_id, eligible, balance, checked_at FROM eligibility"
                " WHERE community_id = %s AND profile_id = %s AND rule_id = %s AND expires_at > now()",
                (ctx.community_id, profile_id, rule_id),
            )
            row = await cur.fetchone()
        return EligibilityResult(**row) if row else None

    async def put_eligibility(self, ctx: TenantContext, result: EligibilityResult, ttl_seconds: int) -> None:
        async with self.connection() as conn:
            await conn.execute(
                "INSERT INTO eligibility (community_id, profile_id, rule_id, eligible, balance, checked_at,"
                " expires_at) VALUES (%s, %s, %s, %s, %s, %s, %s + make_interval(secs => %s))"
                " ON CONFLICT (community_id, profile_id, rule_id) DO UPDATE SET eligible = EXCLUDED.eligible,"
                " balance = EXCLUDED.balance, checked_at = EXCLUDED.checked_at, expires_at = EXCLUDED.expires_at",
                (
                    ctx.community_id,
                    result.profile_id,
                    result.rule_id,
                    result.eligible,
                    result.balance,
                    result.checked_at,
                    result.checked_at,
                    ttl_seconds,
                ),
            )

    async def delete_eligibility(self, ctx: TenantContext, profile_id: UUID, rule_id: str | None = None) -> None:
        async with self.connection() as conn:
            await conn.execute(
                "DELETE FROM eligibility WHERE community_id = %s AND profile_id = %s"
                " AND (%s::text IS NULL OR rule_id = %s)",
                (ctx.community_id, profile_id, rule_id, rule_id),
            )

    async def apply_score_updates(
        self, ctx: TenantContext, updates: Sequence[ScoreUpdate], *, enqueue: bool | None = None
    ) -> int:
        queue = self.outbox if enqueue is None else enqueue
        async with self.connection() as conn, conn.transaction():
            return await apply_updates(conn, ctx.community_id, updates, mirrored=not queue)

    async def recalculate(self, ctx: TenantContext, board: Board) -> int:
        """Live positions need no rebuild; this trims score history past its retention."""
        async with self.connection() as conn:
            await conn.execute(
                "DELETE FROM score_events WHERE community_id = %s AND created_at < now() - %s",
                (ctx.community_id, HISTORY_RETENTION),
            )
        return await self.count_ranked(ctx, board)


async def _beside(
    conn: AsyncConnection[dict[str, Any]], board: Board, params: dict[str, Any], op: str, order: str
) -> tuple[Any, ...] | None:
    """The next row of the board before (`<`, DESC) or after (`>`, ASC) a key, by the board index."""
    query = sql.SQL(
        "SELECT s.profile_id, s.{s} AS score, p.nym, p.wallet_address FROM scores s JOIN profiles p USING (profile_id)"
        " WHERE s.community_id = %(community)s AND s.{s} > 0"
        " AND (-s.{s}, s.joined_at, s.profile_id) " + op + " (-%(score)s::numeric, %(joined_at)s, %(profile_id)s)"
        " ORDER BY -s.{s} " + order + ", s.joined_at " + order + ", s.profile_id " + order + " LIMIT 1"
    ).format(s=_col(board))
    cur = await conn.execute(query, params)
    row = await cur.fetchone()
    return (row["profile_id"], row["score"], row["nym"], row["wallet_address"]) if row else None
