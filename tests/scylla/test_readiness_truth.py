"""Readiness that cannot lie: a copy is ready for a guild only while it is known to hold what the source
holds. Resumed and interrupted backfills, imports, member removals and settings changes that bypass the
outbox, each at the point where a kill -9 would leave them."""

from __future__ import annotations

from decimal import Decimal

import psycopg
import pytest

from backends.members import MemberRow
from backends.protocol import Community, ScoreUpdate, TenantContext
from bot.replication.backfill import backfill
from bot.replication.verify import compare
from bot.routing.readiness import Readiness
from tests.scylla.conftest import Pair


class Killed(Exception):
    """Stands for a kill -9: the work stops at this point and nothing after it runs."""


def rows(scores: list[int], first_user: int = 1) -> list[MemberRow]:
    return [MemberRow(discord_user_id=first_user + i, conviction=Decimal(s)) for i, s in enumerate(scores)]


async def readiness(pair: Pair, guild: int) -> str | None:
    fresh = Readiness(pair.copy_source, {"scylla": pair.scylla.replica}, cache_seconds=0)
    return await fresh.check("scylla", guild)


async def differences(pair: Pair, guild: int) -> list[object]:
    ids = [s.profile.profile_id async for s in _states(pair, guild)]
    for board in ("conviction", "activity"):
        await pair.scylla.recalculate(TenantContext(guild), board)
    return list(await compare(pair.postgres_service(), pair.scylla_service(), guild, ids, sample=0))


async def _states(pair: Pair, guild: int):  # type: ignore[no-untyped-def]
    async with pair.copy_source.consistent_view() as view:
        for state in await view.member_states_after(guild, None, 10**6):
            yield state


def stop_after(batches: int):  # type: ignore[no-untyped-def]
    seen: list[int] = []

    def progress(done: int, total: int) -> None:
        seen.append(done)
        if len(seen) == batches:
            raise Killed

    return progress


async def test_a_resumed_backfill_after_an_import_starts_over_and_is_not_ready_meanwhile(
    pair: Pair, new_guild_id: int
) -> None:
    await pair.admin.upsert_community(Community(new_guild_id))
    await pair.admin.import_members(new_guild_id, rows([1000 + i for i in range(500)]))  # import A
    with pytest.raises(Killed):
        await backfill(pair.copy_source, pair.scylla.replica, new_guild_id, progress=stop_after(2), batch=100)
    # import B changes every score; the members copied by the first pass now differ
    await pair.admin.import_members(new_guild_id, rows([5_000_000 + 7 * i for i in range(500)]))
    assert await readiness(pair, new_guild_id) == "not ready: backfill not finished"

    copied = await backfill(pair.copy_source, pair.scylla.replica, new_guild_id, batch=100)
    assert copied == 500  # started over, not resumed after the saved profile id
    assert await readiness(pair, new_guild_id) is None
    assert await differences(pair, new_guild_id) == []


async def test_an_import_after_a_complete_backfill_makes_the_copy_not_ready_until_backfilled(
    pair: Pair, new_guild_id: int
) -> None:
    await pair.admin.upsert_community(Community(new_guild_id))
    await pair.admin.import_members(new_guild_id, rows([10, 20, 30]))
    await backfill(pair.copy_source, pair.scylla.replica, new_guild_id)
    assert await readiness(pair, new_guild_id) is None
    # the import lands in PostgreSQL; the process is killed before its backfill
    await pair.admin.import_members(new_guild_id, rows([300, 200, 100]))
    assert await readiness(pair, new_guild_id) == "not ready: changed outside the outbox since the last backfill"
    await backfill(pair.copy_source, pair.scylla.replica, new_guild_id)
    assert await readiness(pair, new_guild_id) is None
    assert await differences(pair, new_guild_id) == []


