"""Answers one command from the backends a routing decision names: the chosen one within its time
budget, then each fallback in order. Breakers and latches hear how each backend did."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from backends.protocol import Board, InvalidInput, NotConfigured, TenantContext
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


async def answer(
    service: HotPathService, guild_id: int, user_id: int, handler: Handler, gate: Gate | None = None
) -> Answer:
    """The answer one backend gives; member-facing refusals are answers, backend failures raise."""
    try:
        ctx = await service.open_context(guild_id, user_id)
        if gate is not None and (refusal := gate(ctx)) is not None:
            return refusal
        return await handler(service, ctx)
    except Refused as refusal:
        return refusal
    except NotConfigured:
        return Refused(messages.NOT_CONFIGURED, "not_configured")


class Responder:
    def __init__(self, router: Router, observer: FallbackObserver) -> None:
        self.router = router
        self.observer = observer

    async def serve(
        self, decision: RoutingDecision, guild_id: int, user_id: int, handler: Handler, gate: Gate | None = None
    ) -> tuple[str, Answer]:
        """(the backend that answered, its answer). Raises when the chosen backend and every fallback fail."""
        backend = decision.backend
        try:
            result = await asyncio.wait_for(
                answer(self.router.service(backend), guild_id, user_id, handler, gate), decision.budget_seconds
            )
        except (InvalidInput, asyncio.CancelledError):
            raise
        except Exception as exc:
            self._record(decision.command, backend, ok=False)
            return await self._fall_back(decision, backend, exc, guild_id, user_id, handler)
        self._record(decision.command, backend, ok=True)
        return backend, result

    async def _fall_back(
        self, decision: RoutingDecision, failed: str, error: Exception, guild_id: int, user_id: int, handler: Handler
    ) -> tuple[str, Answer]:
        why = "timeout" if isinstance(error, TimeoutError) else "error"
        for target in decision.fallbacks:
            if self.router.breakers[target].state == "open":
                continue
            log.warning(
                "fallback command=%s from=%s to=%s after=%s error=%r", decision.command, failed, target, why, error
            )
            self.observer.fallback(decision.command, failed, target, f"fallback after {why}")
            try:
                # No gate: the member was already counted against the rate limit by the first attempt.
                result = await answer(self.router.service(target), guild_id, user_id, handler)
            except (InvalidInput, asyncio.CancelledError):
                raise
            except Exception as exc:
                self._record(decision.command, target, ok=False)
                failed, error, why = target, exc, "error"
                continue
            self._record(decision.command, target, ok=True)
            return target, result
        raise error

    def _record(self, command: str, backend: str, *, ok: bool) -> None:
        breaker = self.router.breakers[backend]
        breaker.record_success() if ok else breaker.record_failure()
        self.router.rollback.record_call(command, backend, ok=ok)
