"""The outbox relay: copies score events (and the members' resulting states) from the source of truth
to every copy. An event leaves the outbox only in the transaction that saw it land in every copy, so an
outage loses nothing: the events wait and are replayed, with backoff, until they land."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Mapping
from uuid import UUID

from backends.copies import CopySource, OutboxBatch, Replica
from backends.protocol import BackendError, ScoreEvent
from bot.rounds import Rounds, RoundWatch, run_rounds

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
        # The council version each community's seats were last copied at by this relay: a batch copies the
        # council only when its view shows it moved since (once per community after a start).
        self._councils: dict[int, int] = {}

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
                relayed = len(batch.events) + len(batch.badge_moves)
                total += relayed
                if relayed:  # counted as each batch leaves the outbox, not when the flush ends
                    log.info("relayed events=%s badge_changes=%s", len(batch.events), len(batch.badge_moves))
                if len(batch.events) < RELAY_BATCH and len(batch.badge_moves) < RELAY_BATCH:
                    return total

    async def _copy(self, batch: OutboxBatch) -> None:
        by_community: dict[int, list[ScoreEvent]] = defaultdict(list)
        for community_id, event in batch.events:
            by_community[community_id].append(event)
        # A badge change travels as its member's state (which holds their badge count) and the community's
        # badge counts, read in the same view.
        badged: dict[int, dict[UUID, set[int]]] = defaultdict(lambda: defaultdict(set))
        for move in batch.badge_moves:
            badged[move.community_id][move.profile_id].add(move.held_before)
        pending_councils: dict[int, int] = {}
        for community_id in dict.fromkeys([*by_community, *badged]):
            events = by_community.get(community_id, [])
            # One view: each state is exactly the state at the version it is stored with.
            version = await batch.score_version(community_id) or 0
            members = list(dict.fromkeys([*(e.profile_id for e in events), *badged.get(community_id, ())]))
            states = await batch.member_states(community_id, members)
            counts = None
            if community_id in badged:
                before = badged[community_id]
                cleared = [(s, h) for s in states for h in before.get(s.profile.profile_id, ()) if 0 < h != s.badges]
                counts = (await batch.badge_histogram(community_id), await batch.badge_facts(community_id), cleared)
            council_version = await batch.council_version(community_id)
            council = None
            if self._councils.get(community_id) != council_version:
                council = await batch.council(community_id)
            for replica in self.replicas.values():
                await replica.put_states(community_id, states, version)
                if counts is not None:
                    histogram, facts, cleared = counts
                    await replica.put_badge_counts(community_id, histogram, facts, version, cleared)
                if council is not None:
                    await replica.put_council(community_id, council, version)
                await replica.put_history(community_id, events)
                await replica.put_changes(community_id, states, version)
                await replica.put_score_version(community_id, version)
            if council is not None:
                pending_councils[community_id] = council_version
        # Only once the batch has landed everywhere (its events leave the outbox with it).
        self._councils.update(pending_councils)

    async def pending(self, community_id: int | None = None) -> int:
        return await self.source.pending(community_id)

    async def run(self, stop: asyncio.Event, watch: RoundWatch | None = None) -> None:
        """Flush every interval until `stop`, at once when nudged; after a failure wait with a bounded
        exponential backoff (the events stay queued meanwhile)."""
        rounds = Rounds("outbox-relay", self.interval, self.max_backoff, wake=self._wake)
        self.running = True
        try:
            await run_rounds(self.flush, rounds, stop, watch)
        finally:
            self.running = False

    async def drain(self, timeout_seconds: float) -> int:
        """On shutdown: try to empty the outbox within the time; what is left stays durably queued."""
        try:
            await asyncio.wait_for(self.flush(), timeout_seconds)
        except (TimeoutError, BackendError) as exc:
            log.warning("outbox not drained at shutdown; kept durably error=%s", exc)
        return await self.pending()
