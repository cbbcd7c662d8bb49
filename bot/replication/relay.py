"""Keeps the Scylla copy in step with PostgreSQL: the outbox mirror and the resumable backfill."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import defaultdict
from collections.abc import Callable

import psycopg

from backends.postgres import export
from backends.postgres.backend import PostgresBackend
from backends.protocol import BOARDS, BackendError, NotConfigured, ScoreEvent, TenantContext
from backends.scylla.backend import ScyllaBackend
from backends.scylla.replica import BackfillState

log = logging.getLogger(__name__)

MIRROR_BATCH = 500
BACKFILL_BATCH = 2000


class ScoreMirror:
    """Copies outbox events (and the members' resulting states) from PostgreSQL to Scylla.

    An event leaves the outbox only in the transaction that saw its copy land, so a Scylla outage
    loses nothing: the events wait and are replayed, with backoff, until they land.
    """

    def __init__(
        self,
        source: PostgresBackend,
        target: ScyllaBackend,
        *,
        interval_seconds: float = 1.0,
        max_backoff_seconds: float = 30.0,
    ) -> None:
        self.source = source
        self.target = target
        self.interval = interval_seconds
        self.max_backoff = max_backoff_seconds
        self._lock = asyncio.Lock()
        self.failures = 0

    async def flush(self) -> int:
        """Mirror every pending event; return how many. Raises when Scylla refuses (events stay queued)."""
        total = 0
        async with self._lock:
            while True:
                moved = await self._flush_batch()
                total += moved
                if moved < MIRROR_BATCH:
                    return total

    async def _flush_batch(self) -> int:
        for attempt in range(3):
            try:
                async with self.source.connection() as conn, conn.transaction():
                    # One snapshot: each state is exactly the state at the version it is stored with.
                    await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                    claimed = await export.claim_unmirrored(conn, MIRROR_BATCH)
                    by_community: dict[int, list[ScoreEvent]] = defaultdict(list)
                    for community_id, event in claimed:
                        by_community[community_id].append(event)
                    for community_id, events in by_community.items():
                        version = await export.score_version(conn, community_id)
                        states = await export.member_states(conn, community_id, [e.profile_id for e in events])
                        await self.target.replica.put_states(community_id, states, version or 0)
                        await self.target.replica.put_history(community_id, events)
                        await self.target.replica.put_score_version(community_id, version or 0)
                    await export.mark_mirrored(conn, [e.event_id for _, e in claimed])
                return len(claimed)
            except psycopg.errors.SerializationFailure:
                log.info("mirror batch raced another flusher; retrying attempt=%s", attempt + 1)
        return 0

    async def pending(self, community_id: int | None = None) -> int:
        async with self.source.connection() as conn:
            return await export.count_unmirrored(conn, community_id)

    async def run(self, stop: asyncio.Event) -> None:
        """Flush every interval until `stop`; after a failure wait with exponential backoff and jitter."""
        delay = self.interval
        while not stop.is_set():
            try:
                moved = await self.flush()
                if moved:
                    log.info("mirrored events=%s", moved)
                if self.failures:
                    log.info("mirror recovered after failures=%s", self.failures)
                self.failures, delay = 0, self.interval
            except (BackendError, psycopg.Error) as exc:
                self.failures += 1
                delay = min(self.max_backoff, self.interval * 2**self.failures) * random.uniform(0.8, 1.2)
                log.warning(
                    "mirror failed; events stay queued failures=%s retry_in=%.1fs error=%s", self.failures, delay, exc
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)

    async def drain(self, timeout_seconds: float) -> int:
        """On shutdown: try to empty the outbox within the time; what is left stays durably queued."""
        try:
            await asyncio.wait_for(self.flush(), timeout_seconds)
        except (TimeoutError, BackendError, psycopg.Error) as exc:
            log.warning("outbox not drained at shutdown; kept durably error=%s", exc)
        return await self.pending()


Progress = Callable[[int, int], None]


async def backfill(
    source: PostgresBackend,
    target: ScyllaBackend,
    community_id: int,
    progress: Progress | None = None,
    batch: int = BACKFILL_BATCH,
) -> int:
    """Copy one community to Scylla and build its snapshots; resumes where an interrupted run stopped.

    Returns the number of members copied by this run. `progress(done, total)` is called per batch.
    """
    community = await source.get_community(TenantContext(community_id))
    if community is None:
        raise NotConfigured(f"community {community_id} is not configured in PostgreSQL")
    replica = target.replica
    await replica.put_community(community)
    state = await replica.backfill_state(community_id)
    resume = state is not None and state.state == "running"
    after = state.after_profile if state and resume else None
    done = state.rows_copied if state and resume else 0
    async with source.connection() as conn:
        total = await export.count_members(conn, community_id)
    copied = 0
    version = 0
    while True:
        async with source.connection() as conn, conn.transaction():
            await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            version = await export.score_version(conn, community_id) or 0
            states = await export.member_states_after(conn, community_id, after, batch)
        if states:
            await replica.put_states(community_id, states, version)
            after = states[-1].profile.profile_id
            copied += len(states)
            await replica.put_backfill_state(BackfillState(community_id, "running", after, done + copied, version))
            if progress:
                progress(done + copied, total)
        if len(states) < batch:
            break
    await replica.put_score_version(community_id, version)
    await replica.put_backfill_state(BackfillState(community_id, "complete", None, done + copied, version))
    for board in BOARDS:
        await target.recalculate(TenantContext(community_id), board)
    return copied
