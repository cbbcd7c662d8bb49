"""Onboarding writes on the source of truth: communities and bulk member imports (CLI, demo, tests)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any
from uuid import UUID

import psycopg
from psycopg import AsyncConnection

from backends.copies import FloorMove
from backends.members import MemberRow, RepeatedKey, StagedCheck
from backends.postgres.council import settle_seats
from backends.postgres.pool import Pool, fetch_community, pooled
from backends.postgres.score_writes import take_bulk
from backends.protocol import Community, InvalidInput

Progress = Callable[[int], None]
REPEATS_KEPT = 100  # rows repeating an earlier row's id that a streamed import names; the rest are counted


async def raise_copy_floor(conn: AsyncConnection[Any], community_id: int) -> FloorMove:
    # The row is locked first: `before` must be the floor this write follows, not the one its statement
    # began with while another transaction held the row.
    cur = await conn.execute(
        "SELECT copy_floor FROM communities WHERE community_id = %s FOR NO KEY UPDATE", (community_id,)
    )
    before = await cur.fetchone()
    assert before is not None
    cur = await conn.execute(
        "UPDATE communities SET score_version = score_version + 1, copy_floor = score_version + 1"
        " WHERE community_id = %s RETURNING copy_floor",
        (community_id,),
    )
    after = await cur.fetchone()
    assert after is not None
    return FloorMove(int(before["copy_floor"]), int(after["copy_floor"]))


class CommunityWrites:
    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def upsert_community(self, community: Community) -> FloorMove:
        """Create or change a community; copies learn of it outside the outbox (see FloorMove)."""
        async with pooled(self._pool) as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO communities (community_id, name, fedaykin, naib, at_risk, waitlist_end, page_size,"
                " rate_limit_per_minute) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (community_id) DO UPDATE SET name = EXCLUDED.name, fedaykin = EXCLUDED.fedaykin,"
                " naib = EXCLUDED.naib, at_risk = EXCLUDED.at_risk, waitlist_end = EXCLUDED.waitlist_end,"
                " page_size = EXCLUDED.page_size, rate_limit_per_minute = EXCLUDED.rate_limit_per_minute",
                (
                    community.community_id,
                    community.name,
                    community.fedaykin,
                    community.naib,
                    community.at_risk,
                    community.waitlist_end,
                    community.page_size,
                    community.rate_limit_per_minute,
                ),
            )
            move = await raise_copy_floor(conn, community.community_id)
            await settle_seats(conn, community.community_id)  # a new F or N
            return move

    async def remove_member(self, community_id: int, discord_user_id: int) -> tuple[UUID, FloorMove] | None:
        """Delete a member (and their scores); return their profile id and how the copy floor moved.

        The community row is locked first, as every score write locks it: a writer holding it may rely
        on its members staying (`backends.postgres.score_writes`)."""
        async with pooled(self._pool) as conn, conn.transaction():
            await conn.execute("SELECT 1 FROM communities WHERE community_id = %s FOR NO KEY UPDATE", (community_id,))
            cur = await conn.execute(
                "DELETE FROM profiles WHERE community_id = %s AND discord_user_id = %s RETURNING profile_id",
                (community_id, discord_user_id),
            )
            row = await cur.fetchone()
            if row is None:
                return None
            move = await raise_copy_floor(conn, community_id)
            await settle_seats(conn, community_id)  # their terms went with them: a seat may be empty
            return row["profile_id"], move

    async def get_community(self, community_id: int) -> Community | None:
        async with pooled(self._pool) as conn:
            return await fetch_community(conn, community_id)

    async def import_members(
        self,
        community_id: int,
        rows: Sequence[MemberRow],
        progress: Progress | None = None,
        *,
        create: Community | None = None,
    ) -> list[UUID]:
        """Insert or update the members and set their scores, all in one transaction.

        Returns the profile ids in the order of `rows`. Either every row lands or none does; `create` is
        the community to create if it does not exist yet, in the same transaction (a failed or killed
        import leaves no empty community behind).
        """
        async with pooled(self._pool) as conn, conn.transaction():
            # Staged by index so the ids come back in the order of `rows`; errors name each row's line.
            await _stage_and_merge(
                conn, community_id, enumerate(rows), lambda index: _where(rows, index), create, None, progress
            )
            cur = await conn.execute("SELECT profile_id FROM incoming ORDER BY line")
            return [r["profile_id"] for r in await cur.fetchall()]

    async def import_member_stream(
        self,
        community_id: int,
        rows: Iterable[MemberRow],
        *,
        create: Community | None = None,
        staged: StagedCheck | None = None,
    ) -> int:
        """`import_members` for a file of any size: each row goes to the staging table as `rows` yields it
        (a generator is read once, lazily; nothing is held in memory), all in one transaction. Returns how
        many rows were imported.

        Rows are named in errors by their `line` (by their position from 1 when they have none). Once every
        row is staged, rows repeating an earlier row's Discord id or wallet are found in SQL and handed to
        `staged` (without it they are refused as `InvalidInput`); an exception from `staged`, from iterating
        `rows` or from the database rolls everything back, the community `create` makes included.
        """
        lined = ((position if row.line is None else row.line, row) for position, row in enumerate(rows, 1))
        async with pooled(self._pool) as conn, conn.transaction():
            return await _stage_and_merge(conn, community_id, lined, _line, create, staged, None)


async def _stage_and_merge(
    conn: AsyncConnection[Any],
    community_id: int,
    rows: Iterable[tuple[int, MemberRow]],
    where: Callable[[int], str],
    create: Community | None,
    staged: StagedCheck | None,
    progress: Progress | None,
) -> int:
    """COPY the (key, row) pairs into `incoming`, refuse repeats, ambiguous rows and identity changes
    (naming rows by `where(key)`), then merge into profiles, score events and scores. Returns the rows."""
    await _open_staging(conn, community_id, create)
    count = 0
    async with conn.cursor().copy(
        "COPY incoming (line, discord_user_id, wallet_address, nym, joined_at, conviction, activity) FROM STDIN"
    ) as copy:
        for key, row in rows:
            await copy.write_row(
                (key, row.discord_user_id, row.wallet_address, row.nym, row.joined_at, row.conviction, row.activity)
            )
            count += 1
            if progress and count % 1000 == 0:
                progress(1000)
    if progress:
        progress(count % 1000)
    await conn.execute("ANALYZE incoming")
    repeats, repeated = await _repeated_keys(conn, REPEATS_KEPT)
    if staged is not None:
        staged(repeats, repeated)
    elif repeats:
        described = "; ".join(
            f"{where(r.line)}: {r.column} {r.value} already appears on {where(r.first_line)}" for r in repeats[:10]
        )
        raise InvalidInput(f"rows repeat a Discord id or wallet, nothing was imported: {described}")
    await take_bulk(conn, community_id)  # the merge has the community until commit: the doors hold meanwhile
    for statement in _MATCH_INCOMING:
        await conn.execute(statement, {"c": community_id})
    await _refuse_identity_changes(conn, where)
    await _refuse_ambiguous_rows(conn, where, community_id)
    await _merge_incoming(conn, community_id)
    await settle_seats(conn, community_id)
    return count


async def _open_staging(conn: AsyncConnection[Any], community_id: int, create: Community | None) -> None:
    """The community (when `create` names one and it does not exist yet) and the staging table `incoming`."""
    if create is not None:
        await conn.execute(
            "INSERT INTO communities (community_id, name) VALUES (%s, %s) ON CONFLICT DO NOTHING",
            (community_id, create.name),
        )
    await conn.execute(
        "CREATE TEMP TABLE incoming (line int, profile_id uuid, discord_user_id bigint,"
        " wallet_address text, nym text, joined_at timestamptz, conviction numeric, activity numeric)"
        " ON COMMIT DROP"
    )


async def _repeated_keys(conn: AsyncConnection[Any], limit: int) -> tuple[list[RepeatedKey], int]:
    """Staged rows whose Discord id or wallet an earlier row already has: the first `limit` by line (a row
    repeating both names its Discord id first), and how many in all."""
    cur = await conn.execute(
        "SELECT line, column_name, value, first_line, count(*) OVER () AS total FROM ("
        "  SELECT line, 0 AS k, 'discord_user_id' AS column_name, discord_user_id::text AS value,"
        "         min(line) OVER (PARTITION BY discord_user_id) AS first_line"
        "    FROM incoming WHERE discord_user_id IS NOT NULL"
        "  UNION ALL"
        "  SELECT line, 1, 'wallet_address', wallet_address, min(line) OVER (PARTITION BY wallet_address)"
        "    FROM incoming WHERE wallet_address IS NOT NULL"
        ") keyed WHERE line <> first_line ORDER BY line, k LIMIT %s",
        (limit,),
    )
    found = await cur.fetchall()
    repeats = [RepeatedKey(r["line"], r["column_name"], r["value"], r["first_line"]) for r in found]
    return repeats, int(found[0]["total"]) if found else 0


async def _merge_incoming(conn: AsyncConnection[Any], community_id: int) -> None:
    try:
        for statement in _MERGE_INCOMING:
            await conn.execute(statement, {"c": community_id})
    except psycopg.errors.UniqueViolation as exc:
        detail = exc.diag.message_detail or str(exc)
        raise InvalidInput(f"the import conflicts with an existing member: {detail}") from exc


async def _refuse_identity_changes(conn: AsyncConnection[Any], where: Callable[[int], str]) -> None:
    """A row matched by wallet must not move that profile to another Discord account."""
    cur = await conn.execute(
        "SELECT i.line, i.wallet_address, p.discord_user_id FROM incoming i JOIN profiles p USING (profile_id)"
        " WHERE i.discord_user_id IS NOT NULL AND p.discord_user_id IS NOT NULL"
        "   AND i.discord_user_id <> p.discord_user_id ORDER BY i.line LIMIT 10"
    )
    clashes = await cur.fetchall()
    if clashes:
        described = "; ".join(
            f"{where(c['line'])}: wallet {c['wallet_address']} belongs to Discord user {c['discord_user_id']}"
            for c in clashes
        )
        raise InvalidInput(f"the import would move wallets between members, nothing was imported: {described}")


async def _refuse_ambiguous_rows(conn: AsyncConnection[Any], where: Callable[[int], str], community_id: int) -> None:
    """Two rows that are one member, or a row whose id or wallet is another member's: name the lines."""
    cur = await conn.execute(
        "SELECT array_agg(line ORDER BY line) AS lines FROM incoming GROUP BY profile_id HAVING count(*) > 1"
        " ORDER BY min(line) LIMIT 10"
    )
    twins = [r["lines"] for r in await cur.fetchall()]
    if twins:
        described = "; ".join(" and ".join(where(i) for i in lines) for lines in twins)
        raise InvalidInput(f"rows that are one member (by Discord id and by wallet), nothing was imported: {described}")
    cur = await conn.execute(
        "SELECT i.line, 'wallet ' || i.wallet_address AS what, p.discord_user_id AS owner FROM incoming i"
        "  JOIN profiles p ON p.community_id = %(c)s AND p.wallet_address = i.wallet_address"
        " WHERE p.profile_id <> i.profile_id"
        " UNION ALL SELECT i.line, 'Discord id ' || i.discord_user_id, q.discord_user_id FROM incoming i"
        "  JOIN profiles q ON q.community_id = %(c)s AND q.discord_user_id = i.discord_user_id"
        " WHERE q.profile_id <> i.profile_id ORDER BY 1 LIMIT 10",
        {"c": community_id},
    )
    taken = await cur.fetchall()
    if taken:
        described = "; ".join(f"{where(r['line'])}: {r['what']} belongs to another member" for r in taken)
        raise InvalidInput(f"the import conflicts with existing members, nothing was imported: {described}")


