"""The outbox relay: copies score events (and the members' resulting states) from the source of truth
to every copy. An event leaves the outbox only in the transaction that saw it land in every copy, so an
outage loses nothing: the events wait and are replayed, with backoff, until they land."""

from __future__ import annotations

import asyncio
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
        self._wake = asyncio.Event()
        self.running = False
        self.failures = 0

    def nudge(self) -> None:
        """Ask the running loop to flush now rather than at its next interval."""
        self._wake.set()

    async def flush(self) -> int:
        """Relay every pending event; return how many. Raises when a copy refuses (events stay queued)."""
        total = 0
        async with self._lock:
            while True:
                async with self.source.outbox_batch(RELAY_BATCH) as batch:
                    await self._copy(batch)
                total += len(batch.events)
                if batch.events:  # counted as each batch leaves the outbox, not when the flush ends
                    log.info("relayed events=%s", len(batch.events))
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
                await replica.put_changes(community_id, states, version)
                await replica.put_score_version(community_id, version)

    async def pending(self, community_id: int | None = None) -> int:
        return await self.source.pending(community_id)

    async def run(self, stop: asyncio.Event) -> None:
        """Flush every interval until `stop`; after a failure wait with exponential backoff and jitter.

        Not tenacity: this loop never ends and waits on `stop`, where tenacity retries one call to success.
        """
        delay = self.interval
        self.running = True
        try:
            await self._loop(stop, delay)
        finally:
            self.running = False

    async def _loop(self, stop: asyncio.Event, delay: float) -> None:
        while not stop.is_set():
            self._wake.clear()
            try:
                await self.flush()
                if self.failures:
                    log.info("relay recovered after failures=%s", self.failures)
                self.failures, delay = 0, self.interval
            except Exception as exc:  # a background loop that dies would stop every copy for good
                self.failures += 1
                delay = min(self.max_backoff, self.interval * 2**self.failures) * random.uniform(0.8, 1.2)
                log.warning(
                    "relay failed; events stay queued failures=%s retry_in=%.1fs error=%s", self.failures, delay, exc
                )
            await self._sleep(stop, delay)

    async def _sleep(self, stop: asyncio.Event, delay: float) -> None:
        """Wait `delay`, or less when stopped or nudged (a failing copy is not nudged before its backoff)."""
        waits = [asyncio.ensure_future(stop.wait())]
        if not self.failures:
            waits.append(asyncio.ensure_future(self._wake.wait()))
        try:
            await asyncio.wait(waits, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()

    async def drain(self, timeout_seconds: float) -> int:
        """On shutdown: try to empty the outbox within the time; what is left stays durably queued."""
        try:
            await asyncio.wait_for(self.flush(), timeout_seconds)
        except (TimeoutError, BackendError) as exc:
            log.warning("outbox not drained at shutdown; kept durably error=%s", exc)
        return await self.pending()
