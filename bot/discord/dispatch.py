"""Runs one command end to end: route, tenant context, rate limit, handler with its time budget, fallback
to the other backend, reply inside Discord's window, then the shadow comparison off the user's path.

Every command and button goes through `CommandDispatcher`, so errors, deadlines, ephemeral rules,
fallback and metrics are handled once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import nextcord

from backends.protocol import InvalidInput, NotConfigured, TenantContext
from bot.app.metrics import Metrics
from bot.discord import messages
from bot.discord.delivery import Reply, deliver, error_reply
from bot.discord.ratelimit import RateLimiter
from bot.domain.service import HotPathService
from bot.routing.router import Router, RoutingDecision
from bot.routing.shadow import ShadowComparator

log = logging.getLogger(__name__)

Handler = Callable[[HotPathService, TenantContext], Awaitable[Reply]]


class MemberError(Exception):
    """An answer for the member that is an error message (not a member, not ranked, ...)."""

    def __init__(self, message: str, outcome: str = "refused") -> None:
        super().__init__(message)
        self.message = message
        self.outcome = outcome


async def answer(
    service: HotPathService, guild_id: int, user_id: int, handler: Handler, limiter: RateLimiter | None = None
) -> Reply:
    """The reply one backend gives; member-facing refusals become replies, backend failures raise."""
    try:
        ctx = await service.open_context(guild_id, user_id)
        assert ctx.community is not None
        if limiter is not None:
            wait = limiter.acquire(guild_id, user_id, ctx.community.rate_limit_per_minute)
            if wait:
                return error_reply(messages.slow_down(wait), "rate_limited")
        return await handler(service, ctx)
    except MemberError as exc:
        return error_reply(exc.message, exc.outcome)
    except NotConfigured:
        return error_reply(messages.NOT_CONFIGURED, "not_configured")


class CommandDispatcher:
    def __init__(
        self,
        router: Router,
        limiter: RateLimiter,
        metrics: Metrics,
        shadow: ShadowComparator,
        *,
        defer_after_seconds: float = 1.5,
    ) -> None:
        self.router = router
        self.limiter = limiter
        self.metrics = metrics
        self.shadow = shadow
        self.defer_after = defer_after_seconds
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    async def drain(self, timeout_seconds: float) -> int:
        """Wait for the interactions being answered (shutdown); return how many were still running."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_seconds)
        except TimeoutError:
            log.warning("shutdown with interactions still running count=%s", self._in_flight)
        await self.shadow.idle()
        return self._in_flight

    async def run(
        self,
        interaction: nextcord.Interaction[Any],
        command: str,
        handler: Handler,
        *,
        ephemeral: bool,
        update: bool = False,
    ) -> None:
        """Answer `interaction` with `handler`'s reply; `update=True` edits the clicked message instead."""
        started = time.monotonic()
        served_by = "none"
        decision: RoutingDecision | None = None

        async def produce() -> Reply:
            nonlocal served_by, decision
            guild_id, user = interaction.guild_id, interaction.user
            if guild_id is None or user is None:
                return error_reply(messages.GUILD_ONLY, "refused")
            try:
                decision = await self.router.route(command, guild_id, user.id)
                served_by, reply = await self._serve(decision, guild_id, user.id, handler)
                return reply
            except InvalidInput as exc:
                return error_reply(str(exc), "invalid")
            except Exception:
                log.exception("command failed command=%s backend=%s guild=%s", command, served_by, guild_id)
                return error_reply(messages.FAILED[command], "error")

        outcome = "undelivered"
        self._in_flight += 1
        self._idle.clear()
        try:
            reply = await deliver(
                interaction, produce(), ephemeral=ephemeral, update=update, defer_after=self.defer_after
            )
            outcome = reply.outcome
        finally:
            self._in_flight -= 1
            if not self._in_flight:
                self._idle.set()
            self.metrics.observe(command, served_by, interaction.guild_id, outcome, time.monotonic() - started)
        if decision is not None and decision.shadow and interaction.user is not None and reply.outcome != "error":
            self.shadow.submit(decision, served_by, reply, interaction.guild_id or 0, interaction.user.id, handler)

    async def _serve(
        self, decision: RoutingDecision, guild_id: int, user_id: int, handler: Handler
    ) -> tuple[str, Reply]:
        """The chosen backend within its budget; on failure or timeout the fallback backend, if allowed."""
        backend = decision.backend
        try:
            reply = await asyncio.wait_for(
                answer(self.router.service(backend), guild_id, user_id, handler, self.limiter),
                decision.budget_seconds,
            )
        except (InvalidInput, asyncio.CancelledError):
            raise
        except Exception as exc:
            self._failed(decision.command, backend)
            target = decision.fallback
            if target is None or self.router.breakers[target].state == "open":
                raise
            why = "timeout" if isinstance(exc, TimeoutError) else "error"
            log.warning(
                "fallback command=%s from=%s to=%s after=%s error=%r", decision.command, backend, target, why, exc
            )
            self.metrics.fallback(decision.command, backend, target, f"fallback after {why}")
            # The member was already counted against the rate limit by the first attempt.
            reply = await answer(self.router.service(target), guild_id, user_id, handler)
            self._succeeded(decision.command, target)
            return target, reply
        self._succeeded(decision.command, backend)
        return backend, reply

    def _failed(self, command: str, backend: str) -> None:
        self.router.breakers[backend].record_failure()
        self.router.rollback.record_call(command, backend, ok=False)

    def _succeeded(self, command: str, backend: str) -> None:
        self.router.breakers[backend].record_success()
        self.router.rollback.record_call(command, backend, ok=True)
