"""Shadow reads: for a share of requests, another backend answers too, after the member's reply and
off their path, and the two answers are compared by what they mean (ranks, scores, distances)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import Counter
from typing import Any, Protocol

from backends.protocol import SnapshotInfo
from bot.routing.router import Router, RoutingDecision
from bot.routing.serving import Answer, Handler, answer

log = logging.getLogger(__name__)

SHADOW_TIMEOUT_SECONDS = 5.0


class ShadowObserver(Protocol):
    def shadow(self, command: str, backend: str, result: str) -> None: ...


def comparable(value: Any) -> Any:
    """The meaning of an answer: records field by field, without when it was computed."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return (
            type(value).__name__,
            *(comparable(getattr(value, f.name)) for f in dataclasses.fields(value) if f.name != "as_of"),
        )
    if isinstance(value, list | tuple):
        return tuple(comparable(v) for v in value)
    return value


class ShadowComparator:
    def __init__(self, router: Router, observer: ShadowObserver, concurrency: int = 4) -> None:
        self.router = router
        self.observer = observer
        self.concurrency = concurrency
        # (command, compared backend, result) -> count, for /backends status
        self.results: Counter[tuple[str, str, str]] = Counter()
        self._running: set[asyncio.Task[None]] = set()

    def submit(
        self,
        decision: RoutingDecision,
        served_by: str,
        reply: Answer,
        snapshot: SnapshotInfo | None,
        guild_id: int,
        user_id: int,
        handler: Handler,
    ) -> None:
        """Compare `reply` (read from `snapshot`, as the serving backend said) with another backend's answer."""
        target = decision.shadow if decision.shadow != served_by else decision.backend
        if target is None or target == served_by:
            return
        if len(self._running) >= self.concurrency:
            self._count(decision.command, target, "skipped")
            return
        task = asyncio.get_running_loop().create_task(
            self._compare(decision.command, served_by, target, reply, snapshot, guild_id, user_id, handler)
        )
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def idle(self) -> None:
        """Wait for the comparisons under way (tests, shutdown)."""
        while self._running:
            await asyncio.gather(*list(self._running), return_exceptions=True)

    async def _compare(
        self,
        command: str,
        served_by: str,
        target: str,
        reply: Answer,
        snapshot: SnapshotInfo | None,
        guild_id: int,
        user_id: int,
        handler: Handler,
    ) -> None:
        try:
            answered = await asyncio.wait_for(
                answer(self.router.service(target), guild_id, user_id, handler, note_snapshot=True),
                SHADOW_TIMEOUT_SECONDS,
            )
            other = answered.answer
        except Exception as exc:
            log.warning("shadow read failed command=%s backend=%s guild=%s error=%r", command, target, guild_id, exc)
            self._count(command, target, "error")
            return
        mine, theirs = comparable((reply.outcome, reply.data)), comparable((other.outcome, other.data))
        if mine == theirs:
            result = "match"
        elif _stale(snapshot, answered.snapshot):
            result = "stale"
        else:
            result = "mismatch"
            log.warning(
                "shadow mismatch command=%s guild=%s user=%s\n  %s: %r\n  %s: %r",
                command,
                guild_id,
                user_id,
                served_by,
                (reply.outcome, reply.data),
                target,
                (other.outcome, other.data),
            )
        suspect = target if served_by == self.router.reference else served_by
        self._count(command, target, result)
        self.router.rollback.record_shadow(command, suspect, result)

    def _count(self, command: str, target: str, result: str) -> None:
        self.results[(command, target, result)] += 1
        self.observer.shadow(command, target, result)


def _stale(*snapshots: SnapshotInfo | None) -> bool:
    """An answer read from a snapshot older than the live data the other answer read is stale, not wrong.

    Each answer carries the snapshot its own request read, so a snapshot replaced between the two reads
    (a rebuild, `sietch member remove`) is still seen as the one the answer came from.
    """
    known = [s for s in snapshots if s is not None]
    live = [s.score_version for s in known if s.live]
    return bool(live) and any(not s.live and s.score_version < max(live) for s in known)
