"""A board whose rebuild is dear is rebuilt when its changes call for it, not at every round: many changed
members, the time its build took ten times over, or the change log's reach; meanwhile every answer is
PostgreSQL's, the changes laid over the snapshot."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from backends.protocol import BOARDS, TenantContext
from backends.scylla.live import LOG_KEEP, MARGIN
from backends.scylla.pacing import RebuildPace
from backends.scylla.snapshots import SnapshotVersion, current_version
from tests.scylla.conftest import Pair
from tests.scylla.test_live_changes import _changes, _community, _same_answers


def _pace(pair: Pair, monkeypatch: pytest.MonkeyPatch, clock: Callable[[], datetime], **kw: float) -> RebuildPace:
    """Every board paced as a dear one, however fast this one builds."""
    pace = RebuildPace(pair.scylla.cql, pair.scylla.t, cheap_seconds=0, clock=clock, **kw)  # type: ignore[arg-type]
    monkeypatch.setattr(pair.scylla.replica, "pace", pace)
    return pace


async def _snapshots(pair: Pair, guild: int) -> list[SnapshotVersion]:
    found = [await current_version(pair.scylla.cql, pair.scylla.t, guild, board) for board in BOARDS]
    assert all(s is not None for s in found)
    return found  # type: ignore[return-value]


async def test_a_dear_board_waits_for_enough_changed_members(
    pair: Pair, new_guild_id: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    pair.scylla.pointer_ttl = 0.0
    guild, rnd, ctx = new_guild_id, random.Random(3), TenantContext(new_guild_id)
    ids = await _community(pair, guild, "long_tail", rnd, 60)
    _pace(pair, monkeypatch, lambda: datetime.now(UTC), share=1e-9, changes_due=8)
    built = await _snapshots(pair, guild)

    await pair.writer.apply(ctx, _changes(rnd, "long_tail", ids[:5], 5))
    assert await pair.scylla.replica.rebuild(guild) == 0  # five changed members: laid over, not rebuilt
    assert await _snapshots(pair, guild) == built
    await _same_answers(pair, guild, ids)

    await pair.writer.apply(ctx, _changes(rnd, "long_tail", ids[:5], 5))  # the same five again
    assert await pair.scylla.replica.rebuild(guild) == 0
    await pair.writer.apply(ctx, _changes(rnd, "long_tail", ids[5:8], 3))  # eight now
    assert await pair.scylla.replica.rebuild(guild) == len(BOARDS)
    rebuilt = await _snapshots(pair, guild)
    assert all(after.version > before.version for before, after in zip(built, rebuilt, strict=True))
    await _same_answers(pair, guild, ids)

    await pair.writer.apply(ctx, _changes(rnd, "long_tail", ids[10:12], 2))  # counted from the new snapshot
    assert await pair.scylla.replica.rebuild(guild) == 0
    assert await pair.scylla.replica.rebuild(guild, force=True) == len(BOARDS)


@pytest.mark.parametrize("waited", ["ten builds", "the log's reach"])
async def test_a_dear_board_is_rebuilt_in_time(
    pair: Pair, new_guild_id: int, monkeypatch: pytest.MonkeyPatch, waited: str
) -> None:
    guild, rnd, ctx = new_guild_id, random.Random(4), TenantContext(new_guild_id)
    ids = await _community(pair, guild, "tied", rnd, 40)
    now = [datetime.now(UTC)]
    _pace(pair, monkeypatch, lambda: now[0], share=0.1 if waited == "ten builds" else 1e-9, changes_due=10**6)

    def due_at(snap: SnapshotVersion) -> datetime:
        assert snap.changes_from is not None
        took = snap.built_at - snap.changes_from
        return snap.changes_from + (10 * took if waited == "ten builds" else LOG_KEEP - MARGIN - 2 * took)

    due = max(due_at(snap) for snap in await _snapshots(pair, guild))  # the later of the two boards

    await pair.writer.apply(ctx, _changes(rnd, "tied", ids, 3))
    now[0] = due - timedelta(seconds=1)
    assert await pair.scylla.replica.rebuild(guild) == 0
    now[0] = due + timedelta(milliseconds=1)
    assert await pair.scylla.replica.rebuild(guild) == len(BOARDS)
