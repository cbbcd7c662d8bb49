"""Badges on the source of truth: the award and revoke statements (`backends.protocol.BadgeSource`) and the
badge board's reads, all by key or along the board index of schema 015."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from backends.postgres.pool import Connection
from backends.protocol import BadgeChange, BadgeEntry, BadgeFacts, BadgeOutcome, InvalidInput, NotConfigured

# An award of a type the member does not hold (never had, or revoked): held from now, the reason replaced.
_AWARD = """
INSERT INTO badges (community_id, profile_id, badge_type, awarded_at, revoked_at, reason)
VALUES (%(community)s, %(profile)s, %(type)s, now(), NULL, %(reason)s)
ON CONFLICT (community_id, profile_id, badge_type) DO UPDATE
   SET awarded_at = now(), revoked_at = NULL, reason = EXCLUDED.reason
 WHERE badges.revoked_at IS NOT NULL
RETURNING 1 AS changed"""
_REVOKE = """
UPDATE badges SET revoked_at = now(), reason = %(reason)s
 WHERE community_id = %(community)s AND profile_id = %(profile)s AND badge_type = %(type)s
   AND revoked_at IS NULL
RETURNING 1 AS changed"""
# The touched members' counts, recounted from their badges (at most twelve rows each).
_RECOUNT = """
INSERT INTO badge_counts (community_id, profile_id, joined_at, held)
SELECT b.community_id, b.profile_id, p.joined_at, count(*)
  FROM badges b JOIN profiles p USING (profile_id)
 WHERE b.community_id = %(community)s AND b.profile_id = ANY(%(ids)s) AND b.revoked_at IS NULL
 GROUP BY b.community_id, b.profile_id, p.joined_at"""

# The touched members' old counts leave the board and go to the outbox with the change.
_QUEUE = """
WITH old AS (
    DELETE FROM badge_counts WHERE community_id = %(community)s AND profile_id = ANY(%(ids)s)
    RETURNING profile_id, held
)
INSERT INTO badge_events (community_id, profile_id, held_before, score_version, mirrored)
SELECT %(community)s, t.id, coalesce(old.held, 0), %(version)s, %(mirrored)s
  FROM unnest(%(ids)s::uuid[]) AS t(id) LEFT JOIN old ON old.profile_id = t.id"""


async def apply_badge_changes(
    conn: Connection, community_id: int, changes: Sequence[BadgeChange], *, mirrored: bool
) -> BadgeOutcome:
    """Apply the changes in order inside the caller's transaction. The community row is locked first, as
    every score write and member removal does, so the members named stay while this runs."""
    cur = await conn.execute(
        "SELECT score_version FROM communities WHERE community_id = %s FOR NO KEY UPDATE", (community_id,)
    )
    row = await cur.fetchone()
    if row is None:
        raise NotConfigured(f"community {community_id} is not configured")
    named = list({c.profile_id for c in changes})
    cur = await conn.execute(
        "SELECT profile_id FROM profiles WHERE community_id = %s AND profile_id = ANY(%s)", (community_id, named)
    )
    found = {r["profile_id"] for r in await cur.fetchall()}
    missing = [str(pid) for pid in named if pid not in found]
    if missing:
        raise InvalidInput(f"not members of community {community_id}: {', '.join(sorted(missing))}")
    changed: list[bool] = []
    for change in changes:
        params = {
            "community": community_id,
            "profile": change.profile_id,
            "type": change.badge_type,
            "reason": change.reason,
        }
        cur = await conn.execute(_AWARD if change.action == "award" else _REVOKE, params)
        changed.append(await cur.fetchone() is not None)
    touched = list({c.profile_id for c, did in zip(changes, changed, strict=True) if did})
    if not touched:
        return BadgeOutcome(int(row["score_version"]), changed)
    # A change the copies are not told of (`mirrored`) voids their backfills, as a score write does.
    cur = await conn.execute(
        "UPDATE communities SET score_version = score_version + 1,"
        " copy_floor = CASE WHEN %s THEN score_version + 1 ELSE copy_floor END"
        " WHERE community_id = %s RETURNING score_version",
        (mirrored, community_id),
    )
    bumped = await cur.fetchone()
    assert bumped is not None
    version = int(bumped["score_version"])
    params = {"community": community_id, "ids": touched, "version": version, "mirrored": mirrored}
    await conn.execute(_QUEUE, params)
    await conn.execute(_RECOUNT, params)
    return BadgeOutcome(version, changed)


async def badge_board(conn: Connection, community_id: int, limit: int) -> list[BadgeEntry]:
    cur = await conn.execute(
        "SELECT b.profile_id, b.joined_at, b.held, p.nym, p.wallet_address"
        " FROM badge_counts b JOIN profiles p USING (profile_id) WHERE b.community_id = %s"
        " ORDER BY b.held DESC, b.joined_at, b.profile_id LIMIT %s",
        (community_id, max(limit, 0)),
    )
    return [BadgeEntry(**r) for r in await cur.fetchall()]


async def badge_count(conn: Connection, community_id: int, profile_id: UUID) -> int:
    cur = await conn.execute(
        "SELECT held FROM badge_counts WHERE community_id = %s AND profile_id = %s", (community_id, profile_id)
    )
    row = await cur.fetchone()
    return int(row["held"]) if row else 0


async def holders_above(conn: Connection, community_id: int, held: int) -> int:
    cur = await conn.execute(
        "SELECT count(*) AS n FROM badge_counts WHERE community_id = %s AND held > %s", (community_id, held)
    )
    row = await cur.fetchone()
    return int(row["n"]) if row else 0


async def badge_facts(conn: Connection, community_id: int) -> BadgeFacts:
    cur = await conn.execute("SELECT members, launched_at FROM communities WHERE community_id = %s", (community_id,))
    row = await cur.fetchone()
    return BadgeFacts(int(row["members"]), row["launched_at"]) if row else BadgeFacts(0, None)


async def badge_histogram(conn: Connection, community_id: int) -> dict[int, int]:
    """How many members hold each count of badges (counts held by nobody left out)."""
    cur = await conn.execute(
        "SELECT held, count(*) AS n FROM badge_counts WHERE community_id = %s GROUP BY held", (community_id,)
    )
    return {int(r["held"]): int(r["n"]) for r in await cur.fetchall()}
