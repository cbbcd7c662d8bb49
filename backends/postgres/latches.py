"""Auto-rollback latches kept in PostgreSQL, so every bot process and the CLI see and clear the same ones."""

from __future__ import annotations

from backends.postgres.pool import Pool, pooled


class LatchTable:
    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def all(self) -> dict[tuple[str, str], str]:
        async with pooled(self._pool) as conn:
            cur = await conn.execute("SELECT command, backend, reason FROM routing_latches")
            return {(r["command"], r["backend"]): r["reason"] for r in await cur.fetchall()}

    async def trip(self, command: str, backend: str, reason: str) -> None:
        async with pooled(self._pool) as conn:
            await conn.execute(
                "INSERT INTO routing_latches (command, backend, reason) VALUES (%s, %s, %s)"
                " ON CONFLICT (command, backend) DO NOTHING",
                (command, backend, reason),
            )

    async def clear(self, command: str | None = None, backend: str | None = None) -> int:
        async with pooled(self._pool) as conn:
            cur = await conn.execute(
                "DELETE FROM routing_latches WHERE (%s::text IS NULL OR command = %s)"
                " AND (%s::text IS NULL OR backend = %s)",
                (command, command, backend, backend),
            )
            return cur.rowcount
