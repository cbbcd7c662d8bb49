"""The PostgreSQL backend: the source of truth, positions computed live from the board indexes."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from datetime import timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from psycopg import sql

from backends.postgres import badges, held_writes
from backends.postgres.council import read_council
from backends.postgres.pool import Connection, Pool, fetch_community, pooled
from backends.postgres.score_writes import apply_score_stream
from backends.protocol import (
    BOARDS,
    FORMER_KEPT,
    BadgeChange,
    BadgeEntry,
    BadgeFacts,
    BadgeOutcome,
    Board,
    Community,
    Council,
    EligibilityResult,
    HeldOutcome,
    HeldWrite,
    InvalidInput,
    PositionRows,
    Profile,
    RankedEntry,
    ScoreBatches,
    ScoreRecord,
    ScoreUpdate,
    SnapshotInfo,
    TenantContext,
    ThresholdRows,
    utcnow,
)

log = logging.getLogger(__name__)

HISTORY_RETENTION = timedelta(days=90)

# Queries follow the board index (community, -score, joined_at, profile_id), whose ascending order is the
# board order, and the fences of schema 007: "ahead of me" is the fences before mine plus a count inside
# mine, and "next to me" is a row comparison on one index range.
_KEY = "(-x.{s}, x.joined_at, x.profile_id)"
_FENCE_KEY = "(f.neg_score, f.joined_at, f.profile_id)"

# The member's row, the fence holding it (a lateral read, so the member's key bounds the index scan), and
# its rank: 1 + the members of the fences before + those ahead of it in its own.
_FROM_MEMBER = f"""
  FROM m CROSS JOIN LATERAL (
    SELECT f.neg_score, f.joined_at, f.profile_id FROM board_fences f
     WHERE f.community_id = %(community)s AND f.board = %(board)s
       AND {_FENCE_KEY} <= (-m.score, m.joined_at, m.profile_id)
     ORDER BY f.neg_score DESC, f.joined_at DESC, f.profile_id DESC LIMIT 1
  ) mf"""
_MEMBER_ROW = """
    SELECT s.profile_id, s.{s} AS score, s.joined_at, p.nym, p.wallet_address
      FROM scores s JOIN profiles p USING (profile_id)
     WHERE s.community_id = %(community)s AND s.profile_id = %(profile_id)s AND s.{s} > 0"""
_MEMBER_SELECT = f"""
SELECT m.profile_id, m.score, m.nym, m.wallet_address,
       1 + (SELECT coalesce(sum(f.members), 0) FROM board_fences f
             WHERE f.community_id = %(community)s AND f.board = %(board)s
               AND {_FENCE_KEY} < (mf.neg_score, mf.joined_at, mf.profile_id))
         + (SELECT count(*) FROM scores x
             WHERE x.community_id = %(community)s AND x.{{s}} > 0
               AND {_KEY} >= (mf.neg_score, mf.joined_at, mf.profile_id)
               AND {_KEY} < (-m.score, m.joined_at, m.profile_id)) AS rank"""
_MEMBER = "WITH m AS (" + _MEMBER_ROW + ")" + _MEMBER_SELECT

# The nearest row before (`<`, descending) or after (`>`, ascending) the member's key.
_BESIDE = """
  LEFT JOIN LATERAL (
    SELECT x.profile_id, x.{{s}} AS score, p.nym, p.wallet_address FROM scores x JOIN profiles p USING (profile_id)
     WHERE x.community_id = %(community)s AND x.{{s}} > 0
       AND (-x.{{s}}, x.joined_at, x.profile_id) {op} (-m.score, m.joined_at, m.profile_id)
     ORDER BY -x.{{s}} {order}, x.joined_at {order}, x.profile_id {order} LIMIT 1
  ) {alias} ON true"""

_NEIGHBOURS_SELECT = (
    _MEMBER_SELECT
    + """,
       a.profile_id AS a_id, a.score AS a_score, a.nym AS a_nym, a.wallet_address AS a_wallet,
       b.profile_id AS b_id, b.score AS b_score, b.nym AS b_nym, b.wallet_address AS b_wallet
