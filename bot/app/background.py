"""The bot's background work: the outbox relay, periodic snapshot rebuilds and role syncs, started and
stopped together."""

from __future__ import annotations

import asyncio
import logging

from bot.replication.rebuilds import SnapshotRebuilds
from bot.replication.relay import OutboxRelay
from bot.roles.sync import RoleSync

log = logging.getLogger(__name__)


class BackgroundWork:
    def __init__(
        self,
        relay: OutboxRelay | None,
        rebuilds: SnapshotRebuilds | None,
        drain_seconds: float,
        roles: RoleSync | None = None,
    ) -> None:
        self.relay = relay
        self.rebuilds = rebuilds
        self.roles = roles
        self.drain_seconds = drain_seconds
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        if self.relay is not None:
            self._tasks.append(asyncio.create_task(self.relay.run(self._stop), name="outbox-relay"))
        if self.rebuilds is not None:
            self._tasks.append(asyncio.create_task(self.rebuilds.run(self._stop), name="snapshot-rebuilds"))
        if self.roles is not None:
            self._tasks.append(asyncio.create_task(self.roles.run(self._stop), name="role-sync"))

    async def stop(self) -> None:
        """Stop the loops, then give the outbox one last chance to drain (what is left stays queued)."""
        self._stop.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.relay is not None:
            left = await self.relay.drain(self.drain_seconds)
            log.info("outbox at shutdown pending=%s", left)
