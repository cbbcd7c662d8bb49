"""Candidate fixes tried by monkeypatching in the benchmark process (bot/ and backends/ stay untouched).

- `gather`: `HotPathService.get_position` reads the member with its neighbours and the entry score
  (position F) concurrently instead of one after the other: one round trip fewer on either backend.
  (The entry row is read for every member, also those above F, where it is not needed.)
- `pointer_cache`: `ScyllaBackend._pinned` takes the snapshot pointer and version row from a per-process
  cache younger than POINTER_TTL seconds, still pinned once per request (and safely when two reads of
  one request ask at once: the pin holds a shared future): two round trips fewer per request.
- `row_factory`: the driver's default `named_tuple_factory` builds a new namedtuple class (a
  `collections.namedtuple` call, tens of microseconds) for every result; a factory that caches the
  class per column list gives the same rows.
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import Any
from uuid import UUID

from cassandra.cluster import EXEC_PROFILE_DEFAULT
from cassandra.query import named_tuple_factory

from backends.protocol import BOARDS, Board, InvalidInput, RankedEntry, TenantContext
from backends.scylla import backend as scylla_backend
from backends.scylla.snapshots import SnapshotVersion, current_version
from bot import service as service_module
from bot.records import PositionData

POINTER_TTL = 1.0
_ORIGINAL: dict[str, Any] = {
    "get_position": service_module.HotPathService.get_position,
    "_pinned": scylla_backend.ScyllaBackend._pinned,
}
_pointers: dict[tuple[int, str], tuple[float, SnapshotVersion | None]] = {}


async def _member_and_neighbours(
    backend: Any, ctx: TenantContext, profile_id: UUID
) -> tuple[RankedEntry | None, RankedEntry | None, RankedEntry | None]:
    if hasattr(backend, "get_neighbours"):
        above, me, below = await backend.get_neighbours(ctx, "conviction", profile_id)
        return above, me, below
    me = await backend.get_rank(ctx, "conviction", profile_id)
    if me is None:
        return None, None, None
    around = {e.rank: e for e in await backend.get_range(ctx, "conviction", max(1, me.rank - 1), me.rank + 1)}
    return around.get(me.rank - 1), me, around.get(me.rank + 1)


async def _gathered_get_position(
    self: service_module.HotPathService, ctx: TenantContext, profile_id: UUID
) -> PositionData | None:
    settings = service_module._settings(ctx)
    f = settings.fedaykin
    (above, me, below), entry_rows = await asyncio.gather(
        _member_and_neighbours(self.backend, ctx, profile_id), self.backend.get_range(ctx, "conviction", f, f)
    )
    if me is None:
        return None
    pos, score = me.rank, me.score
    entry = service_module._by_rank(entry_rows).get(f) if pos > f else None
    entry_score: Decimal | None = entry.score if entry is not None else None
    return PositionData(
        position=pos,
        conviction=score,
        distance_to_above=above.score - score if above else None,
        distance_to_below=score - below.score if below else None,
        distance_to_entry=entry_score - score if entry_score is not None else None,
        is_naib=pos <= settings.naib,
        is_fedaykin=pos <= f,
        is_at_risk=settings.at_risk < pos <= f,
    )


async def _version(self: scylla_backend.ScyllaBackend, community_id: int, board: Board) -> SnapshotVersion | None:
    now = time.monotonic()
    hit = _pointers.get((community_id, board))
    if hit is not None and now - hit[0] < POINTER_TTL:
        return hit[1]
    version = await current_version(self.cql, self.t, community_id, board)
    _pointers[(community_id, board)] = (now, version)
    return version


async def _cached_pinned(
    self: scylla_backend.ScyllaBackend, ctx: TenantContext, board: Board
) -> SnapshotVersion | None:
    if board not in BOARDS:
        raise InvalidInput(f"unknown board {board!r}")
    key = scylla_backend._Pin(board)
    if key not in ctx.pins:
        # a future, so that concurrent reads of one request share one pin
        ctx.pins[key] = asyncio.ensure_future(_version(self, ctx.community_id, board))
    pinned = await ctx.pins[key]  # type: ignore[misc]
    assert pinned is None or isinstance(pinned, SnapshotVersion)
    return pinned


async def _safe_pinned(self: scylla_backend.ScyllaBackend, ctx: TenantContext, board: Board) -> SnapshotVersion | None:
    """The shipped `_pinned` (no cache), made safe for concurrent reads of one request."""
    if board not in BOARDS:
        raise InvalidInput(f"unknown board {board!r}")
    key = scylla_backend._Pin(board)
    if key not in ctx.pins:
        ctx.pins[key] = asyncio.ensure_future(current_version(self.cql, self.t, ctx.community_id, board))
    pinned = await ctx.pins[key]  # type: ignore[misc]
    assert pinned is None or isinstance(pinned, SnapshotVersion)
    return pinned


_row_classes: dict[tuple[str, ...], Any] = {}


def cached_named_tuple_factory(colnames: list[str], rows: list[Any]) -> list[Any]:
    """`cassandra.query.named_tuple_factory` with the row class built once per column list."""
    key = tuple(colnames)
    cls = _row_classes.get(key)
    if cls is None:
        sample = named_tuple_factory(colnames, rows[:1] or [tuple(None for _ in colnames)])
        cls = _row_classes[key] = type(sample[0])
    return [cls(*row) for row in rows]


def use_cached_rows(session: Any) -> None:
    session.cluster.profile_manager.profiles[EXEC_PROFILE_DEFAULT].row_factory = cached_named_tuple_factory


def _patch_connect() -> None:
    from backends.scylla import session as session_module
    from bot import container

    original = session_module.connect

    def connect(settings: Any) -> Any:
        cluster, session = original(settings)
        use_cached_rows(session)
        return cluster, session

    container.connect = connect  # type: ignore[assignment]


def apply(names: str | list[str]) -> list[str]:
    """Apply the named patches (comma-separated or a list); return what was applied."""
    wanted = [n.strip() for n in (names.split(",") if isinstance(names, str) else names) if n.strip()]
    for name in wanted:
        if name == "gather":
            service_module.HotPathService.get_position = _gathered_get_position  # type: ignore[method-assign]
            if "pointer_cache" not in wanted:
                scylla_backend.ScyllaBackend._pinned = _safe_pinned  # type: ignore[method-assign]
        elif name == "pointer_cache":
            scylla_backend.ScyllaBackend._pinned = _cached_pinned  # type: ignore[method-assign]
        elif name == "row_factory":
            _patch_connect()
        else:
            raise ValueError(f"unknown experiment {name!r}")
    return wanted


def reset() -> None:
    service_module.HotPathService.get_position = _ORIGINAL["get_position"]  # type: ignore[method-assign]
    scylla_backend.ScyllaBackend._pinned = _ORIGINAL["_pinned"]  # type: ignore[method-assign]
    _pointers.clear()


# --- PostgreSQL: ranks from score-band counts --------------------------------------------------------

BAND_SCALE = 32  # bands per e-fold of the score: band = floor(ln(score) * 32)

BAND_SETUP = (
    "CREATE TABLE IF NOT EXISTS bench_board_bands (community_id bigint, board text, band int, members bigint,"
    " PRIMARY KEY (community_id, board, band))",
    "DELETE FROM bench_board_bands WHERE community_id = %(c)s",
    f"INSERT INTO bench_board_bands SELECT community_id, 'conviction', floor(ln(conviction) * {BAND_SCALE})::int,"
    " count(*) FROM scores WHERE community_id = %(c)s AND conviction > 0 GROUP BY 1, 2, 3",
    f"CREATE INDEX IF NOT EXISTS bench_scores_conviction_band ON scores (community_id,"
    f" (floor(ln(conviction) * {BAND_SCALE})::int), (-conviction), joined_at, profile_id) INCLUDE (conviction)"
    " WHERE conviction > 0",
)
BAND_TEARDOWN = ("DROP INDEX IF EXISTS bench_scores_conviction_band", "DROP TABLE IF EXISTS bench_board_bands")

BAND_AHEAD = (
    "SELECT (SELECT coalesce(sum(members), 0) FROM bench_board_bands WHERE community_id = %(community)s"
    f"   AND board = 'conviction' AND band > floor(ln(%(score)s::numeric) * {BAND_SCALE})::int)"
    " + (SELECT count(*) FROM scores WHERE community_id = %(community)s AND conviction > 0"
    f"   AND floor(ln(conviction) * {BAND_SCALE})::int = floor(ln(%(score)s::numeric) * {BAND_SCALE})::int"
    "   AND (-conviction, joined_at, profile_id) < (-%(score)s::numeric, %(joined_at)s, %(profile_id)s)) AS ahead"
)

_ORIGINAL_PG: dict[str, Any] = {}


async def _banded_get_rank(self: Any, ctx: TenantContext, board: Board, profile_id: UUID) -> RankedEntry | None:
    """`PostgresBackend.get_rank` with the count of members ahead taken from band counts + one band."""
    if board != "conviction":
        return await _ORIGINAL_PG["get_rank"](self, ctx, board, profile_id)  # type: ignore[no-any-return]
    async with self.connection() as conn:
        cur = await conn.execute(
            "SELECT s.profile_id, s.conviction AS score, s.joined_at, p.nym, p.wallet_address"
            " FROM scores s JOIN profiles p USING (profile_id)"
            " WHERE s.community_id = %(community)s AND s.profile_id = %(profile_id)s AND s.conviction > 0",
            {"community": ctx.community_id, "profile_id": profile_id},
        )
        me = await cur.fetchone()
        if me is None:
            return None
        cur = await conn.execute(BAND_AHEAD, {"community": ctx.community_id, **me})
        ahead = await cur.fetchone()
    assert ahead is not None
    return RankedEntry(int(ahead["ahead"]) + 1, me["profile_id"], me["score"], me["nym"], me["wallet_address"])


def apply_bands() -> None:
    from backends.postgres.backend import PostgresBackend

    _ORIGINAL_PG.setdefault("get_rank", PostgresBackend.get_rank)
    PostgresBackend.get_rank = _banded_get_rank  # type: ignore[method-assign]


def reset_bands() -> None:
    from backends.postgres.backend import PostgresBackend

    if "get_rank" in _ORIGINAL_PG:
        PostgresBackend.get_rank = _ORIGINAL_PG["get_rank"]  # type: ignore[method-assign]


# --- Scylla: snapshot rows serialised once per batch's constant columns ------------------------------

_ORIGINAL_WRITER: dict[str, Any] = {}


async def _lean_write_rows(self: Any, community_id: int, board: str, version: int, ranked: list[Any]) -> None:
    """`SnapshotWriter._write_rows` without the 2M intermediate (query, params) tuples and without binding
    every value of every row: the partition's constant columns are serialised once per batch, the rest
    straight with the column type's serialiser (what `PreparedStatement.bind` does, minus its overhead)."""
    from backends.scylla import snapshots

    t = self.t
    by_rank = self.cql.prepare(
        f"INSERT INTO {t.by_rank} (community_id, board, version, bucket, rank, profile_id, score, nym,"
        f" wallet_address) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    by_profile = self.cql.prepare(
        f"INSERT INTO {t.by_profile} (community_id, board, version, bucket, profile_id, rank, score, nym,"
        f" wallet_address) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    proto = self.cql.session.cluster.protocol_version

    def serializers(prepared: Any) -> list[Any]:
        return [c.type.serialize for c in prepared.column_metadata]

    sr, sp = serializers(by_rank), serializers(by_profile)

    def enc(fn: Any, value: Any) -> Any:
        return None if value is None else fn(value, proto)

    def batch(prepared: Any, head: list[Any], rows: list[tuple[Any, ...]], ser: list[Any]) -> Any:
        from cassandra.query import BatchStatement, BatchType

        b = BatchStatement(batch_type=BatchType.UNLOGGED)
        b.add(prepared, (*head, *rows[0]))  # the first row the public way: routing key and keyspace
        const = [enc(f, v) for f, v in zip(ser[:4], head, strict=True)]
        for row in rows[1:]:
            b._add_statement_and_params(
                True, prepared.query_id, const + [enc(f, v) for f, v in zip(ser[4:], row, strict=True)]
            )
        return b

    def batches() -> Any:
        width, size = snapshots.RANK_WIDTH, snapshots.BATCH_ROWS
        for start in range(0, len(ranked), size):  # ranks: contiguous slices, one partition per RANK_WIDTH
            bucket = start // width
            stop = min(start + size, (bucket + 1) * width, len(ranked))
            rows = [
                (i + 1, r.profile_id, r.score, r.nym, r.wallet_address)
                for i, r in zip(range(start, stop), ranked[start:stop], strict=True)
            ]
            yield batch(by_rank, [community_id, board, version, bucket], rows, sr), ()
        parts: dict[int, list[tuple[Any, ...]]] = {}
        for i, r in enumerate(ranked):
            parts.setdefault(r.profile_id.int % snapshots.PROFILE_BUCKETS, []).append(
                (r.profile_id, i + 1, r.score, r.nym, r.wallet_address)
            )
        for pbucket, rows in parts.items():
            for start in range(0, len(rows), size):
                yield batch(by_profile, [community_id, board, version, pbucket], rows[start : start + size], sp), ()

    await self.cql.execute_concurrently(batches(), snapshots.WRITE_CONCURRENCY)


def apply_lean_writes() -> None:
    from backends.scylla.snapshots import SnapshotWriter

    _ORIGINAL_WRITER.setdefault("_write_rows", SnapshotWriter._write_rows)
    SnapshotWriter._write_rows = _lean_write_rows  # type: ignore[method-assign]


def reset_lean_writes() -> None:
    from backends.scylla.snapshots import SnapshotWriter

    if "_write_rows" in _ORIGINAL_WRITER:
        SnapshotWriter._write_rows = _ORIGINAL_WRITER["_write_rows"]  # type: ignore[method-assign]