"""
    + _FROM_MEMBER
    + _BESIDE.format(op="<", order="DESC", alias="a")
    + _BESIDE.format(op=">", order="ASC", alias="b")
)
_NEIGHBOURS = "WITH m AS (" + _MEMBER_ROW + ")" + _NEIGHBOURS_SELECT

# A range starts at the fence holding its first rank: the members before that fence come from the fence
# counts, and only the rest of the way is walked in the index. The fences are summed from the nearer end of
# the board, so the last page reads as few fences as page 1 (from the bottom, the members before a fence
# are the ranked count less those from it on); only the branch the one-time filter picks is read. Every
# fence but the first holds at least one member (128 to 1,024), so the fence holding the k-th rank from
# an end is among the first k + 1 from that end: the limit lets the planner read just those, in index
# order, instead of sorting every fence of the board.
_START_IN = """
    SELECT * FROM (
        SELECT f.neg_score, f.joined_at AS fence_joined_at, f.profile_id AS fence_profile_id, f.members,
               {before} AS before
          FROM (SELECT * FROM board_fences f WHERE f.community_id = %(community)s AND f.board = %(board)s
                 ORDER BY f.neg_score {order}, f.joined_at {order}, f.profile_id {order} LIMIT {within}) f
    ) fences
     WHERE before < %(first)s AND before + members >= %(first)s AND {side}
     ORDER BY neg_score {order}, fence_joined_at {order}, fence_profile_id {order} LIMIT 1"""
_START_FROM_TOP = _START_IN.format(
    before="sum(f.members) OVER (ORDER BY f.neg_score, f.joined_at, f.profile_id) - f.members",
    within="%(first)s + 1",
    side="%(first)s * 2 <= (SELECT n FROM ranked)",
    order="ASC",
)
_START_FROM_BOTTOM = _START_IN.format(
    before="(SELECT n FROM ranked)"
    " - sum(f.members) OVER (ORDER BY f.neg_score DESC, f.joined_at DESC, f.profile_id DESC)",
    within="greatest((SELECT n FROM ranked) - %(first)s + 2, 0)",
    side="%(first)s * 2 > (SELECT n FROM ranked)",
    order="DESC",
)
_RANGE = f"""
WITH ranked AS (
    SELECT {{ranked}} AS n FROM communities WHERE community_id = %(community)s
), start AS (
    ({_START_FROM_TOP}
    ) UNION ALL ({_START_FROM_BOTTOM}
    )
)
SELECT s.profile_id, s.score, s.joined_at, p.nym, p.wallet_address FROM start CROSS JOIN LATERAL (
    SELECT x.profile_id, x.{{s}} AS score, x.joined_at FROM scores x
     WHERE x.community_id = %(community)s AND x.{{s}} > 0
       AND {_KEY} >= (start.neg_score, start.fence_joined_at, start.fence_profile_id)
     ORDER BY -x.{{s}}, x.joined_at, x.profile_id
    OFFSET %(first)s - 1 - start.before LIMIT %(limit)s
) s JOIN profiles p USING (profile_id) ORDER BY -s.score, s.joined_at, s.profile_id"""

# The ranked members ahead of a key that is no member's (a score with a join time before or after any):
# the fences before the one holding the key, plus a count inside that fence.
_AHEAD_OF = f"""
WITH k AS (SELECT %(neg)s::numeric AS neg, %(joined)s::timestamptz AS joined_at, %(pid)s::uuid AS profile_id),
kf AS (
    SELECT f.neg_score, f.joined_at, f.profile_id FROM k CROSS JOIN LATERAL (
        SELECT f.neg_score, f.joined_at, f.profile_id FROM board_fences f
         WHERE f.community_id = %(community)s AND f.board = %(board)s
           AND {_FENCE_KEY} <= (k.neg, k.joined_at, k.profile_id)
         ORDER BY f.neg_score DESC, f.joined_at DESC, f.profile_id DESC LIMIT 1) f
)
SELECT (SELECT coalesce(sum(f.members), 0) FROM board_fences f, kf
         WHERE f.community_id = %(community)s AND f.board = %(board)s
           AND {_FENCE_KEY} < (kf.neg_score, kf.joined_at, kf.profile_id))
     + (SELECT count(*) FROM scores x, kf, k
         WHERE x.community_id = %(community)s AND x.{{s}} > 0
           AND {_KEY} >= (kf.neg_score, kf.joined_at, kf.profile_id)
           AND {_KEY} < (k.neg, k.joined_at, k.profile_id)) AS ahead"""
# /position in one statement: the caller's profile by Discord id, their neighbours as above (on the
# conviction board), and the entry row by `_RANGE`, gated on the member ranking below it (a filter on the
# outer row alone, so the range is not read at all for a member inside the top F or not ranked).
_POSITION_OF_USER = (
    """
