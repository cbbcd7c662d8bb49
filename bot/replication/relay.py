"""The outbox relay: copies score events (and the members' resulting states) from the source of truth
to every copy. An event leaves the outbox only in the transaction that saw it land in every copy, so an
outage loses nothing: the events wait and are replayed, with backoff, until they land."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import defaultdict
from collections.abc import Mapping

from backends.copies import CopySource, OutboxBatch, Replica
from backends.protocol import BackendError, ScoreEvent

log = logging.getLogger(__name__)

RELAY_BATCH = 500


class OutboxRelay:
    def __init__(
        self,
        source: CopySource,
        replicas: Mapping[str, Replica],
        *,
        interval_seconds: float = 1.0,
        max_backoff_seconds: float = 30.0,
    ) -> None:
        self.source = source
        self.replicas = dict(replicas)
        self.interval = interval_seconds
        self.max_backoff = max_backoff_seconds
        self._lock = asyncio.Lock()
        self.failures = 0

    async def flush(self) -> int:
        """Relay every pending event; return how many. Raises when a copy refuses (events stay queued)."""
        total = 0
        async with self._lock:
            while True:
                async with self.source.outbox_batch(RELAY_BATCH) as batch:
                    await self._copy(batch)
                total += len(batch.events)
                if len(batch.events) < RELAY_BATCH:
                    return total

    async def _copy(self, batch: OutboxBatch) -> None:
        by_community: dict[int, list[ScoreEvent]] = defaultdict(list)
        for community_id, event in batch.events:
            by_community[community_id].append(event)
        for community_id, events in by_community.items():
            # One view: each state is exactly the state at the version it is stored with.
            version = await batch.score_version(community_id) or 0
            states = await batch.member_states(community_id, [e.profile_id for e in events])
            for replica in self.replicas.values():
                await replica.put_states(community_id, states, version)
                await replica.put_history(community_id, events)
                await replica.put_score_version(community_id, version)

    async def pending(self, community_id: int | None = None) -> int:
        return await self.source.pending(community_id)

    async def run(self, stop: asyncio.Event) -> None:
        """Flush every interval until `stop`; after a failure wait with exponential backoff and jitter.

        Not tenacity: this loop never ends and waits on `stop`, where tenacity retries one call to success.
        """
        delay = self.interval
        while not stop.is_set():
            try:
                moved = await self.flush()
                if moved:
                    log.info("relayed events=%s", moved)
                if self.failures:
                    log.info("relay recovered after failures=%s", self.failures)
                self.failures, delay = 0, self.interval
            except Exception as exc:  # a background loop that dies would stop every copy for good
                self.failures += 1
                delay = min(self.max_backoff, self.interval * 2**self.failures) * random.uniform(0.8, 1.2)
                log.warning(
                    "relay failed; events stay queued failures=%s retry_in=%.1fs error=%s", self.failures, delay, exc
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)

    async def drain(self, timeout_seconds: float) -> int:
        """On shutdown: try to empty the outbox within the time; what is left stays durably queued."""
        try:
            await asyncio.wait_for(self.flush(), timeout_seconds)
        except (TimeoutError, BackendError) as exc:
            log.warning("outbox not drained at shutdown; kept durably error=%s", exc)
        return await self.pending()
