"""The bot's background work: the outbox relay, periodic snapshot rebuilds, role syncs, alert DMs, this
process's report for the migration page and the settling of the doors' held requests, started and
stopped together and kept alive: each loop runs in rounds that survive any error (`bot.rounds`), and a
loop whose `run` ends with an exception all the same is started again after a bounded backoff."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Protocol

from bot.app.health import Heartbeats, LoopObserver
from bot.replication.rebuilds import SnapshotRebuilds
from bot.replication.relay import OutboxRelay
from bot.roles.alerts import AlertSender
from bot.roles.sync import RoleSync
from bot.rounds import RoundWatch, backoff

log = logging.getLogger(__name__)

RESTART_MAX_SECONDS = 60.0


class Loop(Protocol):
    async def run(self, stop: asyncio.Event, watch: RoundWatch | None = None) -> None: ...


class BackgroundWork:
    def __init__(
        self,
        relay: OutboxRelay | None,
        rebuilds: SnapshotRebuilds | None,
        roles: RoleSync | None,
        observer: LoopObserver,
        alerts: AlertSender | None = None,
        report: Loop | None = None,
        held: Loop | None = None,
        *,
        drain_seconds: float,
        stale_after_seconds: float = 600.0,
    ) -> None:
        self.relay = relay
        self.rebuilds = rebuilds
        present: dict[str, Loop | None] = {
            "outbox-relay": relay,
            "snapshot-rebuilds": rebuilds,
            "role-sync": roles,
            "alert-dms": alerts,
            "process-report": report,
            "held-writes": held,
        }
        self.loops: Mapping[str, Loop] = {name: loop for name, loop in present.items() if loop is not None}
        self.drain_seconds = drain_seconds
        self.heartbeats = Heartbeats(self.loops, observer, stale_after_seconds=stale_after_seconds)
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        for name, loop in self.loops.items():
            self._tasks.append(asyncio.create_task(self._keep(name, loop), name=name))

    async def _keep(self, name: str, loop: Loop) -> None:
        restarts = 0
        while not self._stop.is_set():
            try:
                await loop.run(self._stop, self.heartbeats)
                return
            except Exception as exc:
                restarts += 1
                self.heartbeats.failed(name, exc)
                wait = backoff(1.0, restarts, RESTART_MAX_SECONDS)
                log.exception("background loop ended with an error; restarting loop=%s in=%.1fs", name, wait)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), wait)

    async def stop(self) -> None:
        """Stop the loops, then give the outbox one last chance to drain (what is left stays queued)."""
        self._stop.set()
        for task, result in zip(self._tasks, await asyncio.gather(*self._tasks, return_exceptions=True), strict=True):
            if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
                log.error("background loop failed while stopping loop=%s", task.get_name(), exc_info=result)
        if self.relay is not None:
            left = await self.relay.drain(self.drain_seconds)
            log.info("outbox at shutdown pending=%s", left)
