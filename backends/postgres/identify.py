"""Discord's IDENTIFY pace, shared by every bot process on the source of truth: one IDENTIFY per
concurrency bucket every few seconds, whichever process's shard sends it."""

from __future__ import annotations

import asyncio

from backends.postgres.pool import Pool, pooled


class IdentifySlots:
    """Implements `bot.app.client.IdentifyGate`."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def take(self, bucket: int, gap_seconds: float) -> None:
        """Return once this process may IDENTIFY in `bucket`: `gap_seconds` after the bucket's last one.

        The bucket's row stays locked until the slot is taken, so processes queue on it one by one."""
        async with pooled(self._pool) as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO identify_slots (bucket, last_at) VALUES (%s, '-infinity') ON CONFLICT DO NOTHING",
                (bucket,),
            )
            cur = await conn.execute(
                "SELECT extract(epoch FROM (last_at + make_interval(secs => %s)) - clock_timestamp()) AS wait"
                " FROM identify_slots WHERE bucket = %s FOR UPDATE",
                (gap_seconds, bucket),
            )
            row = await cur.fetchone()
            wait = float(row["wait"]) if row and row["wait"] is not None else 0.0
            if wait > 0:
                await asyncio.sleep(wait)
            await conn.execute("UPDATE identify_slots SET last_at = clock_timestamp() WHERE bucket = %s", (bucket,))
