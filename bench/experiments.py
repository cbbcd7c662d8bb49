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
