"""Applies a list of score updates in one transaction with a fixed number of statements."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any
from uuid import UUID

from psycopg import AsyncConnection

from backends.exact import add, subtract
from backends.protocol import MAX_SCORE_EXPONENT, InvalidInput, NotConfigured, ScoreUpdate

Conn = AsyncConnection[dict[str, Any]]


async def apply_updates(conn: Conn, community_id: int, updates: Sequence[ScoreUpdate], *, mirrored: bool) -> int:
    """Apply `updates` in order (several may touch one profile); return the new score version.

    The community row is locked first, so concurrent writers to one community queue up in order. An
    update whose tx hash was already applied to that member's board (by this call or an earlier one) is
    skipped; when nothing is left the version does not move. A score an `add` would take out of range
    (its first significant digit past the 10^±MAX_SCORE_EXPONENT place) refuses the whole call
    (`InvalidInput`, so the caller's transaction writes nothing).
    """
    cur = await conn.execute(
        "SELECT score_version FROM communities WHERE community_id = %s FOR UPDATE", (community_id,)
    )
    row = await cur.fetchone()
    if row is None:
        raise NotConfigured(f"community {community_id} is not configured")
    ids = list({u.profile_id for u in updates})
    cur = await conn.execute(
        "SELECT p.profile_id, p.joined_at, p.discord_user_id, p.wallet_address, s.conviction, s.activity"
        " FROM profiles p"
        " LEFT JOIN scores s ON s.profile_id = p.profile_id"
        " WHERE p.community_id = %s AND p.profile_id = ANY(%s) ORDER BY p.profile_id FOR UPDATE OF p",
        (community_id, ids),
    )
    current = {r["profile_id"]: r for r in await cur.fetchall()}
    strangers = [str(pid) for pid in ids if pid not in current]
    if strangers:
        raise InvalidInput(f"not members of community {community_id}: {', '.join(sorted(strangers))}")
    updates = await _not_yet_applied(conn, community_id, updates)
    if not updates:
        return int(row["score_version"])
    values: dict[UUID, dict[str, Decimal]] = {
        pid: {"conviction": r["conviction"] or Decimal(0), "activity": r["activity"] or Decimal(0)}
        for pid, r in current.items()
        if pid in {u.profile_id for u in updates}
    }
    events = []
    for u in updates:
        before = values[u.profile_id][u.board]
        after = add(before, u.value) if u.mode == "add" else u.value
        if after and not -MAX_SCORE_EXPONENT <= after.adjusted() <= MAX_SCORE_EXPONENT:
            raise InvalidInput(
                f"the {u.board} score of member {_member(current[u.profile_id])} would be {after:.5e}"
                f" after adding {u.value:.5e}: out of range (its first significant digit must lie between"
                f" the 10^-{MAX_SCORE_EXPONENT} and the 10^{MAX_SCORE_EXPONENT} place)"
            )
        values[u.profile_id][u.board] = after
        events.append((u.profile_id, u.board, u.event_type, subtract(after, before), after, u.tx_hash, u.at))
    # Updates no copy is waiting for (no outbox) leave the copies behind: they raise the copy floor.
    cur = await conn.execute(
        "UPDATE communities SET score_version = score_version + 1,"
        " copy_floor = CASE WHEN %s THEN score_version + 1 ELSE copy_floor END"
        " WHERE community_id = %s RETURNING score_version",
        (mirrored, community_id),
    )
    version = int((await cur.fetchone() or {"score_version": 0})["score_version"])

    await conn.execute(
        "INSERT INTO scores (community_id, profile_id, joined_at, conviction, activity)"
        " SELECT %s, v.profile_id, v.joined_at, v.conviction, v.activity"
        "   FROM unnest(%s::uuid[], %s::timestamptz[], %s::numeric[], %s::numeric[])"
        "     AS v(profile_id, joined_at, conviction, activity)"
        " ON CONFLICT (community_id, profile_id) DO UPDATE SET conviction = EXCLUDED.conviction,"
        "  activity = EXCLUDED.activity, updated_at = now()",
        (
            community_id,
            list(values),
            [current[pid]["joined_at"] for pid in values],
            [v["conviction"] for v in values.values()],
            [v["activity"] for v in values.values()],
        ),
    )
    # A cached eligibility was checked against the scores these updates replace.
    await conn.execute(
        "DELETE FROM eligibility WHERE community_id = %s AND profile_id = ANY(%s)", (community_id, list(values))
    )
    columns = list(zip(*events, strict=True))
    await conn.execute(
        "INSERT INTO score_events (community_id, profile_id, board, event_type, delta, value_after, tx_hash,"
        " score_version, mirrored, created_at)"
        " SELECT %s, e.profile_id, e.board, e.event_type, e.delta, e.value_after, e.tx_hash, %s, %s,"
        "        coalesce(e.at, now())"
        "   FROM unnest(%s::uuid[], %s::text[], %s::text[], %s::numeric[], %s::numeric[], %s::text[],"
        "               %s::timestamptz[])"
        "     WITH ORDINALITY AS e(profile_id, board, event_type, delta, value_after, tx_hash, at, n) ORDER BY e.n",
        (community_id, version, mirrored, *(list(c) for c in columns)),
    )
    return version


def _member(row: dict[str, Any]) -> str:
    """How the feed names a member: its Discord id, else its wallet (else the profile id)."""
    return str(row["discord_user_id"] or row["wallet_address"] or row["profile_id"])


async def _not_yet_applied(conn: Conn, community_id: int, updates: Sequence[ScoreUpdate]) -> list[ScoreUpdate]:
    """The updates without a tx hash, and the first of each (member, board, tx hash) not applied before."""
    first: dict[tuple[UUID, str, str], int] = {}
    for i, u in enumerate(updates):
        if u.tx_hash is not None:
            first.setdefault((u.profile_id, u.board, u.tx_hash), i)
    if not first:
        return list(updates)
    keys = list(first)
    cur = await conn.execute(
        "INSERT INTO applied_transactions (community_id, profile_id, board, tx_hash)"
        " SELECT %s, k.profile_id, k.board, k.tx_hash FROM unnest(%s::uuid[], %s::text[], %s::text[])"
        "   AS k(profile_id, board, tx_hash)"
        " ON CONFLICT DO NOTHING RETURNING profile_id, board, tx_hash",
        (community_id, [k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys]),
    )
    fresh = {first[(r["profile_id"], r["board"], r["tx_hash"])] for r in await cur.fetchall()}
    return [u for i, u in enumerate(updates) if u.tx_hash is None or i in fresh]
