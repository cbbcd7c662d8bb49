"""A rebuild's lease keeps one process at a time on a community's boards without holding a transaction open
(finding: the lease was a transaction-level lock in a transaction left open for the whole rebuild; on a
large board rebuilt back to back while scores flowed, the server could vacuum nothing, and the community
row every write updates grew to thousands of dead versions)."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from backends.postgres.leases import AdvisoryLeases, lock_key


async def _holders(dsn: str, name: str) -> list[dict[str, Any]]:
    """The sessions holding `name`'s advisory lock, with their state and the oldest snapshot they pin."""
    key = lock_key(name)
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True, row_factory=dict_row) as conn:
        cur = await conn.execute(
            "SELECT a.pid, a.state, a.backend_xmin FROM pg_locks l JOIN pg_stat_activity a USING (pid)"
            " WHERE l.locktype = 'advisory' AND l.granted"
            "   AND ((l.classid::bigint << 32) | l.objid::bigint) = %s",
            (key,),  # the shift wraps as the signed key does
        )
        return list(await cur.fetchall())


async def test_a_held_lease_excludes_others_and_pins_no_snapshot(
    pool: AsyncConnectionPool[Any], postgres_dsn: str, new_guild_id: int
) -> None:
    leases, name = AdvisoryLeases(pool), f"snapshot-rebuild:test:{new_guild_id}"
    async with leases.hold(name) as held:
        assert held
        async with leases.hold(name) as second:
            assert not second, "another holder of the same name"
        holders = await _holders(postgres_dsn, name)
        assert len(holders) == 1
        assert holders[0]["state"] == "idle", "the holder's session is in no transaction while the work runs"
        assert holders[0]["backend_xmin"] is None, "the holder pins no snapshot"
    assert await _holders(postgres_dsn, name) == []
    async with leases.hold(name) as again:
        assert again, "released when the work ended"


async def test_a_cancelled_holder_leaves_the_lease_free(
    pool: AsyncConnectionPool[Any], postgres_dsn: str, new_guild_id: int
) -> None:
    leases, name = AdvisoryLeases(pool), f"snapshot-rebuild:test:{new_guild_id}"
    inside = asyncio.Event()

    async def work() -> None:
        async with leases.hold(name) as held:
            assert held
            inside.set()
            await asyncio.sleep(3600)

    task = asyncio.create_task(work())
    await inside.wait()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)

    assert await _holders(postgres_dsn, name) == []
    for _ in range(pool.max_size):  # whichever pooled connection comes next holds nothing of it
        async with leases.hold(name) as held:
            assert held
