"""Score updates applied set-wise: a short stream (one HTTP request, a group of them) as arrays, in one
statement per community; a long one copied to a staging table and applied from it while it is read.

A long stream of one community (a file from an indexer) is applied a chunk at a time while the rest is
read: the database applies one chunk while the next is read and checked, so a file costs about the
larger of the two, not their sum. From its first applied chunk it has the community: the doors' requests
that come meanwhile are held, not kept waiting (`backends.postgres.held_writes`). A stream naming several
communities is staged whole instead and applied at its end, a community at a time in id order (two such
writers never wait on each other in a circle); staging takes no lock a writer waits on. A stream that
names a second community after its first chunk was applied holds the first out of that order: crossing
another such stream, one of the two is ended by PostgreSQL's deadlock detection and undone whole. Either way the
stream is one transaction and one score version of each community it names.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection, sql

from backends.postgres.council import settle_seats
from backends.postgres.leases import lock_key
from backends.protocol import MAX_SCORE_EXPONENT, InvalidInput, NotConfigured, ScoreBatches, ScoreUpdate, each_batch

Conn = AsyncConnection[dict[str, Any]]

# Updates held in memory before a stream goes to the staging table instead (one HTTP group fits).
STAGE_FROM = 5000
# Updates of a long one-community stream applied by one statement while the next are read: large enough
# that a statement's fixed cost (the seats' read, the fence trigger) is small beside it, small enough that
# the last chunk, which nothing overlaps, is short.
APPLY_EVERY = 50_000

# A score's first significant digit lies between the 10^-MAX and the 10^MAX place: |x| < 10^(MAX+1) and
# |x| >= 10^-MAX. Written out in full: PostgreSQL refuses exponents past 1000 in a numeric's text.
_ABOVE = "1" + "0" * (MAX_SCORE_EXPONENT + 1)
_BELOW = "0." + "0" * (MAX_SCORE_EXPONENT - 1) + "1"


async def apply_score_stream(conn: Conn, batches: ScoreBatches, *, mirrored: bool, bulk: bool = True) -> dict[int, int]:
    """Apply every (community, updates) batch on `conn`, inside the caller's transaction; return each
    community's new score version. Updates apply in stream order.

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
            return await _apply_long(conn, held, stream, mirrored)
    writes = _Writes(conn, mirrored)
    for community_id, updates in sorted(held.items()):
        await writes.apply(community_id, _arrays(updates))
    return await writes.settled()


@dataclass
class _Written:
    version: int
    bumped: bool = False  # a statement of this write has moved the version: the others keep it
    conviction: bool = False  # a conviction was written: the seats are settled once, at the end


class _Writes:
    """One stream's writes, a community's in one or more statements: each community's version moves once,
    and its seats are settled once, after its last statement."""

    def __init__(self, conn: Conn, mirrored: bool) -> None:
        self.conn = conn
        self.mirrored = mirrored
        self.written: dict[int, _Written] = {}

    async def apply(
        self, community_id: int, source: tuple[sql.Composable, dict[str, Any]], *, chunk: bool = False
    ) -> None:
        written = self.written.get(community_id)
        bump = written is None or not written.bumped
        done = await _apply(self.conn, community_id, source, self.mirrored, bump=bump, chunk=chunk)
        if written is None:
            written = self.written[community_id] = _Written(done.before)
        if done.version is not None:
            written.version, written.bumped = done.version, True
        written.conviction |= done.conviction

    async def settled(self) -> dict[int, int]:
        for community_id, written in sorted(self.written.items()):
            if written.conviction:  # seats follow conviction alone
                await settle_seats(self.conn, community_id)
        return {community_id: written.version for community_id, written in self.written.items()}


_STAGED = sql.SQL("SELECT n, profile_id, board, mode, value, event_type, tx_hash, at FROM staged_updates")