WITH u AS (
    SELECT profile_id, community_id, joined_at, discord_user_id, wallet_address, nym FROM profiles
     WHERE community_id = %(community)s AND discord_user_id = %(user)s
), m AS (
    SELECT s.profile_id, s.conviction AS score, s.joined_at, u.nym, u.wallet_address
      FROM u JOIN scores s ON s.community_id = %(community)s AND s.profile_id = u.profile_id AND s.conviction > 0
), n AS ("""
    + _NEIGHBOURS_SELECT
    + """
)
SELECT u.profile_id AS u_id, u.community_id AS u_community, u.joined_at AS u_joined_at,
       u.discord_user_id AS u_user, u.wallet_address AS u_wallet, u.nym AS u_nym,
       n.profile_id, n.score, n.nym, n.wallet_address, n.rank,
       n.a_id, n.a_score, n.a_nym, n.a_wallet, n.b_id, n.b_score, n.b_nym, n.b_wallet,
       e.profile_id AS e_id, e.score AS e_score, e.nym AS e_nym, e.wallet_address AS e_wallet
  FROM u LEFT JOIN n ON true
  LEFT JOIN LATERAL (SELECT * FROM ("""
    + _RANGE
    + """) r WHERE n.rank > %(first)s) e ON true"""
)
# /threshold in one statement: the community's ranked count and score version, and `_RANGE` beside them
# (no rows when fewer than `first` are ranked), in board order.
_THRESHOLD = (
    """
