"""Leases on work that one bot process at a time should do (a community's snapshot rebuild), kept as
PostgreSQL advisory locks.

A lease is a transaction-level advisory lock, held by a transaction left open for as long as the work
runs. PostgreSQL frees it when that transaction ends and when its connection dies, so a process killed
mid-work leaves nothing behind: its server session ends with its socket. A session-level lock on a pooled
connection would outlive a release that never ran (a cancelled task) and go back to the pool still held.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from backends.postgres.pool import Pool, pooled


def lock_key(name: str) -> int:
    """The signed 64-bit key advisory locks take, the same in every process (Python's `hash` is salted)."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)


class AdvisoryLeases:
    """Implements `bot.replication.rebuilds.Leases` on the source of truth's pool."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    @asynccontextmanager
    async def hold(self, name: str) -> AsyncIterator[bool]:
        """True inside while this process holds `name`; False at once when another process holds it.

        Each holder has a pooled connection of its own, so two tasks of one process exclude each other too.
        """
        async with pooled(self._pool) as conn, conn.transaction():
            cur = await conn.execute("SELECT pg_try_advisory_xact_lock(%s) AS held", (lock_key(name),))
            row = await cur.fetchone()
            yield bool(row and row["held"])
