"""Is a guild's copy fit to serve? Never backfilled, or behind with no catch-up under way: no.

Only backends that serve from a copy are asked; the source of truth is always ready.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from cachetools import TTLCache

from backends.copies import CopySource, Replica
from backends.protocol import BackendError

log = logging.getLogger(__name__)

GUILDS_KEPT = 100_000


class Readiness:
    def __init__(
        self,
        source: CopySource,
        replicas: Mapping[str, Replica],
        *,
        max_lag_seconds: float = 30.0,
        cache_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source
        self.replicas = dict(replicas)
        self.max_lag = max_lag_seconds
        # A verdict costs three reads; it is kept briefly per (backend, guild).
        self._cache: TTLCache[tuple[str, int], str | None] = TTLCache(GUILDS_KEPT, cache_seconds, timer=clock)

    async def check(self, backend: str, guild_id: int) -> str | None:
        """None when ready, else the reason ("not ready: ...")."""
        replica = self.replicas.get(backend)
        if replica is None:
            return None
        key = (backend, guild_id)
        if key in self._cache:
            return self._cache[key]
        try:
            verdict = await self._check(replica, guild_id)
        except BackendError as exc:
            # Unknown is not "not ready": the call itself will find out, and the breaker will count it.
            log.info("readiness unknown backend=%s guild=%s error=%s", backend, guild_id, exc)
            return None
        self._cache[key] = verdict
        return verdict

    async def _check(self, replica: Replica, guild_id: int) -> str | None:
        state = await replica.backfill_state(guild_id)
        if state is None or state.state != "complete":
            return "not ready: never backfilled" if state is None else "not ready: backfill not finished"
        if state.score_version < await self.source.copy_floor(guild_id):
            return "not ready: changed outside the outbox since the last backfill"
        # The source first, the copy last: a write relayed between the reads then finds the copy at or past
        # the version read, instead of a copy read just before the write looking behind with nothing queued.
        source = await self.source.score_version(guild_id) or 0
        oldest = await self.source.oldest_pending(guild_id)
        copied = await replica.score_version(guild_id) or 0
        lagging = oldest is not None and (datetime.now(UTC) - oldest).total_seconds() > self.max_lag
        # A queued write older than the lag allowed: behind, whatever version the copy claims (a relay
        # stamps the version with its first batch, and a failing copy can hold the rest back).
        if lagging:
            return f"not ready: behind (a queued write is older than {self.max_lag:.0f}s)"
        # Behind, but the outbox is delivering: fine while the oldest queued write is recent.
        if copied >= source or oldest is not None:
            return None
        return f"not ready: behind (version {copied} of {source})"

    def forget(self, guild_id: int | None = None) -> None:
        if guild_id is None:
            self._cache.clear()
        else:
            for key in [k for k in self._cache if k[1] == guild_id]:
                self._cache.pop(key, None)