async def test_an_import_during_a_backfill_voids_the_pass(pair: Pair, new_guild_id: int) -> None:
    await pair.admin.upsert_community(Community(new_guild_id))
    await pair.admin.import_members(new_guild_id, rows([1000 + i for i in range(300)]))
    imported: list[bool] = []

    async def import_once() -> None:
        await pair.admin.import_members(new_guild_id, rows([9_000 - i for i in range(300)]))

    pending: list[object] = []

    def progress(done: int, total: int) -> None:
        if not imported:
            imported.append(True)
            pending.append(import_once())

    # The import runs between two batches of the first pass (awaited by the wrapper below).
    source = pair.copy_source
    original = source.consistent_view

    def view_after_import():  # type: ignore[no-untyped-def]
        return _ImportFirst(original(), pending)

    source.consistent_view = view_after_import  # type: ignore[method-assign]
    try:
        await backfill(source, pair.scylla.replica, new_guild_id, progress=progress, batch=100)
    finally:
        source.consistent_view = original  # type: ignore[method-assign]
    assert imported
    assert await readiness(pair, new_guild_id) is None
    assert await differences(pair, new_guild_id) == []


class _ImportFirst:
    """A consistent view that first runs any import scheduled by the progress callback."""

    def __init__(self, inner, pending: list[object]) -> None:  # type: ignore[no-untyped-def]
        self.inner, self.pending = inner, pending

    async def __aenter__(self):  # type: ignore[no-untyped-def]
        while self.pending:
            await self.pending.pop()  # type: ignore[misc]
        return await self.inner.__aenter__()

    async def __aexit__(self, *exc: object) -> None:
        await self.inner.__aexit__(*exc)


async def test_settings_and_removals_given_to_the_copy_keep_it_ready_and_a_kill_between_does_not(
    pair: Pair, new_guild_id: int
) -> None:
    from bot.app.app import App
    from bot.cli.copies import acknowledge

    await pair.admin.upsert_community(Community(new_guild_id))
    await pair.admin.import_members(new_guild_id, rows([10, 20, 30, 40]))
    await backfill(pair.copy_source, pair.scylla.replica, new_guild_id)

    # a settings change given to the copy and acknowledged, as `sietch community` does
    community = Community(new_guild_id, fedaykin=2, naib=1, at_risk=1, waitlist_end=3)
    move = await pair.admin.upsert_community(community)
    await pair.scylla.replica.put_community(community)
    await acknowledge(App(pair.container), pair.scylla.replica, new_guild_id, move)
    assert await readiness(pair, new_guild_id) is None

    # a removal killed after PostgreSQL, before the copy heard of it
    removed = await pair.admin.remove_member(new_guild_id, 1)
    assert removed is not None
    assert await readiness(pair, new_guild_id) == "not ready: changed outside the outbox since the last backfill"
    # run again to the end (as `sietch member remove` run again does): given, rebuilt, acknowledged
    await pair.scylla.replica.remove_member(new_guild_id, 1, removed[1].after)
    await pair.scylla.replica.rebuild(new_guild_id, force=True)
    await acknowledge(App(pair.container), pair.scylla.replica, new_guild_id, removed[1])
    assert await readiness(pair, new_guild_id) is None
    assert await differences(pair, new_guild_id) == []


async def test_a_queued_write_older_than_the_lag_makes_the_copy_not_ready_whatever_version_it_claims(
    pair: Pair, new_guild_id: int, postgres_dsn: str
) -> None:
    await pair.admin.upsert_community(Community(new_guild_id))
    ids = await pair.admin.import_members(new_guild_id, rows([10, 20]))
    await backfill(pair.copy_source, pair.scylla.replica, new_guild_id)
    ctx = TenantContext(new_guild_id)
    await pair.source.apply_score_updates(
        ctx, [ScoreUpdate(ids[0], "conviction", Decimal(99), "token_hold")], enqueue=True
    )
    # The copy claims the newest version (as a relay does after its first batch), the write still queued.
    await pair.scylla.replica.put_score_version(new_guild_id, await pair.copy_source.score_version(new_guild_id) or 0)
    assert await readiness(pair, new_guild_id) is None  # queued a moment ago: inside the lag allowed
    async with await psycopg.AsyncConnection.connect(postgres_dsn, autocommit=True) as conn:
        await conn.execute(
            "UPDATE score_events SET created_at = now() - interval '10 minutes'"
            " WHERE community_id = %s AND NOT mirrored",
            (new_guild_id,),
        )
    assert (await readiness(pair, new_guild_id) or "").startswith("not ready: behind")
