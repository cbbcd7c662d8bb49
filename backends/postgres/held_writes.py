"""Requests a door held while a bulk write had their community (`backends.protocol.HeldWrites`).

A bulk write (a staged stream, `score_writes`) takes its community's bulk lock before the community's row
and keeps both until it commits, a minute at a million lines. A door's request first tries the same lock
shared, inside its own transaction: refused, a bulk write has the community (or waits for it), and the
request is held, a row of `held_writes` committed before the door answers, instead of waiting for that
commit. While any request of a community is held, the community's later door requests are held too, so
they apply in the order they came. `settle` applies them, oldest first, once the bulk lock is free.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import psycopg
from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from backends.postgres.badges import apply_badge_changes
from backends.postgres.score_writes import apply_score_stream, bulk_key
from backends.protocol import BadgeChange, HeldOutcome, HeldWrite, InvalidInput, NotConfigured, ScoreUpdate

Conn = AsyncConnection[dict[str, Any]]

# Items settled in one transaction at most (one door group's worth), so that the community's other
# writers (the command line, settings, removals) wait for its row no longer than behind such a group.
SETTLE_ITEMS = 5000
SETTLE_REQUESTS = 100
KEPT = "7 days"  # how long a settled request's outcome can be read

_OUTCOME = "write_id, community_id, kind, item_count AS items, state, queued_at, done_at, score_version, error"


async def held_back(conn: Conn, community_id: int) -> bool:
    """Inside the caller's transaction, before it locks the community's row: True when the community's door
    requests are held now (a bulk write has it, or requests held earlier still wait). Otherwise the
    transaction keeps the bulk lock shared until it ends, so no bulk write starts under it."""
    cur = await conn.execute(
        "SELECT NOT pg_try_advisory_xact_lock_shared(%s) AS bulk,"
        " EXISTS (SELECT 1 FROM held_writes WHERE community_id = %s AND state = 'queued') AS waiting",
        (bulk_key(community_id), community_id),
    )
    row = await cur.fetchone()
    assert row is not None
    return bool(row["bulk"] or row["waiting"])


async def hold_scores(conn: Conn, community_id: int, requests: Sequence[Sequence[ScoreUpdate]]) -> list[HeldWrite]:
    return [await _hold(conn, community_id, "scores", [_score_item(u) for u in r]) for r in requests]


async def hold_badges(conn: Conn, community_id: int, changes: Sequence[BadgeChange]) -> HeldWrite:
    items = [[str(c.profile_id), c.action, c.badge_type, c.reason] for c in changes]
    return await _hold(conn, community_id, "badges", items)


async def _hold(conn: Conn, community_id: int, kind: str, items: list[list[Any]]) -> HeldWrite:
    cur = await conn.execute(
        "INSERT INTO held_writes (community_id, kind, items, item_count) VALUES (%s, %s, %s, %s) RETURNING write_id",
        (community_id, kind, Jsonb(items), len(items)),
    )
    row = await cur.fetchone()
    assert row is not None
    return HeldWrite(int(row["write_id"]))


def _score_item(u: ScoreUpdate) -> list[Any]:
    # The value as its exact decimal text: a JSON number would pass through a float somewhere.
    return [str(u.profile_id), u.board, u.mode, str(u.value), u.event_type, u.tx_hash, u.at and u.at.isoformat()]


def _score_update(item: list[Any]) -> ScoreUpdate:
    profile, board, mode, value, event_type, tx_hash, at = item
    return ScoreUpdate(
        UUID(profile),
        board,
        Decimal(value),
        event_type,
        mode=mode,
        tx_hash=tx_hash,
        at=datetime.fromisoformat(at) if at else None,
    )


async def settle(conn: Conn, community_id: int, *, mirrored: bool) -> list[HeldOutcome]:
    """Inside the caller's transaction: apply the community's oldest held requests in order, at most
    SETTLE_ITEMS items, each whole (a savepoint) or refused alone with why; nothing while a bulk write has
    the community. Returns the settled requests' outcomes."""
    cur = await conn.execute("SELECT pg_try_advisory_xact_lock_shared(%s) AS free", (bulk_key(community_id),))
    free = await cur.fetchone()
    if free is None or not free["free"]:
        return []
    cur = await conn.execute("SELECT 1 FROM communities WHERE community_id = %s FOR NO KEY UPDATE", (community_id,))
    configured = await cur.fetchone() is not None
    cur = await conn.execute(
        "SELECT write_id, kind, items, item_count FROM held_writes WHERE community_id = %s AND state = 'queued'"
        " ORDER BY write_id LIMIT %s",
        (community_id, SETTLE_REQUESTS),
    )
    settled: list[HeldOutcome] = []
    total = 0
    for row in await cur.fetchall():
        total += row["item_count"]
        if settled and total > SETTLE_ITEMS:
            break
        version, error, profiles = None, None, frozenset[UUID]()
        try:
            async with conn.transaction():  # a savepoint: a refused request leaves the others applied
                if not configured:
                    raise NotConfigured(f"community {community_id} is not configured")
                version, profiles = await _apply(conn, community_id, row["kind"], _decoded(row), mirrored)
        except _Unreadable as exc:
            error = f"its stored items cannot be read ({exc}); nothing of it was written"
        except (InvalidInput, NotConfigured) as exc:
            error = f"{exc}; nothing of it was written"
        except psycopg.Error as exc:
            if _transient(exc):
                raise  # the whole settling is tried again by the next round
            # The request's own (a value the database refuses): tried again, it would fail again and hold
            # every later request of the community behind it for good.
            error = f"the database refused it ({type(exc).__name__}: {exc}); nothing of it was written"
        done = await conn.execute(
            f"UPDATE held_writes SET state = %s, score_version = %s, error = %s, done_at = clock_timestamp()"
            f" WHERE write_id = %s AND state = 'queued' RETURNING {_OUTCOME}",
            ("refused" if error else "applied", version, error, row["write_id"]),
        )
        outcome = await done.fetchone()
        if outcome is None:  # settled by another process meanwhile (a community with no row to lock)
            continue
        settled.append(HeldOutcome(**outcome, profiles=profiles))
    await conn.execute(
        f"DELETE FROM held_writes WHERE state <> 'queued' AND done_at < clock_timestamp() - interval '{KEPT}'"
    )
    return settled


