"""Answers one command from the backends a routing decision names: the chosen one within its time
budget, then each fallback in order. Breakers and latches hear how each backend did."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from backends.protocol import BackendError, Board, InvalidInput, NotConfigured, SnapshotInfo, TenantContext
from bot.domain import messages
from bot.domain.service import HotPathService
from bot.routing.router import Router, RoutingDecision

log = logging.getLogger(__name__)


class Answer(Protocol):
    """What a handler returns, as far as routing looks at it: an outcome, the domain records it was
    computed from (for shadow comparisons) and the board they came from."""

    @property
    def outcome(self) -> str: ...

    @property
    def data(self) -> Any: ...

    @property
    def board(self) -> Board: ...


class Refused(Exception):
    """An answer for the member that is a refusal (not a member, not ranked, slow down), not a failure."""

    data = None
    board: Board = "conviction"

    def __init__(self, message: str, outcome: str = "refused") -> None:
        super().__init__(message)
        self.message = message
        self.outcome = outcome


Handler = Callable[[HotPathService, TenantContext], Awaitable[Answer]]
# Runs once the tenant context is known, before the handler: a refusal ends the request (rate limit).
Gate = Callable[[TenantContext], Refused | None]


class FallbackObserver(Protocol):
    def fallback(self, command: str, source: str, target: str, reason: str) -> None: ...


@dataclass(frozen=True)
class Answered:
    """One backend's answer and, when asked for, the snapshot it was read from (for shadow comparisons:
    an answer from an older snapshot is stale, not wrong)."""

    answer: Answer
    snapshot: SnapshotInfo | None = None


async def answer(
    service: HotPathService,
    guild_id: int,
    user_id: int,
    handler: Handler,
    gate: Gate | None = None,
    *,
    note_snapshot: bool = False,
) -> Answered:
    """The answer one backend gives; member-facing refusals are answers, backend failures raise."""
    ctx = TenantContext(guild_id, user_id)
    try:
        ctx = await service.open_context(guild_id, user_id)
        if gate is not None and (refusal := gate(ctx)) is not None:
            return Answered(refusal)
        result: Answer = await handler(service, ctx)
    except Refused as refusal:
        result = refusal
    except NotConfigured:
        return Answered(Refused(messages.NOT_CONFIGURED, "not_configured"))
    # The same request context: a snapshot backend reports the snapshot its reads were pinned to.
    snapshot = await service.backend.snapshot_info(ctx, result.board) if note_snapshot else None
    return Answered(result, snapshot)


class RequestError(Exception):
    """The request's own failure (its data cannot be rendered, a handler bug): not the backend's doing, so
    it is not retried elsewhere and never counts against a breaker or a latch."""


def _backend_failed(exc: BaseException) -> bool:
    """Only what a backend did counts: its errors (InvalidInput is the caller's) and running out of time."""
    return isinstance(exc, TimeoutError) or (isinstance(exc, BackendError) and not isinstance(exc, InvalidInput))


class Responder:
    def __init__(self, router: Router, observer: FallbackObserver, *, patience_seconds: float = 60.0) -> None:
        """`patience_seconds`: how long a slow answer is waited for when no other backend can give it
        (the member sees a deferred reply meanwhile; Discord keeps it open for 15 minutes)."""
        self.router = router
        self.observer = observer
        self.patience = patience_seconds

    async def serve(
        self, decision: RoutingDecision, guild_id: int, user_id: int, handler: Handler, gate: Gate | None = None
    ) -> tuple[str, Answered]:
        """(the backend that answered, its answer).

        The chosen backend gets the decision's time budget; past it the next usable fallback is asked
        too and the first good answer wins, so slow is never an error while a backend can still answer.
        Raises RequestError for the request's own failure, else the last backend failure when every
        usable backend failed.
        """
        command = decision.command
        calls: dict[asyncio.Task[Answered], str] = {}
        note = decision.shadow is not None
        slow: set[str] = set()  # past the budget: a failure unless it still answers first

        counted = False

        def once(ctx: TenantContext) -> Refused | None:
            # The member is counted against the rate limit once per request, by whichever call gets there.
            nonlocal counted
            if counted or gate is None:
                return None
            counted = True
            return gate(ctx)

        def ask(backend: str) -> None:  # every call shares the one rate-limit count
            service = self.router.service(backend)
            work = answer(service, guild_id, user_id, handler, once, note_snapshot=note)
            calls[asyncio.ensure_future(work)] = backend

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
                        return backend, task.result()
                    if not _backend_failed(exc):
                        self._release(decision, backend)
                        if isinstance(exc, InvalidInput):
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
                if backend in slow:
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
        breaker = self.router.breakers[backend]
        breaker.record_success() if ok else breaker.record_failure()
        self.router.rollback.record_call(command, backend, ok=ok)

    def _release(self, decision: RoutingDecision, backend: str) -> None:
        """A call that says nothing about its backend frees the half-open trial it held; only the routed
        backend's call can hold one (fallbacks go to closed breakers only)."""
        if backend == decision.backend:
            self.router.breakers[backend].release()