SELECT c.ranked_conviction AS ranked, c.score_version, r.profile_id, r.score, r.nym, r.wallet_address
  FROM communities c LEFT JOIN LATERAL (SELECT * FROM ("""
    + _RANGE
    + """) q WHERE c.ranked_conviction >= %(first)s) r ON true
 WHERE c.community_id = %(community)s
 ORDER BY -r.score, r.joined_at, r.profile_id"""
)
_FIRST_UUID = UUID(int=0)
_LAST_UUID = UUID(int=2**128 - 1)


def _col(board: Board) -> sql.Identifier:
    if board not in BOARDS:
        raise InvalidInput(f"unknown board {board!r}")
    return sql.Identifier(board)


def _on_board(query: str, board: Board) -> sql.Composed:
    """`query` with `{s}` the board's score column and `{ranked}` the community's ranked count of it."""
    return sql.SQL(query).format(s=_col(board), ranked=sql.Identifier(f"ranked_{board}"))


class PostgresBackend:
    """Implements `backends.protocol.Backend` on a psycopg async pool."""

    name = "postgres"
    concurrent_reads = False

    def __init__(self, pool: Pool, *, outbox: bool = False) -> None:
        """`outbox=True` leaves every score event unmirrored until a copy (Scylla) has it."""
        self.pool = pool
        self.outbox = outbox

    def connection(self) -> AbstractAsyncContextManager[Connection]:
        """A pooled connection in autocommit: every method here runs one statement, or several inside
        `conn.transaction()`. Driver failures leave as the Protocol's error types."""
        return pooled(self.pool, autocommit=True)

    async def health(self) -> None:
        async with self.connection() as conn:
            await conn.execute("SELECT 1")

    async def get_community(self, ctx: TenantContext) -> Community | None:
        async with self.connection() as conn:
            return await fetch_community(conn, ctx.community_id)

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
        row = await self._fetch_member(_MEMBER + _FROM_MEMBER, ctx, board, profile_id)
        return (
            RankedEntry(int(row["rank"]), row["profile_id"], row["score"], row["nym"], row["wallet_address"])
            if row
            else None
        )

    async def get_neighbours(
        self, ctx: TenantContext, board: Board, profile_id: UUID
    ) -> tuple[RankedEntry | None, RankedEntry | None, RankedEntry | None]:
        """The member and the rows beside them in one statement, read by key from the member's own row."""
        row = await self._fetch_member(_NEIGHBOURS, ctx, board, profile_id)
        if row is None:
            return None, None, None
        rank = int(row["rank"])  # a sum of counts: numeric in PostgreSQL
        me = RankedEntry(rank, row["profile_id"], row["score"], row["nym"], row["wallet_address"])
        above = (
            RankedEntry(rank - 1, row["a_id"], row["a_score"], row["a_nym"], row["a_wallet"]) if row["a_id"] else None
        )
        below = (
            RankedEntry(rank + 1, row["b_id"], row["b_score"], row["b_nym"], row["b_wallet"]) if row["b_id"] else None
        )
        return above, me, below

    async def get_position_rows(self, ctx: TenantContext, discord_user_id: int, entry_rank: int) -> PositionRows:
        """One statement: the profile, the member and the rows beside them, and the entry row when needed."""
        first = max(entry_rank, 1)
        params = {
            "community": ctx.community_id,
            "user": discord_user_id,
            "board": "conviction",
            "first": first,
            "limit": 1,
        }
        async with self.connection() as conn:
            cur = await conn.execute(_on_board(_POSITION_OF_USER, "conviction"), params)
            row = await cur.fetchone()
        if row is None:
            return PositionRows(None)
        profile = Profile(
            row["u_id"], row["u_community"], row["u_joined_at"], row["u_user"], row["u_wallet"], row["u_nym"]
        )
        if row["profile_id"] is None:
            return PositionRows(profile)
        rank = int(row["rank"])
        me = RankedEntry(rank, row["profile_id"], row["score"], row["nym"], row["wallet_address"])
        above = (
            RankedEntry(rank - 1, row["a_id"], row["a_score"], row["a_nym"], row["a_wallet"]) if row["a_id"] else None
        )
        below = (
            RankedEntry(rank + 1, row["b_id"], row["b_score"], row["b_nym"], row["b_wallet"]) if row["b_id"] else None
        )
        entry = RankedEntry(first, row["e_id"], row["e_score"], row["e_nym"], row["e_wallet"]) if row["e_id"] else None
        return PositionRows(profile, above, me, below, entry)

    async def get_threshold_rows(self, ctx: TenantContext, first_rank: int, last_rank: int) -> ThresholdRows:
        """One statement: the ranked count, the rows first..last and the score version they are at."""
        first = max(first_rank, 1)
        if last_rank < first:
            ranked = await self.count_ranked(ctx, "conviction")
            return ThresholdRows(ranked, [], await self.snapshot_info(ctx, "conviction"))
        params = {"community": ctx.community_id, "board": "conviction", "first": first, "limit": last_rank - first + 1}
        async with self.connection() as conn:
            cur = await conn.execute(_on_board(_THRESHOLD, "conviction"), params)
            rows = await cur.fetchall()
        if not rows:  # the community is not in the source of truth
            return ThresholdRows(0, [], SnapshotInfo(as_of=utcnow(), score_version=0, live=True))
        entries = [
            RankedEntry(first + i, r["profile_id"], r["score"], r["nym"], r["wallet_address"])
            for i, r in enumerate(r for r in rows if r["profile_id"] is not None)
        ]
        info = SnapshotInfo(as_of=utcnow(), score_version=int(rows[0]["score_version"]), live=True)
        return ThresholdRows(int(rows[0]["ranked"]), entries, info)

    async def _fetch_member(
        self, query: str, ctx: TenantContext, board: Board, profile_id: UUID
    ) -> dict[str, Any] | None:
        statement = _on_board(query, board)
        async with self.connection() as conn:
            cur = await conn.execute(
                statement, {"community": ctx.community_id, "profile_id": profile_id, "board": board}
            )
            return await cur.fetchone()

    async def get_range(self, ctx: TenantContext, board: Board, first_rank: int, last_rank: int) -> list[RankedEntry]:
        first_rank = max(first_rank, 1)
        if last_rank < first_rank:
            return []
        params = {
            "community": ctx.community_id,
            "board": board,
            "first": first_rank,
            "limit": last_rank - first_rank + 1,
        }
        async with self.connection() as conn:
            cur = await conn.execute(_on_board(_RANGE, board), params)
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

    async def count_above(self, ctx: TenantContext, board: Board, score: Decimal, *, inclusive: bool = False) -> int:
        """The rank of a key between members: above `score` only, or every member on `score` too."""
        params = {
            "community": ctx.community_id,
            "board": board,
            "neg": score.copy_negate(),
            "joined": "infinity" if inclusive else "-infinity",
            "pid": _LAST_UUID if inclusive else _FIRST_UUID,
        }
        async with self.connection() as conn:
            cur = await conn.execute(_on_board(_AHEAD_OF, board), params)
            row = await cur.fetchone()
        return int(row["ahead"]) if row else 0

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
        versions = await self.apply_score_batches([(ctx.community_id, updates)], enqueue=enqueue)
        return versions[ctx.community_id]

    async def apply_score_batches(self, batches: ScoreBatches, *, enqueue: bool | None = None) -> dict[int, int]:
        """`apply_score_updates` for a stream of any length: every (community, updates) batch, read one
        after another, in one transaction (all or nothing). Returns each community's new score version."""
        queue = self.outbox if enqueue is None else enqueue
        async with self.connection() as conn, conn.transaction():
            return await apply_score_stream(conn, batches, mirrored=not queue)

    async def apply_score_requests(
        self, community_id: int, requests: Sequence[Sequence[ScoreUpdate]], *, enqueue: bool | None = None
    ) -> int | list[HeldWrite]:
        queue = self.outbox if enqueue is None else enqueue
        async with self.connection() as conn, conn.transaction():
            if await held_writes.held_back(conn, community_id):
                return await held_writes.hold_scores(conn, community_id, requests)
            batch = [u for request in requests for u in request]
            versions = await apply_score_stream(conn, [(community_id, batch)], mirrored=not queue, bulk=False)
            return versions[community_id]

    async def apply_or_hold_badges(
        self, ctx: TenantContext, changes: Sequence[BadgeChange], *, enqueue: bool | None = None
    ) -> BadgeOutcome | HeldWrite:
        queue = self.outbox if enqueue is None else enqueue
        async with self.connection() as conn, conn.transaction():
            if await held_writes.held_back(conn, ctx.community_id):
                return await held_writes.hold_badges(conn, ctx.community_id, changes)
            return await badges.apply_badge_changes(conn, ctx.community_id, changes, mirrored=not queue)

    async def settle_held(self, community_id: int, *, enqueue: bool | None = None) -> list[HeldOutcome]:
        queue = self.outbox if enqueue is None else enqueue
        async with self.connection() as conn, conn.transaction():
            return await held_writes.settle(conn, community_id, mirrored=not queue)

    async def held_communities(self) -> list[int]:
        async with self.connection() as conn:
            return await held_writes.held_communities(conn)

    async def held_outcome(self, community_id: int, write_id: int) -> HeldOutcome | None:
        async with self.connection() as conn:
            return await held_writes.held_outcome(conn, community_id, write_id)

    async def recalculate(self, ctx: TenantContext, board: Board) -> int:
        """Live positions need no rebuild; this trims score history past its retention."""
        async with self.connection() as conn:
            await conn.execute(
                "DELETE FROM score_events WHERE community_id = %s AND created_at < now() - %s",
                (ctx.community_id, HISTORY_RETENTION),
            )
        return await self.count_ranked(ctx, board)

    async def get_badge_board(self, ctx: TenantContext, limit: int) -> list[BadgeEntry]:
        async with self.connection() as conn:
            return await badges.badge_board(conn, ctx.community_id, limit)

    async def get_badge_count(self, ctx: TenantContext, profile_id: UUID) -> int:
        async with self.connection() as conn:
            return await badges.badge_count(conn, ctx.community_id, profile_id)

    async def count_badge_holders_above(self, ctx: TenantContext, held: int) -> int:
        async with self.connection() as conn:
            return await badges.holders_above(conn, ctx.community_id, held)

    async def get_badge_facts(self, ctx: TenantContext) -> BadgeFacts:
        async with self.connection() as conn:
            return await badges.badge_facts(conn, ctx.community_id)

    async def get_council(self, ctx: TenantContext, former_limit: int = FORMER_KEPT) -> Council:
        """Read at one moment: the seats, the former members and their count agree."""
        async with self.connection() as conn, conn.transaction():
            await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            return await read_council(conn, ctx.community_id, former_limit)

    async def apply_badge_changes(
        self, ctx: TenantContext, changes: Sequence[BadgeChange], *, enqueue: bool | None = None
    ) -> BadgeOutcome:
        """Apply the changes in order in one transaction (all or none); each change of a member's badges
        raises the score version once and queues the member for the copies like a score write."""
        queue = self.outbox if enqueue is None else enqueue
        async with self.connection() as conn, conn.transaction():
            return await badges.apply_badge_changes(conn, ctx.community_id, changes, mirrored=not queue)
