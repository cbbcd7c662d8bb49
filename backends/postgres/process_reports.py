"""Each bot process's report of itself (`process_reports`), so one page can sum up every process."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from backends.postgres.pool import Pool, pooled

FORGET_AFTER = "1 day"  # rows of processes gone this long are deleted by whoever reports next


@dataclass(frozen=True)
class ProcessReport:
    process: str
    shards: tuple[int, ...]
    reported_at: datetime
    report: dict[str, Any]


class ProcessReports:
    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def write(self, process: str, shards: Sequence[int], report: dict[str, Any]) -> None:
        async with pooled(self._pool) as conn:
            await conn.execute(
                "INSERT INTO process_reports (process, shards, report) VALUES (%s, %s, %s)"
                " ON CONFLICT (process) DO UPDATE SET shards = excluded.shards, reported_at = now(),"
                " report = excluded.report",
                (process, list(shards), Jsonb(report)),
            )
            await conn.execute(f"DELETE FROM process_reports WHERE reported_at < now() - interval '{FORGET_AFTER}'")

    async def fresh(self, within_seconds: float) -> list[ProcessReport]:
        """The reports written within the last `within_seconds`, by the database's clock."""
        async with pooled(self._pool) as conn:
            cur = await conn.execute(
                "SELECT process, shards, reported_at, report FROM process_reports"
                " WHERE reported_at > now() - make_interval(secs => %s) ORDER BY process",
                (within_seconds,),
            )
            return [
                ProcessReport(r["process"], tuple(r["shards"]), r["reported_at"], r["report"])
                for r in await cur.fetchall()
            ]
