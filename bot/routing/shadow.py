"""Shadow reads: for a share of requests, another backend answers too, after the member's reply and
off their path, and the two answers' records are compared by what they mean (ranks, scores, distances).

Only answers are compared: a refusal on either side (not configured, not a member, slow down) is never
an answer, so it reaches no comparison and no latch.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import Counter
from collections.abc import Mapping
from typing import Any, Protocol

from backends.protocol import SnapshotInfo
from bot.domain.queries import Query, Refused
from bot.domain.service import HotPathService
from bot.routing.rollback import RollbackMonitor
from bot.routing.router import RoutingDecision
from bot.routing.serving import Served, answer

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
    def __init__(
        self,
        services: Mapping[str, HotPathService],
        rollback: RollbackMonitor,
        observer: ShadowObserver,
        *,
        reference: str,
        concurrency: int = 4,
    ) -> None:
        """`reference`: the backend whose answers count as right (a mismatch is blamed on the other)."""
        self.services = dict(services)
        self.rollback = rollback
        self.observer = observer
        self.reference = reference
        self.concurrency = concurrency
        # (command, compared backend, result) -> count, for /backends status
        self.results: Counter[tuple[str, str, str]] = Counter()
        self._running: set[asyncio.Task[None]] = set()

    def submit[T](
        self, decision: RoutingDecision, served: Served[T], guild_id: int, user_id: int | None, query: Query[T]
    ) -> None:
        """Compare the served answer with another backend's answer to the same query."""
        target = decision.shadow if decision.shadow != served.backend else decision.backend
        if target is None or target == served.backend:
            return
        if len(self._running) >= self.concurrency:
            self._count(decision.command, target, "skipped")
            return
        task = asyncio.get_running_loop().create_task(
            self._compare(decision.command, served, target, guild_id, user_id, query)
        )
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def idle(self) -> None:
        """Wait for the comparisons under way (tests, shutdown)."""
        while self._running:
            await asyncio.gather(*list(self._running), return_exceptions=True)

    async def _compare[T](
        self, command: str, served: Served[T], target: str, guild_id: int, user_id: int | None, query: Query[T]
    ) -> None:
        try:
            other = await asyncio.wait_for(
                answer(self.services[target], guild_id, user_id, query, note_snapshot=True), SHADOW_TIMEOUT_SECONDS
            )
        except Refused as refusal:
            # No answer to compare with (e.g. a copy that does not know the guild yet): not evidence.
            log.warning(
                "shadow read refused command=%s backend=%s guild=%s outcome=%s served_by=%s",
                command,
                target,
                guild_id,
                refusal.outcome,
                served.backend,
            )
            self._count(command, target, "refused")
            return
        except Exception as exc:
            log.warning("shadow read failed command=%s backend=%s guild=%s error=%r", command, target, guild_id, exc)
            self._count(command, target, "error")
            return
        if comparable(served.value) == comparable(other.value):
            result = "match"
        elif _stale(served.answer.snapshot, other.snapshot):
            result = "stale"
        else:
            result = "mismatch"
            log.warning(
                "shadow mismatch command=%s guild=%s user=%s\n  %s: %r\n  %s: %r",
                command,
                guild_id,
                user_id,
                served.backend,
                served.value,
                target,
                other.value,
            )
        suspect = target if served.backend == self.reference else served.backend
        self._count(command, target, result)
        self.rollback.record_shadow(command, suspect, result)

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