def _transient(exc: psycopg.Error) -> bool:
    """A failure of the moment (the server, the connection, contention, a timeout), not of the request."""
    return isinstance(
        exc, psycopg.OperationalError | psycopg.errors.TransactionRollback | psycopg.errors.QueryCanceled
    ) or not isinstance(exc, psycopg.DatabaseError)


class _Unreadable(Exception):
    pass


def _decoded(row: dict[str, Any]) -> list[BadgeChange] | list[ScoreUpdate]:
    try:
        if row["kind"] == "badges":
            return [BadgeChange(UUID(p), action, kind, reason) for p, action, kind, reason in row["items"]]
        return [_score_update(item) for item in row["items"]]
    except (ValueError, TypeError, KeyError) as exc:  # written by no version of this module
        raise _Unreadable(f"{type(exc).__name__}: {exc}") from exc


async def _apply(
    conn: Conn, community_id: int, kind: str, items: list[BadgeChange] | list[ScoreUpdate], mirrored: bool
) -> tuple[int, frozenset[UUID]]:
    if kind == "badges":
        changes = [c for c in items if isinstance(c, BadgeChange)]
        outcome = await apply_badge_changes(conn, community_id, changes, mirrored=mirrored)
        return outcome.score_version, frozenset()
    updates = [u for u in items if isinstance(u, ScoreUpdate)]
    versions = await apply_score_stream(conn, [(community_id, updates)], mirrored=mirrored, bulk=False)
    return versions[community_id], frozenset(u.profile_id for u in updates)


async def held_communities(conn: Conn) -> list[int]:
    cur = await conn.execute("SELECT DISTINCT community_id FROM held_writes WHERE state = 'queued'")
    return sorted(int(r["community_id"]) for r in await cur.fetchall())


async def held_outcome(conn: Conn, community_id: int, write_id: int) -> HeldOutcome | None:
    cur = await conn.execute(
        f"SELECT {_OUTCOME} FROM held_writes WHERE community_id = %s AND write_id = %s", (community_id, write_id)
    )
    row = await cur.fetchone()
    return HeldOutcome(**row) if row else None
