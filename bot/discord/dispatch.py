"""Runs one command end to end: route, answer through the routing path, reply inside Discord's window,
then the shadow comparison off the user's path.

Every command and button goes through `CommandDispatcher`, so errors, deadlines, ephemeral rules and
metrics are handled once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Protocol

import nextcord
from cachetools import TTLCache

from backends.protocol import Community, InvalidInput, SnapshotInfo, TenantContext
from bot.discord.delivery import Reply, deliver, error_reply
from bot.discord.ratelimit import RateLimiter
from bot.domain import messages
from bot.routing.router import Router, RoutingDecision
from bot.routing.serving import Answer, Handler, Refused, RequestError, Responder
from bot.routing.shadow import ShadowComparator

log = logging.getLogger(__name__)

UNCONFIGURED_SECONDS = 5.0
UNCONFIGURED_KEPT = 100_000


class CommandObserver(Protocol):
    def observe(self, command: str, backend: str, community_id: int | None, outcome: str, seconds: float) -> None: ...


class CommandDispatcher:
    def __init__(
        self,
        responder: Responder,
        limiter: RateLimiter,
        observer: CommandObserver,
        shadow: ShadowComparator,
        *,
        defer_after_seconds: float = 1.5,
    ) -> None:
        self.responder = responder
        self.limiter = limiter
        self.observer = observer
        self.shadow = shadow
        self.defer_after = defer_after_seconds
        # Guilds found unconfigured a moment ago: their callers are rate limited before any lookup, so a
        # flood from a guild nobody set up cannot turn into a flood of database reads.
        self._unconfigured: TTLCache[int, bool] = TTLCache(UNCONFIGURED_KEPT, UNCONFIGURED_SECONDS)
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def router(self) -> Router:
        return self.responder.router

    async def drain(self, timeout_seconds: float) -> int:
        """Wait for the interactions being answered (shutdown); return how many were still running."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_seconds)
        except TimeoutError:
            log.warning("shutdown with interactions still running count=%s", self._in_flight)
        await self.shadow.idle()
        return self._in_flight

    def _rate_limit(self, ctx: TenantContext) -> Refused | None:
        assert ctx.community is not None and ctx.user_id is not None
        wait = self.limiter.acquire(ctx.community_id, ctx.user_id, ctx.community.rate_limit_per_minute)
        return Refused(messages.slow_down(wait), "rate_limited") if wait else None

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
        snapshot: SnapshotInfo | None = None

        async def produce() -> Reply:
            nonlocal served_by, decision, snapshot
            guild_id, user = interaction.guild_id, interaction.user
            if guild_id is None or user is None:
                return error_reply(messages.GUILD_ONLY, "refused")
            if guild_id in self._unconfigured:
                wait = self.limiter.acquire(guild_id, user.id, Community(guild_id).rate_limit_per_minute)
                if wait:
                    return error_reply(messages.slow_down(wait), "rate_limited")
            try:
                decision = await self.router.route(command, guild_id, user.id)
                served_by, answered = await self.responder.serve(decision, guild_id, user.id, handler, self._rate_limit)
                snapshot = answered.snapshot
                return _as_reply(answered.answer)
            except InvalidInput as exc:
                return error_reply(str(exc), "invalid")
            except RequestError:
                # This request's own failure (e.g. data that cannot be shown): no backend is blamed.
                log.exception(
                    "request failed command=%s backend=%s guild=%s user=%s", command, served_by, guild_id, user.id
                )
                return error_reply(messages.FAILED[command], "error")
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
            if outcome == "not_configured" and interaction.guild_id is not None:
                self._unconfigured[interaction.guild_id] = True
        finally:
            self._in_flight -= 1
            if not self._in_flight:
                self._idle.set()
            self.observer.observe(command, served_by, interaction.guild_id, outcome, time.monotonic() - started)
        if decision is not None and decision.shadow and interaction.user is not None and reply.outcome != "error":
            self.shadow.submit(
                decision, served_by, reply, snapshot, interaction.guild_id or 0, interaction.user.id, handler
            )


def _as_reply(result: Answer) -> Reply:
    if isinstance(result, Refused):
        return error_reply(result.message, result.outcome)
    assert isinstance(result, Reply), f"a handler returned {type(result).__name__}, not a Reply"
    return result