async def _apply_long(conn: Conn, held: dict[int, list[ScoreUpdate]], rest: Any, mirrored: bool) -> dict[int, int]:
    await conn.execute(
        "CREATE TEMP TABLE staged_updates (community_id bigint, n bigint, profile_id uuid, board text,"
        " mode text, value numeric, event_type text, tx_hash text, at timestamptz) ON COMMIT DROP"
    )
    writes = _Writes(conn, mirrored)
    if len(held) == 1:
        ((lead, updates),) = held.items()
        held = await _apply_while_read(writes, lead, updates, rest)
        if not held:
            return await writes.settled()
    communities = await _stage(conn, held, rest)
    await conn.execute("CREATE INDEX ON staged_updates (community_id, n)")
    await conn.execute("ANALYZE staged_updates")
    for community_id in sorted(communities):
        await take_bulk(conn, community_id)
        await writes.apply(community_id, (_STAGED + sql.SQL(" WHERE community_id = %(c)s"), {}))
    return await writes.settled()


async def _apply_while_read(
    writes: _Writes, lead: int, first: list[ScoreUpdate], rest: AsyncIterator[tuple[int, Sequence[ScoreUpdate]]]
) -> dict[int, list[ScoreUpdate]]:
    """Apply a one-community stream a chunk at a time: each chunk is copied to the staging table and its
    statement started, and the next chunk is read while the database runs it. A chunk writes its events
    and where it leaves each member (`staged_totals`); the scores are written once, at the end, so a member
    updated in every chunk is written once, as by one statement. Returns the updates not applied yet once
    a second community turns up (the rest of the stream is then staged), else nothing."""
    conn = writes.conn
    await conn.execute(
        "CREATE TEMP TABLE staged_totals (profile_id uuid, board text, value numeric,"
        " PRIMARY KEY (profile_id, board)) ON COMMIT DROP"
    )
    running: asyncio.Task[None] | None = None

    async def applied() -> None:
        if not writes.written:
            # The plan joins the chunk to the scores by its size. Chunks are alike: the first one's
            # statistics serve them all (TRUNCATE keeps them), at a tenth of each statement's time.
            await conn.execute("ANALYZE staged_updates")
        await writes.apply(lead, (_STAGED, {}), chunk=True)
        await conn.execute("TRUNCATE staged_updates")

    async def start(chunk: list[ScoreUpdate]) -> asyncio.Task[None]:
        if running is not None:
            await running
        if not writes.written:
            await take_bulk(conn, lead)
        async with _copy(conn) as write:
            await write(lead, chunk)
        return asyncio.create_task(applied())

    chunk, left = first, {}
    try:
        if len(chunk) >= APPLY_EVERY:
            running, chunk = await start(chunk), []
        async for community_id, updates in rest:
            # The running chunk's statements go out, one after another, only when the event loop runs:
            # a stream that never waits (its members all known) would otherwise hold them back.
            await asyncio.sleep(0)
            if community_id != lead:
                left = {lead: chunk, community_id: list(updates)}
                break
            chunk.extend(updates)
            if len(chunk) >= APPLY_EVERY:
                running, chunk = await start(chunk), []
        else:
            if chunk:
                running = await start(chunk)
    except BaseException:
        if running is not None:
            await _outwait(running)
        raise
    if running is not None:
        await running
        await conn.execute(_WRITE_CARRIED, {"c": lead})
        await conn.execute("TRUNCATE staged_totals")  # the rest, if any, starts from the scores just written
    return left


async def _outwait(running: asyncio.Task[None]) -> None:
    """Wait for a chunk's statement after the stream failed: the connection is the statement's until it
    ends, even if this wait is cancelled again. The stream's error is the one told."""
    cancelled = False
    while not running.done():
        try:
            await asyncio.wait([running])
        except asyncio.CancelledError:
            cancelled = True
    if not running.cancelled():
        running.exception()  # retrieved: not reported as never retrieved
    if cancelled:
        raise asyncio.CancelledError


@asynccontextmanager
async def _copy(conn: Conn) -> AsyncIterator[Callable[[int, Sequence[ScoreUpdate]], Awaitable[None]]]:
    """A COPY into the staging table: a function writing (community, updates) rows, numbered from 1 in the
    order written."""
    n = 0
    async with conn.cursor().copy(
        "COPY staged_updates (community_id, n, profile_id, board, mode, value, event_type, tx_hash, at) FROM STDIN"
    ) as copy:

        async def write(community_id: int, updates: Sequence[ScoreUpdate]) -> None:
            nonlocal n
            for u in updates:
                n += 1
                await copy.write_row((community_id, n, *_row(u)))

        yield write


