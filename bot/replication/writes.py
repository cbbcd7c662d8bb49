"""The score-update path (and the badge changes'): the source of truth first, then the copies, through the
outbox."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from backends.protocol import (
    BackendError,
    BadgeChange,
    BadgeOutcome,
    BadgeSource,
    HeldOutcome,
    HeldWrite,
    HeldWrites,
    InvalidInput,
    ScoreBatches,
    ScoreSource,
    ScoreUpdate,
    TenantContext,
)
from bot.replication.relay import OutboxRelay

log = logging.getLogger(__name__)


class ScoreWriter:
    """Implements `bot.domain.service.ScoreWrites`."""

    def __init__(
        self,
        source: ScoreSource,
        relay: OutboxRelay | None = None,
        mode: Callable[[], str | None] = lambda: None,
        default_mode: str = "dual",
    ) -> None:
        """`mode()` is the flag file's writes mode (postgres | dual), None to use `default_mode` (the settings')."""
        self.source = source
        self.relay = relay
        self.mode = mode
        self.default_mode = default_mode
        self.held = asyncio.Event()  # set when a request was held: its settling need not wait a round

    async def apply(self, ctx: TenantContext, updates: Sequence[ScoreUpdate]) -> int:
        """Apply the updates; return the new score version once the source of truth has them."""
        return (await self.apply_batches([(ctx.community_id, updates)]))[ctx.community_id]

    async def apply_batches(self, batches: ScoreBatches) -> dict[int, int]:
        """Apply every (community, updates) batch in one transaction of the source of truth (all or none);
        return each community's new score version.

        The answer waits for the source of truth only. The copy is the relay's: when its loop runs in
        this process it is nudged to copy now, so acknowledgements never queue behind each other's copy;
        without a loop (a one-shot command) the copy is attempted here. A failed copy waits in the
        outbox and is replayed, so the caller never loses a write to a copy's outage.
        """
        dual = self._dual()
        versions = await self.source.apply_score_batches(batches, enqueue=dual)
        await self._copy(dual, versions)
        return versions

    async def apply_badges(self, ctx: TenantContext, changes: Sequence[BadgeChange]) -> BadgeOutcome:
        """Apply badge awards and revocations in order, all or none, then copy them as score writes are."""
        if not isinstance(self.source, BadgeSource):
            raise InvalidInput("the source of truth takes no badge changes")
        dual = self._dual()
        outcome = await self.source.apply_badge_changes(ctx, changes, enqueue=dual)
        await self._copy(dual, {ctx.community_id: outcome.score_version})
        return outcome

    async def apply_requests(
        self, community_id: int, requests: Sequence[Sequence[ScoreUpdate]]
    ) -> int | list[HeldWrite]:
        """A door's requests to one community in one transaction (the new score version), or each held whole
        while a bulk write has the community (`HeldWrites`); a source that cannot hold always applies."""
        if not isinstance(self.source, HeldWrites):
            return await self.apply(TenantContext(community_id), [u for r in requests for u in r])
        dual = self._dual()
        outcome = await self.source.apply_score_requests(community_id, requests, enqueue=dual)
        if isinstance(outcome, int):
            await self._copy(dual, {community_id: outcome})
        else:
            self.held.set()
        return outcome

    async def apply_or_hold_badges(
        self, ctx: TenantContext, changes: Sequence[BadgeChange]
    ) -> BadgeOutcome | HeldWrite:
        """`apply_badges` for a door: held whole while a bulk write has the community."""
        if not isinstance(self.source, HeldWrites):
            return await self.apply_badges(ctx, changes)
        dual = self._dual()
        outcome = await self.source.apply_or_hold_badges(ctx, changes, enqueue=dual)
        if isinstance(outcome, BadgeOutcome):
            await self._copy(dual, {ctx.community_id: outcome.score_version})
        else:
            self.held.set()
        return outcome

    async def held_communities(self) -> list[int]:
        return await self.source.held_communities() if isinstance(self.source, HeldWrites) else []

    async def held_outcome(self, community_id: int, write_id: int) -> HeldOutcome | None:
        return await self.source.held_outcome(community_id, write_id) if isinstance(self.source, HeldWrites) else None

    async def settle_held(self, community_id: int) -> list[HeldOutcome]:
        """Apply the community's oldest held requests (a bounded number), copied as any write is."""
        if not isinstance(self.source, HeldWrites):
            return []
        dual = self._dual()
        settled = await self.source.settle_held(community_id, enqueue=dual)
        applied = [s.score_version for s in settled if s.score_version is not None]
        if applied:
            await self._copy(dual, {community_id: max(applied)})
        return settled

    def _dual(self) -> bool:
        return self.relay is not None and (self.mode() or self.default_mode) == "dual"

    async def _copy(self, dual: bool, versions: dict[int, int]) -> None:
        if dual and self.relay is not None and self.relay.running:
            self.relay.nudge()
        elif dual and self.relay is not None:
            try:
                await self.relay.flush()
            except BackendError as exc:
                log.warning("copy deferred to the outbox versions=%s error=%s", versions, exc)
