"""Answers one request from the backends a routing decision names: the chosen one within its time
budget, then each fallback in order. Breakers and latches hear how each backend did; a refusal or the
request's own error tells them nothing."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from backends.protocol import (
    LOCAL_WAIT,
    BackendError,
    Community,
    InvalidInput,
    LocalWait,
    NotConfigured,
    SnapshotInfo,
)
from bot.domain import messages
from bot.domain.queries import Query, Refused
from bot.domain.service import HotPathService
from bot.routing.breaker import CircuitBreaker
from bot.routing.rollback import RollbackMonitor
from bot.routing.router import Router, RoutingDecision

log = logging.getLogger(__name__)


class FallbackObserver(Protocol):
    def fallback(self, command: str, source: str, target: str, reason: str) -> None: ...


@dataclass(frozen=True)
class Answer[T]:
    """One backend's records for a request, the community settings they were computed with and, when
    asked for, the snapshot they were read from (an answer from an older snapshot is stale, not wrong)."""

    value: T
    community: Community
    snapshot: SnapshotInfo | None = None


@dataclass(frozen=True)
class Served[T]:
    """The answer the member gets, and the backend that gave it."""

    backend: str
    answer: Answer[T]

    @property
    def value(self) -> T:
        return self.answer.value


async def answer[T](
    service: HotPathService, guild_id: int, user_id: int | None, query: Query[T], *, note_snapshot: bool = False
) -> Answer[T]:
    """The records one backend gives; a refusal raises `Refused`, a backend failure its error."""
    try:
        ctx = await service.open_context(guild_id, user_id)
    except NotConfigured:
        raise Refused(messages.NOT_CONFIGURED, "not_configured") from None
    assert ctx.community is not None
    value = await query.read(service, ctx)
    # The same request context: a snapshot backend reports the snapshot its reads were pinned to.
    snapshot = await service.backend.snapshot_info(ctx, query.board) if note_snapshot else None
    return Answer(value, ctx.community, snapshot)


class RequestError(Exception):
    """The request's own failure (its data cannot be rendered, a handler bug): not the backend's doing, so
    it is not retried elsewhere and never counts against a breaker or a latch."""


def _backend_failed(exc: BaseException) -> bool:
    """Only what a backend did counts: its errors (InvalidInput is the caller's) and running out of time."""
    return isinstance(exc, TimeoutError) or (isinstance(exc, BackendError) and not isinstance(exc, InvalidInput))


class Responder:
    def __init__(
        self,
        services: Mapping[str, HotPathService],
        router: Router,
        breakers: Mapping[str, CircuitBreaker],
        rollback: RollbackMonitor,
        observer: FallbackObserver,
        *,
        patience_seconds: float = 60.0,
    ) -> None:
        """`patience_seconds`: how long a slow answer is waited for when no other backend can give it
        (the member sees a deferred reply meanwhile; Discord keeps it open for 15 minutes)."""
        self.services = dict(services)
        self.router = router
        self.breakers = dict(breakers)
        self.rollback = rollback
        self.observer = observer
        self.patience = patience_seconds

    async def serve[T](
        self, decision: RoutingDecision, guild_id: int, user_id: int | None, query: Query[T]
    ) -> Served[T]:
        """The first good answer of the routed backend and its fallbacks.

        The chosen backend gets the decision's time budget; past it the next usable fallback is asked
        too and the first good answer wins, so slow is never an error while a backend can still answer.
        Raises `Refused` for a refusal, `InvalidInput` or `RequestError` for the request's own failure,
        else the last backend failure when every usable backend failed.
        """
        command = decision.command
        calls: dict[asyncio.Task[Answer[T]], str] = {}
        note = decision.shadow is not None
        slow: set[str] = set()  # past the budget: a failure unless it still answers first

        local: dict[str, LocalWait] = {}  # whether a call is waiting for this process's pool, not its store

        def ask(backend: str) -> None:
            local[backend] = LocalWait()
            token = LOCAL_WAIT.set(local[backend])  # the task starts with a copy of this context
            try:
                work = answer(self.services[backend], guild_id, user_id, query, note_snapshot=note)
                calls[asyncio.ensure_future(work)] = backend
            finally:
                LOCAL_WAIT.reset(token)

        ask(decision.backend)
        fallbacks = list(decision.fallbacks)
        failure: BaseException | None = None
        budget: float | None = decision.budget_seconds
        try:
            while calls:
                wait = budget if budget is not None else self.patience
                done, _ = await asyncio.wait(calls, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
                if not done:
                    slow.update(calls.values())
                    if budget is None:
                        raise failure or TimeoutError(f"no backend answered within {self.patience:.0f}s")
                    budget = None  # spent once: then one more backend is asked alongside, and patience
                    await self._ask_next(decision, fallbacks, guild_id, next(iter(calls.values())), "timeout", ask)
                    continue
                for task in done:
                    backend = calls.pop(task)
                    slow.discard(backend)
                    exc = task.exception()
                    if exc is None:
                        self._record(command, backend, ok=True)
                        return Served(backend, task.result())
                    if not _backend_failed(exc):
                        self._release(decision, backend)
                        if isinstance(exc, Refused | InvalidInput):
                            raise exc
                        raise RequestError(f"{type(exc).__name__}: {exc}") from exc
                    self._record(command, backend, ok=False)
                    failure = exc
                    if not calls:
                        await self._ask_next(decision, fallbacks, guild_id, backend, "error", ask, exc)
            assert failure is not None
            raise failure
        finally:
            for task, backend in calls.items():  # answers no longer needed
                task.cancel()
                # Slow is the store's failure, unless the call was still waiting for a pooled connection
                # (a busy process, not a failing store: that wait fails on its own past the pool timeout).
                if backend in slow and not local[backend].waiting:
                    self._record(command, backend, ok=False)
                else:
                    self._release(decision, backend)

    async def _ask_next(
        self,
        decision: RoutingDecision,
        fallbacks: list[str],
        guild_id: int,
        failed: str,
        why: str,
        ask: Callable[[str], None],
        error: BaseException | None = None,
    ) -> bool:
        """Start the next fallback that may serve this guild now; False when none is left."""
        while fallbacks:
            target = fallbacks.pop(0)
            if not await self.router.may_fall_back_to(decision.command, target, guild_id):
                continue
            log.warning(
                "fallback command=%s guild=%s from=%s to=%s after=%s error=%r",
                decision.command,
                guild_id,
                failed,
                target,
                why,
                error,
            )
            self.observer.fallback(decision.command, failed, target, f"fallback after {why}")
            ask(target)
            return True
        return False

    def _record(self, command: str, backend: str, *, ok: bool) -> None:
        breaker = self.breakers[backend]
        breaker.record_success() if ok else breaker.record_failure()
        self.rollback.record_call(command, backend, ok=ok)

    def _release(self, decision: RoutingDecision, backend: str) -> None:
        """A call that says nothing about its backend frees the half-open trial it held; only the routed
        backend's call can hold one (fallbacks go to closed breakers only)."""
        if backend == decision.backend:
            self.breakers[backend].release()
