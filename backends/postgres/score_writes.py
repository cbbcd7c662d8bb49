"""Score updates applied set-wise: a stream of any length is staged first, then each community's share is
applied by a fixed number of statements while its row is locked.

Staging takes no lock a writer waits on, so a large file (staged at the pace of COPY) holds the
community's other writers back only for the set-wise apply at the end, whose cost grows with the file
but not per line; the doors' requests that come meanwhile are held, not kept waiting
(`backends.postgres.held_writes`). A short stream (one HTTP request, a group of them) skips the staging
table: its updates go to the same statements as arrays.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from psycopg import AsyncConnection, sql

from backends.postgres.council import settle_seats
from backends.postgres.leases import lock_key
from backends.protocol import MAX_SCORE_EXPONENT, InvalidInput, NotConfigured, ScoreBatches, ScoreUpdate, each_batch

Conn = AsyncConnection[dict[str, Any]]

# Updates held in memory before a stream goes to the staging table instead (one HTTP group fits).
STAGE_FROM = 5000

# A score's first significant digit lies between the 10^-MAX and the 10^MAX place: |x| < 10^(MAX+1) and
# |x| >= 10^-MAX. Written out in full: PostgreSQL refuses exponents past 1000 in a numeric's text.
_ABOVE = "1" + "0" * (MAX_SCORE_EXPONENT + 1)
_BELOW = "0." + "0" * (MAX_SCORE_EXPONENT - 1) + "1"


async def apply_score_stream(conn: Conn, batches: ScoreBatches, *, mirrored: bool, bulk: bool = True) -> dict[int, int]:
    """Apply every (community, updates) batch on `conn`, inside the caller's transaction; return each
    community's new score version. Updates apply in stream order; communities are applied in id order
    (two writers of several communities never wait on each other in a circle).

    `bulk=False` keeps the updates in memory however many they are, so the call never takes a bulk lock:
    for the door's requests and their settling, which hold the bulk lock shared or the community's row
    already (`backends.postgres.held_writes`); waiting for it exclusively then could deadlock."""
    held: dict[int, list[ScoreUpdate]] = {}
    count = 0
    stream = aiter(each_batch(batches))
    async for community_id, updates in stream:
        held.setdefault(community_id, []).extend(updates)
        count += len(updates)
        if bulk and count > STAGE_FROM:
            return await _apply_staged(conn, held, stream, mirrored)
    return {
        community_id: await _apply(conn, community_id, _arrays(updates), mirrored)
        for community_id, updates in sorted(held.items())
    }


async def _apply_staged(conn: Conn, held: dict[int, list[ScoreUpdate]], rest: Any, mirrored: bool) -> dict[int, int]:
    await conn.execute(
        "CREATE TEMP TABLE staged_updates (community_id bigint, n bigint, profile_id uuid, board text,"
        " mode text, value numeric, event_type text, tx_hash text, at timestamptz) ON COMMIT DROP"
    )
    n = 0
    communities = set(held)
    async with conn.cursor().copy(
        "COPY staged_updates (community_id, n, profile_id, board, mode, value, event_type, tx_hash, at) FROM STDIN"
    ) as copy:

        async def write(community_id: int, updates: Sequence[ScoreUpdate]) -> None:
            nonlocal n
            for u in updates:
                n += 1
                await copy.write_row((community_id, n, *_row(u)))

        for community_id, updates in held.items():
            await write(community_id, updates)
        held.clear()
        async for community_id, updates in rest:
            communities.add(community_id)
            await write(community_id, updates)
    await conn.execute("CREATE INDEX ON staged_updates (community_id, n)")
    await conn.execute("ANALYZE staged_updates")
    staged = sql.SQL(
        "SELECT n, profile_id, board, mode, value, event_type, tx_hash, at FROM staged_updates"
        " WHERE community_id = %(c)s"
    )
    versions = {}
    for community_id in sorted(communities):
        await take_bulk(conn, community_id)
        versions[community_id] = await _apply(conn, community_id, (staged, {}), mirrored)
    return versions


def bulk_key(community_id: int) -> int:
    return lock_key(f"bulk write {community_id}")


async def take_bulk(conn: Conn, community_id: int) -> None:
    """The community's bulk lock, for the caller's transaction. It waits for the door requests under way,
    which hold it shared; later ones are held instead of waiting for this transaction's commit
    (`backends.postgres.held_writes`)."""
    await conn.execute("SELECT pg_advisory_xact_lock(%s)", (bulk_key(community_id),))


def _row(u: ScoreUpdate) -> tuple[Any, ...]:
    return (u.profile_id, u.board, u.mode, u.value, u.event_type, u.tx_hash, u.at)


def _arrays(updates: Sequence[ScoreUpdate]) -> tuple[sql.Composable, dict[str, Any]]:
    """The updates as a relation of (n, profile_id, board, mode, value, event_type, tx_hash, at).

    Sent as one JSON text, each value as its exact text (a score's decimal digits, never a float): the
    JSON encoder is native code, where dumping seven typed arrays item by item was a quarter of a door
    request's cost."""
    rows = [
        [str(u.profile_id), u.board, u.mode, str(u.value), u.event_type, u.tx_hash, u.at and u.at.isoformat()]
        for u in updates
    ]
    source = sql.SQL(
        "SELECT e.n, (e.u->>0)::uuid AS profile_id, e.u->>1 AS board, e.u->>2 AS mode, (e.u->>3)::numeric AS value,"
        " e.u->>4 AS event_type, e.u->>5 AS tx_hash, (e.u->>6)::timestamptz AS at"
        " FROM jsonb_array_elements(%(updates)s::jsonb) WITH ORDINALITY AS e(u, n)"
    )
    return source, {"updates": json.dumps(rows)}


async def _apply(conn: Conn, community_id: int, source: tuple[sql.Composable, dict[str, Any]], mirrored: bool) -> int:
    """Apply one community's updates (`source`: a relation of them and its parameters); return its version.

    The community row is locked first, so concurrent writers to one community queue up in order. An
    update whose tx hash was already applied to that member's board (by this call or an earlier one) is
    skipped; when nothing is left the version does not move. A score an `add` would take out of range
    (its first significant digit past the 10^±MAX_SCORE_EXPONENT place) refuses the whole call
    (`InvalidInput`, so the caller's transaction writes nothing). The naib seats are settled once, after
    the scores are written.
    """
    relation, params = source
    params = params | {"c": community_id, "mirrored": mirrored, "above": _ABOVE, "below": _BELOW}
    cur = await conn.execute(
        "SELECT score_version FROM communities WHERE community_id = %s FOR NO KEY UPDATE", (community_id,)
    )
    row = await cur.fetchone()
    if row is None:
        raise NotConfigured(f"community {community_id} is not configured")
    cur = await conn.execute(_STRANGERS.format(source=relation), params)
    strangers = await cur.fetchall()
    if strangers:
        named = ", ".join(str(r["profile_id"]) for r in strangers[:20])
        more = f" and {strangers[0]['total'] - 20} more" if strangers[0]["total"] > 20 else ""
        raise InvalidInput(f"not members of community {community_id}: {named}{more}")
    cur = await conn.execute(_APPLY.format(source=relation), params)
    done = await cur.fetchone()
    assert done is not None
    if done["board"] is not None:
        member = done["discord_user_id"] or done["wallet_address"] or done["profile_id"]
        raise InvalidInput(
            f"the {done['board']} score of member {member} would be {done['after']:.5e}"
            f" after adding {done['value']:.5e}: out of range (its first significant digit must lie between"
            f" the 10^-{MAX_SCORE_EXPONENT} and the 10^{MAX_SCORE_EXPONENT} place)"
        )
    if done["version"] is None:
        return int(row["score_version"])  # nothing applied: no seat can have moved
    if done["conviction_written"]:  # seats follow conviction alone
        await settle_seats(conn, community_id)  # once per community per write, after its scores
    return int(done["version"])


# The named profiles that are not members of the community. No member can be removed meanwhile: removal
# locks the community row first (`CommunityWrites.remove_member`), which the caller holds.
_STRANGERS = sql.SQL(
    """
WITH wanted AS MATERIALIZED (SELECT DISTINCT profile_id FROM ({source}) s)
SELECT w.profile_id, count(*) OVER () AS total FROM wanted w
 WHERE NOT EXISTS (SELECT 1 FROM profiles p WHERE p.profile_id = w.profile_id AND p.community_id = %(c)s)
 ORDER BY w.profile_id
"""
)

# One statement: the tx hashes seen for the first time (the rest skipped), each update's value after it
# (a `set` starts a run, each `add` adds to the run's value, the first run starts from the stored score),
# the version, the events in update order, the scores, the cached eligibilities they invalidate; then
# the first value out of range, if any (the caller refuses the call and its transaction is undone), and
# whether any conviction was written (only then can a naib seat move).
_APPLY = sql.SQL(
    """
WITH src AS MATERIALIZED ({source}),
firsts AS (
    SELECT DISTINCT ON (profile_id, board, tx_hash) n, profile_id, board, tx_hash FROM src
     WHERE tx_hash IS NOT NULL ORDER BY profile_id, board, tx_hash, n),
fresh AS (
    INSERT INTO applied_transactions (community_id, profile_id, board, tx_hash)
    SELECT %(c)s, profile_id, board, tx_hash FROM firsts ON CONFLICT DO NOTHING
    RETURNING profile_id, board, tx_hash),
kept AS MATERIALIZED (
    SELECT s.* FROM src s WHERE s.tx_hash IS NULL
    UNION ALL
    SELECT s.* FROM src s JOIN firsts f USING (n)
      JOIN fresh r ON (r.profile_id, r.board, r.tx_hash) = (f.profile_id, f.board, f.tx_hash)),
runs AS (
    SELECT k.*, count(*) FILTER (WHERE k.mode = 'set') OVER (PARTITION BY k.profile_id, k.board ORDER BY k.n) AS run,
           coalesce(CASE k.board WHEN 'conviction' THEN s.conviction ELSE s.activity END, 0) AS start
      FROM kept k LEFT JOIN scores s ON s.community_id = %(c)s AND s.profile_id = k.profile_id),
valued AS MATERIALIZED (
    SELECT r.n, r.profile_id, r.board, r.value, r.event_type, r.tx_hash, r.at, r.start,
           CASE WHEN r.run = 0 THEN r.start ELSE first_value(r.value) OVER w END
             + sum(CASE WHEN r.mode = 'add' THEN r.value ELSE 0 END) OVER w AS after
      FROM runs r
    WINDOW w AS (PARTITION BY r.profile_id, r.board, r.run ORDER BY r.n)),
version AS (
    UPDATE communities SET score_version = score_version + 1,
           copy_floor = CASE WHEN %(mirrored)s THEN score_version + 1 ELSE copy_floor END
     WHERE community_id = %(c)s AND EXISTS (SELECT 1 FROM kept) RETURNING score_version),
events AS (
    INSERT INTO score_events (community_id, profile_id, board, event_type, delta, value_after, tx_hash,
                              score_version, mirrored, created_at)
    SELECT %(c)s, e.profile_id, e.board, e.event_type,
           e.after - coalesce(lag(e.after) OVER (PARTITION BY e.profile_id, e.board ORDER BY e.n), e.start),
           e.after, e.tx_hash, v.score_version, %(mirrored)s, coalesce(e.at, now())
      FROM valued e CROSS JOIN version v ORDER BY e.n),
totals AS MATERIALIZED (
    SELECT profile_id,
           (array_agg(after ORDER BY n DESC) FILTER (WHERE board = 'conviction'))[1] AS conviction,
           (array_agg(after ORDER BY n DESC) FILTER (WHERE board = 'activity'))[1] AS activity
      FROM valued GROUP BY profile_id),
scored AS (
    INSERT INTO scores (community_id, profile_id, joined_at, conviction, activity)
    SELECT %(c)s, t.profile_id, p.joined_at, coalesce(t.conviction, s.conviction, 0),
           coalesce(t.activity, s.activity, 0)
      FROM totals t JOIN profiles p USING (profile_id)
      LEFT JOIN scores s ON s.community_id = %(c)s AND s.profile_id = t.profile_id
    ON CONFLICT (community_id, profile_id) DO UPDATE SET conviction = EXCLUDED.conviction,
       activity = EXCLUDED.activity, updated_at = now()),
forgotten AS (  -- a cached eligibility was checked against the scores these updates replace
    DELETE FROM eligibility WHERE community_id = %(c)s AND profile_id IN (SELECT profile_id FROM totals))
SELECT (SELECT score_version FROM version) AS version,
       EXISTS (SELECT 1 FROM kept WHERE board = 'conviction') AS conviction_written, bad.* FROM (SELECT 1) one
  LEFT JOIN LATERAL (
    SELECT e.board, e.after, e.value, p.discord_user_id, p.wallet_address, p.profile_id
      FROM valued e JOIN profiles p USING (profile_id)
     WHERE e.after <> 0 AND (abs(e.after) >= %(above)s::numeric OR abs(e.after) < %(below)s::numeric)
     ORDER BY e.n LIMIT 1) bad ON true
"""
)