async def _stage(conn: Conn, held: dict[int, list[ScoreUpdate]], rest: Any) -> set[int]:
    """Copy the held updates and the rest of the stream to the staging table; return the communities."""
    communities = set(held)
    async with _copy(conn) as write:
        for community_id, updates in held.items():
            await write(community_id, updates)
        async for community_id, updates in rest:
            communities.add(community_id)
            await write(community_id, updates)
    return communities


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


@dataclass(frozen=True)
class _Done:
    before: int  # the community's version when the statement began
    version: int | None  # its version after, None when every update was a tx hash applied before
    conviction: bool  # a conviction was written


async def _apply(
    conn: Conn,
    community_id: int,
    source: tuple[sql.Composable, dict[str, Any]],
    mirrored: bool,
    *,
    bump: bool,
    chunk: bool = False,
) -> _Done:
    """Apply updates of one community (`source`: a relation of them and its parameters); `bump` moves its
    version by one, else the updates join the version an earlier statement of the same write moved to. A
    `chunk` of a write starts where the chunks before left each member and leaves its own totals in
    `staged_totals`, for the next chunk and for `_WRITE_CARRIED` at the end, which writes the scores.

    The community row is locked first, so concurrent writers to one community queue up in order. An
    update whose tx hash was already applied to that member's board (by this call or an earlier one) is
    skipped; when nothing is left the version does not move. A score an `add` would take out of range
    (its first significant digit past the 10^±MAX_SCORE_EXPONENT place) refuses the whole call
    (`InvalidInput`, so the caller's transaction writes nothing). The seats are the caller's to settle.
    """
    relation, params = source
    params = params | {
        "c": community_id,
        "mirrored": mirrored,
        "above": _ABOVE,
        "below": _BELOW,
        "step": 1 if bump else 0,
    }
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
    statement = _APPLY.format(
        source=relation, start=_FROM_CARRIED if chunk else _FROM_STORED, scores=_CARRY if chunk else _WRITE_SCORES
    )
    cur = await conn.execute(statement, params)
    done = await cur.fetchone()
    assert done is not None
    if done["board"] is not None:
        member = done["discord_user_id"] or done["wallet_address"] or done["profile_id"]
        raise InvalidInput(
            f"the {done['board']} score of member {member} would be {done['after']:.5e}"
            f" after adding {done['value']:.5e}: out of range (its first significant digit must lie between"
            f" the 10^-{MAX_SCORE_EXPONENT} and the 10^{MAX_SCORE_EXPONENT} place)"
        )
    version = None if done["version"] is None else int(done["version"])
    return _Done(int(row["score_version"]), version, bool(done["conviction_written"]))


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

# Each member's score where this write's updates start from: the stored one, or, when the write is applied
# in chunks (`staged_totals`, kept by the chunks before), where the chunks before left it.
_FROM_STORED = sql.SQL(
    "coalesce(CASE k.board WHEN 'conviction' THEN s.conviction ELSE s.activity END, 0) AS start"
    " FROM kept k LEFT JOIN scores s ON s.community_id = %(c)s AND s.profile_id = k.profile_id"
)
_FROM_CARRIED = sql.SQL(
    "coalesce(t.value, CASE k.board WHEN 'conviction' THEN s.conviction ELSE s.activity END, 0) AS start"
    " FROM kept k LEFT JOIN scores s ON s.community_id = %(c)s AND s.profile_id = k.profile_id"
    " LEFT JOIN staged_totals t ON t.profile_id = k.profile_id AND t.board = k.board"
)

# The scores written from `totals` (a member's last value on each board, NULL where the board is not
# written), and the cached eligibilities they invalidate.
_SCORED = sql.SQL(
    """
scored AS (
    INSERT INTO scores (community_id, profile_id, joined_at, conviction, activity)
    SELECT %(c)s, t.profile_id, p.joined_at, coalesce(t.conviction, s.conviction, 0),
           coalesce(t.activity, s.activity, 0)
      FROM totals t JOIN profiles p USING (profile_id)
      LEFT JOIN scores s ON s.community_id = %(c)s AND s.profile_id = t.profile_id
    ON CONFLICT (community_id, profile_id) DO UPDATE SET conviction = EXCLUDED.conviction,
       activity = EXCLUDED.activity, updated_at = now()),
forgotten AS (  -- a cached eligibility was checked against the scores these updates replace
    DELETE FROM eligibility WHERE community_id = %(c)s AND profile_id IN (SELECT profile_id FROM totals))"""
)

