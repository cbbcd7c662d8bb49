"""Naib seats on the source of truth (schema 016): one settling inside the transaction of each change that
can move them, and the council's read.

A settling reads the eligible set and the open terms in one statement, runs the pure rules
(`bot.domain.council.settle`) and, only when a seat moved, writes every change in one more, all with
the transaction's moment. The caller holds the community row locked, so settlings never interleave.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from psycopg import AsyncConnection

from backends.protocol import FORMER_KEPT, Council, FormerSeat, Seat
from backends.seats import Eligible, Held, settle

Conn = AsyncConnection[dict[str, Any]]
MICROSECOND = timedelta(microseconds=1)

# The community's N, its eligible set (positions 1..F at or above the minimum balance, in board order:
# those below it are the end of 1..F) and its open terms (at most N rows), with the transaction's moment.
_READ = """
SELECT c.naib, now() AS at, e.ids, e.convictions, t.held, t.since
  FROM communities c LEFT JOIN community_roles r ON r.community_id = c.community_id
 CROSS JOIN LATERAL (
    SELECT coalesce(array_agg(x.profile_id ORDER BY -x.conviction, x.joined_at, x.profile_id), '{}') AS ids,
           coalesce(array_agg(x.conviction ORDER BY -x.conviction, x.joined_at, x.profile_id), '{}') AS convictions
      FROM (SELECT profile_id, conviction, joined_at FROM scores
             WHERE community_id = c.community_id AND conviction > 0
               AND (r.minimum_balance IS NULL OR conviction >= r.minimum_balance)
             ORDER BY -conviction, joined_at, profile_id LIMIT c.fedaykin) x) e
 CROSS JOIN LATERAL (
    SELECT coalesce(array_agg(profile_id), '{}') AS held, coalesce(array_agg(seated_at), '{}') AS since
      FROM naib_terms WHERE community_id = c.community_id AND unseated_at IS NULL) t
 WHERE c.community_id = %(c)s"""

# The terms closed and opened, each member's summary, the first seat time and the council's version.
_WRITE = """
WITH closed AS (
    UPDATE naib_terms t SET unseated_at = %(at)s
      FROM unnest(%(out)s::uuid[], %(out_us)s::bigint[]) AS o(profile_id, us)
     WHERE t.community_id = %(c)s AND t.profile_id = o.profile_id AND t.unseated_at IS NULL
    RETURNING o.profile_id, o.us),
left_seat AS (
    UPDATE naib_members m SET closed_us = m.closed_us + closed.us, left_at = %(at)s, seated = false
      FROM closed WHERE m.community_id = %(c)s AND m.profile_id = closed.profile_id),
opened AS (
    INSERT INTO naib_terms (community_id, profile_id, seated_at)
    SELECT %(c)s, profile_id, %(at)s FROM unnest(%(in)s::uuid[]) AS i(profile_id) RETURNING profile_id),
took_seat AS (
    INSERT INTO naib_members (community_id, profile_id, first_seated_at, terms, seated)
    SELECT %(c)s, profile_id, %(at)s, 1, true FROM opened
    ON CONFLICT (community_id, profile_id) DO UPDATE SET terms = naib_members.terms + 1, seated = true)
UPDATE communities SET first_seated_at = coalesce(first_seated_at, %(at)s), council_version = score_version
 WHERE community_id = %(c)s"""


async def settle_seats(conn: Conn, community_id: int) -> bool:
    """Settle the community's seats now, inside the caller's transaction (which holds its row locked);
    return whether a seat moved. Run after the change's own statements, so it sees their result."""
    cur = await conn.execute(_READ, {"c": community_id})
    row = await cur.fetchone()
    if row is None:
        return False
    at = row["at"]
    eligible = [Eligible(pid, conviction) for pid, conviction in zip(row["ids"], row["convictions"], strict=True)]
    held = [Held(pid, since) for pid, since in zip(row["held"], row["since"], strict=True)]
    changes = settle(held, eligible, row["naib"], at)
    if not changes:
        return False
    since = {h.profile_id: h.seated_at for h in held}
    await conn.execute(
        _WRITE,
        {
            "c": community_id,
            "at": at,
            "out": list(changes.unseated),
            "out_us": [(at - since[pid]) // MICROSECOND for pid in changes.unseated],
            "in": list(changes.seated),
        },
    )
    return True


async def read_council(conn: Conn, community_id: int, former_limit: int = FORMER_KEPT) -> Council:
    """The council as it stands; the caller reads it inside one transaction (one moment)."""
    cur = await conn.execute(
        "SELECT first_seated_at, council_version FROM communities WHERE community_id = %s", (community_id,)
    )
    head = await cur.fetchone()
    if head is None:
        return Council()
    cur = await conn.execute(
        "SELECT t.profile_id, t.seated_at, m.first_seated_at, p.nym, p.wallet_address"
        "  FROM naib_terms t JOIN naib_members m USING (community_id, profile_id) JOIN profiles p USING (profile_id)"
        " WHERE t.community_id = %s AND t.unseated_at IS NULL ORDER BY t.profile_id",
        (community_id,),
    )
    seats = tuple(Seat(**r) for r in await cur.fetchall())
    cur = await conn.execute(
        "SELECT m.profile_id, m.first_seated_at, m.closed_us, m.terms, m.left_at, p.nym, p.wallet_address"
        "  FROM naib_members m JOIN profiles p USING (profile_id) WHERE m.community_id = %s AND NOT m.seated"
        " ORDER BY m.closed_us DESC, m.left_at DESC, m.profile_id LIMIT %s",
        (community_id, max(0, min(former_limit, FORMER_KEPT))),
    )
    former = tuple(
        FormerSeat(
            r["profile_id"],
            r["first_seated_at"],
            r["closed_us"] * MICROSECOND,
            r["terms"],
            r["left_at"],
            r["nym"],
            r["wallet_address"],
        )
        for r in await cur.fetchall()
    )
    cur = await conn.execute(
        "SELECT count(*) AS n FROM naib_members WHERE community_id = %s AND NOT seated", (community_id,)
    )
    counted = await cur.fetchone()
    assert counted is not None
    return Council(seats, former, int(counted["n"]), head["first_seated_at"], int(head["council_version"]))
