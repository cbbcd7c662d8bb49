"""The bot's background work: the outbox mirror and periodic snapshot rebuilds, started and stopped together."""

from __future__ import annotations

import asyncio
import logging

from bot.replication.rebuilds import Recalculator
from bot.replication.relay import ScoreMirror

log = logging.getLogger(__name__)


class BackgroundWork:
    def __init__(self, mirror: ScoreMirror | None, recalculator: Recalculator | None, drain_seconds: float) -> None:
        self.mirror = mirror
        self.recalculator = recalculator
        self.drain_seconds = drain_seconds
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        if self.mirror is not None:
            self._tasks.append(asyncio.create_task(self.mirror.run(self._stop), name="outbox-mirror"))
        if self.recalculator is not None:
            self._tasks.append(asyncio.create_task(self.recalculator.run(self._stop), name="recalculation"))

    async def stop(self) -> None:
        """Stop the loops, then give the outbox one last chance to drain (what is left stays queued)."""
        self._stop.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.mirror is not None:
            left = await self.mirror.drain(self.drain_seconds)
            log.info("outbox at shutdown pending=%s", left)
