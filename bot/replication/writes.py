"""The score-update path: the source of truth first, then the copies, through the outbox."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from backends.protocol import BackendError, ScoreSource, ScoreUpdate, TenantContext
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
        """Apply the updates; return the new score version once the source of truth has them.

        The copy is attempted at once; if it fails the updates wait in the outbox and the relay's
        background loop replays them, so the caller never loses a write to a copy's outage.
        """
        dual = self.relay is not None and (self.mode() or self.default_mode) == "dual"
        version = await self.source.apply_score_updates(ctx, updates, enqueue=dual)
        if dual and self.relay is not None:
            try:
                await self.relay.flush()
            except BackendError as exc:
                log.warning("copy deferred to the outbox guild=%s version=%s error=%s", ctx.community_id, version, exc)
        return version
