"""The score-update path: PostgreSQL first (the source of truth), then the copies, through the outbox."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from backends.protocol import BackendError, ScoreSource, ScoreUpdate, TenantContext
from bot.replication.relay import ScoreMirror

log = logging.getLogger(__name__)


class ScoreWriter:
    def __init__(
        self, source: ScoreSource, mirror: ScoreMirror | None = None, mode: Callable[[], str] = lambda: "dual"
    ) -> None:
        """`mode()` is the writes mode in force (the flag file's, else the settings'): postgres | dual."""
        self.source = source
        self.mirror = mirror
        self.mode = mode

    async def apply(self, ctx: TenantContext, updates: Sequence[ScoreUpdate]) -> int:
        """Apply the updates; return the new score version once PostgreSQL has them.

        The copy is attempted at once; if it fails the updates wait in the outbox and the mirror's
        background loop replays them, so the caller never loses a write to a Scylla outage.
        """
        dual = self.mirror is not None and self.mode() == "dual"
        version = await self.source.apply_score_updates(ctx, updates, enqueue=dual)
        if dual and self.mirror is not None:
            try:
                await self.mirror.flush()
            except BackendError as exc:
                log.warning("copy deferred to the outbox guild=%s version=%s error=%s", ctx.community_id, version, exc)
        return version
