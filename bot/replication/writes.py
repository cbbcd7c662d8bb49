"""The score-update path (and the badge changes'): the source of truth first, then the copies, through the
outbox."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from backends.protocol import (
    BackendError,
    BadgeChange,
    BadgeOutcome,
    BadgeSource,
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