def _where(rows: Sequence[MemberRow], index: int) -> str:
    line = rows[index].line
    return f"line {line}" if line is not None else f"row {index + 1}"


def _line(line: int) -> str:
    return f"line {line}"


# Matches incoming rows to existing profiles: by Discord user id, else by wallet, else a new profile.
_MATCH_INCOMING = (
    "UPDATE incoming i SET profile_id = p.profile_id FROM profiles p"
    " WHERE p.community_id = %(c)s AND p.discord_user_id = i.discord_user_id",
    "UPDATE incoming i SET profile_id = p.profile_id FROM profiles p"
    " WHERE i.profile_id IS NULL AND p.community_id = %(c)s AND p.wallet_address = i.wallet_address",
    "UPDATE incoming SET profile_id = gen_random_uuid() WHERE profile_id IS NULL",
)

# Upserts the profiles, records the score changes as `migration` events, then sets the scores.
_MERGE_INCOMING = (
    "INSERT INTO profiles (profile_id, community_id, discord_user_id, wallet_address, nym, joined_at)"
    " SELECT profile_id, %(c)s, discord_user_id, wallet_address, nym, joined_at FROM incoming"
    " ON CONFLICT (profile_id) DO UPDATE SET"
    "  discord_user_id = coalesce(EXCLUDED.discord_user_id, profiles.discord_user_id),"
    "  wallet_address = coalesce(EXCLUDED.wallet_address, profiles.wallet_address),"
    "  nym = coalesce(EXCLUDED.nym, profiles.nym)",
    "UPDATE communities SET score_version = score_version + 1, copy_floor = score_version + 1"
    " WHERE community_id = %(c)s",
    "INSERT INTO score_events (community_id, profile_id, board, event_type, delta, value_after, score_version)"
    " SELECT %(c)s, i.profile_id, b.board, 'migration', b.value - b.old, b.value, c.score_version"
    "   FROM incoming i LEFT JOIN scores s ON s.community_id = %(c)s AND s.profile_id = i.profile_id"
    "   CROSS JOIN LATERAL (VALUES ('conviction', i.conviction, coalesce(s.conviction, 0)),"
    "        ('activity', i.activity, coalesce(s.activity, 0))) AS b(board, value, old)"
    "   JOIN communities c ON c.community_id = %(c)s",
    # A cached eligibility was checked against the scores the import replaces (as score updates drop it).
    "DELETE FROM eligibility e USING incoming i WHERE e.community_id = %(c)s AND e.profile_id = i.profile_id",
    "INSERT INTO scores (community_id, profile_id, joined_at, conviction, activity)"
    " SELECT %(c)s, i.profile_id, p.joined_at, i.conviction, i.activity"
    "   FROM incoming i JOIN profiles p USING (profile_id)"
    " ON CONFLICT (community_id, profile_id) DO UPDATE SET conviction = EXCLUDED.conviction,"
    "  activity = EXCLUDED.activity, updated_at = now()",
)
