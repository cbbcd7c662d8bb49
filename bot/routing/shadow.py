"""Shadow reads: for a share of requests, another backend answers too, after the member's reply and
off their path, and the two answers are compared by what they mean (ranks, scores, distances)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Any, Protocol

from backends.protocol import TenantContext
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
        self._running: set[asyncio.Task[None]] = set()

    def submit(
        self, decision: RoutingDecision, served_by: str, reply: Answer, guild_id: int, user_id: int, handler: Handler
    ) -> None:
        target = decision.shadow if decision.shadow != served_by else decision.backend
        if target is None or target == served_by:
            return
        if len(self._running) >= self.concurrency:
            self.observer.shadow(decision.command, target, "skipped")
            return
        task = asyncio.get_running_loop().create_task(
            self._compare(decision.command, served_by, target, reply, guild_id, user_id, handler)
        )
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def idle(self) -> None:
        """Wait for the comparisons under way (tests, shutdown)."""
        while self._running:
            await asyncio.gather(*list(self._running), return_exceptions=True)

    async def _compare(
        self, command: str, served_by: str, target: str, reply: Answer, guild_id: int, user_id: int, handler: Handler
    ) -> None:
        try:
            other = await asyncio.wait_for(
                answer(self.router.service(target), guild_id, user_id, handler), SHADOW_TIMEOUT_SECONDS
            )
        except Exception as exc:
            log.warning("shadow read failed command=%s backend=%s guild=%s error=%r", command, target, guild_id, exc)
            self.observer.shadow(command, target, "error")
            return
        mine, theirs = comparable((reply.outcome, reply.data)), comparable((other.outcome, other.data))
        if mine == theirs:
            result = "match"
        elif await self._stale(served_by, target, guild_id, reply):
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
        self.observer.shadow(command, target, result)
        self.router.rollback.record_shadow(command, suspect, result)

    async def _stale(self, served_by: str, target: str, guild_id: int, reply: Answer) -> bool:
        """A snapshot built from an older score version than the live data is stale, not wrong."""
        infos = [
            await self.router.service(b).backend.snapshot_info(TenantContext(guild_id), reply.board)
            for b in (served_by, target)
        ]
        live = [i.score_version for i in infos if i.live]
        return any(not i.live and live and i.score_version < max(live) for i in infos)
