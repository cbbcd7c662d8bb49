"""Leases on work that one bot process at a time should do, kept in PostgreSQL.

Two kinds, for two shapes of work:

- `AdvisoryLeases` (a community's snapshot rebuild): a session-level advisory lock on a connection in
  autocommit, released when the work ends. PostgreSQL frees it when its connection dies too, so a killed
  process leaves nothing behind. No transaction stays open meanwhile: an idle transaction pins the oldest
  snapshot the server must keep, and a rebuild of a large board (minutes, back to back while scores flow)
  held vacuum off every table, the community rows every write updates bloating until reads slowed. It
  holds one pooled connection for the work's length: only for work that needs no other connection of
  that pool.
- `ExpiringLeases` (a community's role sync, which reads the source of truth as it goes): a row with an
  expiry, taken and renewed by short statements, so the work holds no connection while it runs; a
  holder that dies frees it when the row expires.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from backends.postgres.pool import Connection, Pool, pooled
from backends.protocol import BackendError

log = logging.getLogger(__name__)


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
        key = lock_key(name)
        async with pooled(self._pool, autocommit=True) as conn:
            cur = await conn.execute("SELECT pg_try_advisory_lock(%s) AS held", (key,))
            row = await cur.fetchone()
            held = bool(row and row["held"])
            try:
                yield held
            finally:
                if held:
                    await _unlock(conn, key)


async def _unlock(conn: Connection, key: int) -> None:
    """Release a session lock before its connection goes back to the pool; a connection whose lock cannot
    be released for certain (an error, a cancellation) is closed instead, which releases it."""
    try:
        await asyncio.shield(conn.execute("SELECT pg_advisory_unlock(%s)", (key,)))
    except BaseException:
        await asyncio.shield(conn.close())
        raise


class ExpiringLeases:
    """Implements `bot.replication.rebuilds.Leases` with rows that expire after `ttl_seconds` unless renewed."""

    def __init__(self, pool: Pool, *, ttl_seconds: float = 120.0) -> None:
        self._pool = pool
        self.ttl = ttl_seconds
        # Unique per process and per object: two tasks of one process exclude each other through the
        # per-holder check below only if each hold has its own id, so every hold gets one.
        self._process = f"{socket.gethostname()}:{os.getpid()}"

    @asynccontextmanager
    async def hold(self, name: str) -> AsyncIterator[bool]:
        """True inside while this holder has `name`; False at once when another holds it."""
        holder = f"{self._process}:{uuid.uuid4().hex[:8]}"
        if not await self._take(name, holder):
            yield False
            return
        renewal = asyncio.ensure_future(self._renew(name, holder))
        try:
            yield True
        finally:
            renewal.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewal
            try:
                await asyncio.shield(self._release(name, holder))
            except BackendError as exc:  # it expires on its own
                log.warning("lease not released; it expires in %.0fs name=%s error=%s", self.ttl, name, exc)

    async def _take(self, name: str, holder: str) -> bool:
        async with pooled(self._pool) as conn:
            cur = await conn.execute(
                "INSERT INTO work_leases (name, holder, expires_at) VALUES (%s, %s, now() + make_interval(secs => %s))"
                " ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at"
                " WHERE work_leases.expires_at < now() RETURNING holder",
                (name, holder, self.ttl),
            )
            return await cur.fetchone() is not None

    async def _renew(self, name: str, holder: str) -> None:
        while True:
            await asyncio.sleep(self.ttl / 3)
            try:
                async with pooled(self._pool) as conn:
                    await conn.execute(
                        "UPDATE work_leases SET expires_at = now() + make_interval(secs => %s)"
                        " WHERE name = %s AND holder = %s",
                        (self.ttl, name, holder),
                    )
            except BackendError as exc:
                log.warning("lease not renewed name=%s error=%s", name, exc)

    async def _release(self, name: str, holder: str) -> None:
        async with pooled(self._pool) as conn:
            await conn.execute("DELETE FROM work_leases WHERE name = %s AND holder = %s", (name, holder))