# A whole write's scores: each member's last value in it.
_WRITE_SCORES = (
    sql.SQL(
        """
totals AS MATERIALIZED (
    SELECT profile_id,
           (array_agg(after ORDER BY n DESC) FILTER (WHERE board = 'conviction'))[1] AS conviction,
           (array_agg(after ORDER BY n DESC) FILTER (WHERE board = 'activity'))[1] AS activity
      FROM valued GROUP BY profile_id),"""
    )
    + _SCORED
)

# A chunk's: where it leaves each member, for the next chunk and for `_WRITE_CARRIED` at the end.
_CARRY = sql.SQL(
    """
carried AS (
    INSERT INTO staged_totals (profile_id, board, value)
    SELECT DISTINCT ON (profile_id, board) profile_id, board, after FROM valued ORDER BY profile_id, board, n DESC
    ON CONFLICT (profile_id, board) DO UPDATE SET value = EXCLUDED.value)"""
)

# The end of a write applied in chunks: the scores where its chunks left them, written once.
_WRITE_CARRIED = (
    sql.SQL(
        """
WITH totals AS MATERIALIZED (
    SELECT profile_id, max(value) FILTER (WHERE board = 'conviction') AS conviction,
           max(value) FILTER (WHERE board = 'activity') AS activity
      FROM staged_totals GROUP BY profile_id),"""
    )
    + _SCORED
    + sql.SQL("\nSELECT count(*) AS members FROM totals")
)

# One statement: the tx hashes seen for the first time (the rest skipped), each update's value after it
# (a `set` starts a run, each `add` adds to the run's value, the first run starts from `{start}`), the
# version, the events in update order, `{scores}` (the scores and the cached eligibilities they invalidate,
# or a chunk's totals); then
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
           {start}),
valued AS MATERIALIZED (
    SELECT r.n, r.profile_id, r.board, r.value, r.event_type, r.tx_hash, r.at, r.start,
           CASE WHEN r.run = 0 THEN r.start ELSE first_value(r.value) OVER w END
             + sum(CASE WHEN r.mode = 'add' THEN r.value ELSE 0 END) OVER w AS after
      FROM runs r
    WINDOW w AS (PARTITION BY r.profile_id, r.board, r.run ORDER BY r.n)),
version AS (
    UPDATE communities SET score_version = score_version + %(step)s,
           copy_floor = CASE WHEN %(mirrored)s THEN score_version + %(step)s ELSE copy_floor END
     WHERE community_id = %(c)s AND EXISTS (SELECT 1 FROM kept) RETURNING score_version),
events AS (
    INSERT INTO score_events (community_id, profile_id, board, event_type, delta, value_after, tx_hash,
                              score_version, mirrored, created_at)
    SELECT %(c)s, e.profile_id, e.board, e.event_type,
           e.after - coalesce(lag(e.after) OVER (PARTITION BY e.profile_id, e.board ORDER BY e.n), e.start),
           e.after, e.tx_hash, v.score_version, %(mirrored)s, coalesce(e.at, now())
      FROM valued e CROSS JOIN version v ORDER BY e.n),
{scores}
SELECT (SELECT score_version FROM version) AS version,
       EXISTS (SELECT 1 FROM kept WHERE board = 'conviction') AS conviction_written, bad.* FROM (SELECT 1) one
  LEFT JOIN LATERAL (
    SELECT e.board, e.after, e.value, p.discord_user_id, p.wallet_address, p.profile_id
      FROM valued e JOIN profiles p USING (profile_id)
     WHERE e.after <> 0 AND (abs(e.after) >= %(above)s::numeric OR abs(e.after) < %(below)s::numeric)
     ORDER BY e.n LIMIT 1) bad ON true
"""
)
