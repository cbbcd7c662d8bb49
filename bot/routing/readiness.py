"""Is a guild's Scylla copy fit to serve? Never backfilled, or behind with no catch-up under way: no."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

from backends.postgres import export
from backends.postgres.backend import PostgresBackend
from backends.protocol import BackendError
from backends.scylla.backend import ScyllaBackend

log = logging.getLogger(__name__)


class Readiness:
    def __init__(
        self,
        postgres: PostgresBackend,
        scylla: ScyllaBackend,
        *,
        max_lag_seconds: float = 30.0,
        cache_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.postgres = postgres
        self.scylla = scylla
        self.max_lag = max_lag_seconds
        self.cache_seconds = cache_seconds
        self._clock = clock
        self._cache: dict[int, tuple[float, str | None]] = {}

    async def check(self, guild_id: int) -> str | None:
        """None when ready, else the reason ("not ready: ..."). Cached briefly: it costs three reads."""
        now = self._clock()
        hit = self._cache.get(guild_id)
        if hit and now - hit[0] < self.cache_seconds:
            return hit[1]
        try:
            verdict = await self._check(guild_id)
        except BackendError as exc:
            # Unknown is not "not ready": the call itself will find out, and the breaker will count it.
            log.info("readiness unknown guild=%s error=%s", guild_id, exc)
            return None
        self._cache[guild_id] = (now, verdict)
        return verdict

    async def _check(self, guild_id: int) -> str | None:
        state = await self.scylla.replica.backfill_state(guild_id)
        if state is None or state.state != "complete":
            return "not ready: never backfilled" if state is None else "not ready: backfill not finished"
        copied = await self.scylla.replica.score_version(guild_id) or 0
        async with self.postgres.connection() as conn:
            source = await export.score_version(conn, guild_id) or 0
            if copied >= source:
                return None
            oldest = await export.oldest_unmirrored(conn, guild_id)
        # Behind, but the outbox is delivering: fine while the oldest queued write is recent.
        if oldest is not None and (datetime.now(UTC) - oldest).total_seconds() <= self.max_lag:
            return None
        return f"not ready: behind (version {copied} of {source})"

    def forget(self, guild_id: int | None = None) -> None:
        if guild_id is None:
            self._cache.clear()
        else:
            self._cache.pop(guild_id, None)
