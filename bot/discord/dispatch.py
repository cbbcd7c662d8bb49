"""One path for every command: the member's request goes down (rate limit, routing, serving) and comes
back as records; the cog renders them and replies through the same call, inside Discord's window.

    async with dispatcher.command(interaction, "position", ephemeral=True) as call:
        data = await call.serve(queries.POSITION)
        await call.reply(position_embed(data))

A refusal, the request's own error or a backend failure raised inside the block becomes the member's
private error message; metrics and the shadow comparison (off the member's path) follow the reply.
"""

from __future__ import annotations

import asyncio
import logging
import time
from types import TracebackType
from typing import Any, Protocol

import nextcord
from cachetools import TTLCache

from backends.protocol import Community, InvalidInput
from bot.discord.delivery import Delivery, Reply, error_reply, expired
from bot.discord.ratelimit import RateLimiter
from bot.domain import messages
from bot.domain.queries import Query, Refused
from bot.routing.router import Router, RoutingDecision
from bot.routing.serving import RequestError, Responder, Served
from bot.routing.shadow import ShadowComparator

log = logging.getLogger(__name__)

LIMITS_KEPT = 100_000
LIMITS_SECONDS = 3600.0
DEFAULT_LIMIT = Community(1).rate_limit_per_minute


class CommandObserver(Protocol):
    def observe(self, command: str, backend: str, community_id: int | None, outcome: str, seconds: float) -> None: ...


class CommandDispatcher:
    def __init__(
        self,
        router: Router,
        responder: Responder,
        shadow: ShadowComparator,
        limiter: RateLimiter,
        observer: CommandObserver,
        *,
        defer_after_seconds: float = 1.5,
    ) -> None:
        self.router = router
        self.responder = responder
        self.shadow = shadow
        self.limiter = limiter
        self.observer = observer
        self.defer_after = defer_after_seconds
        # Each community's commands-per-minute, as its last served answer said: the rate limit is decided
        # before routing, with no read; a guild not seen yet (or not configured) gets the default.
        self._limits: TTLCache[int, int] = TTLCache(LIMITS_KEPT, LIMITS_SECONDS)
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def command(
        self, interaction: nextcord.Interaction[Any], command: str, *, ephemeral: bool, update: bool = False
    ) -> CommandCall:
        """The call answering `interaction`; `update=True` edits the clicked message instead."""
        return CommandCall(self, interaction, command, ephemeral=ephemeral, update=update)

    async def drain(self, timeout_seconds: float) -> int:
        """Wait for the interactions being answered (shutdown); return how many were still running."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_seconds)
        except TimeoutError:
            log.warning("shutdown with interactions still running count=%s", self._in_flight)
        await self.shadow.idle()
        return self._in_flight

    def admit(self, guild_id: int | None, user_id: int | None) -> tuple[int, int]:
        """The request's guild and user, or `Refused` when it comes from outside a server or too fast."""
        if guild_id is None or user_id is None:
            raise Refused(messages.GUILD_ONLY)
        wait = self.limiter.acquire(guild_id, user_id, self._limits.get(guild_id, DEFAULT_LIMIT))
        if wait:
            raise Refused(messages.slow_down(wait), "rate_limited")
        return guild_id, user_id

    def learned(self, guild_id: int, community: Community) -> None:
        self._limits[guild_id] = community.rate_limit_per_minute

    def _began(self) -> None:
        self._in_flight += 1
        self._idle.clear()

    def _ended(self) -> None:
        self._in_flight -= 1
        if not self._in_flight:
            self._idle.set()


class CommandCall:
    """One interaction, from the cog's first line to its reply (see the module's docstring)."""

    def __init__(
        self,
        dispatcher: CommandDispatcher,
        interaction: nextcord.Interaction[Any],
        command: str,
        *,
        ephemeral: bool,
        update: bool,
    ) -> None:
        self.dispatcher = dispatcher
        self.interaction = interaction
        self.command = command
        self.ephemeral = ephemeral
        self.delivery = Delivery(interaction, ephemeral=ephemeral, update=update, defer_after=dispatcher.defer_after)
        self.outcome = "undelivered"
        self._started = time.monotonic()
        self._served: tuple[RoutingDecision, Served[Any], Query[Any]] | None = None

    async def __aenter__(self) -> CommandCall:
        self.dispatcher._began()
        self.delivery.start()
        return self

    def admit(self) -> tuple[int, int]:
        """The caller's guild and user; `Refused` from outside a server or past the rate limit."""
        user = self.interaction.user
        return self.dispatcher.admit(self.interaction.guild_id, user.id if user else None)

    def learned(self, community: Community) -> None:
        """The community's settings as read for this call (its rate limit holds from the next call on)."""
        self.dispatcher.learned(community.community_id, community)

    async def serve[T](self, query: Query[T]) -> T:
        """The records answering `query` for the caller, from the backend the flag file routes to."""
        guild_id, user_id = self.admit()
        decision = await self.dispatcher.router.route(self.command, guild_id, user_id)
        served = await self.dispatcher.responder.serve(decision, guild_id, user_id, query)
        self.dispatcher.learned(guild_id, served.answer.community)
        self._served = (decision, served, query)
        return served.value

    async def reply(self, embed: nextcord.Embed, view: nextcord.ui.View | None = None) -> None:
        await self.delivery.send(Reply(embed, self.ephemeral, view))
        self.outcome = "ok"

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> bool:
        try:
            if expired(error):
                self._expired()
            elif isinstance(error, Exception) or (error is None and not self.delivery.sent):
                failed = self._error_reply(error)
                try:
                    await self.delivery.send(failed)
                    self.outcome = failed.outcome
                except nextcord.NotFound as gone:
                    if not expired(gone):
                        raise
                    self._expired()
        finally:
            self.delivery.close()
            self.dispatcher._ended()
            served_by = self._served[1].backend if self._served else "none"
            seconds = time.monotonic() - self._started
            self.dispatcher.observer.observe(self.command, served_by, self.interaction.guild_id, self.outcome, seconds)
        if self._served is not None and self.outcome == "ok":
            decision, served, query = self._served
            if decision.shadow:
                user = self.interaction.user
                self.dispatcher.shadow.submit(
                    decision, served, self.interaction.guild_id or 0, user.id if user else None, query
                )
        return isinstance(error, Exception)

    def _expired(self) -> None:
        """Discord gave up on the interaction before it was answered (the process or its databases too slow
        for its window): one line, no traceback, counted; nothing more can be sent for it."""
        self.outcome = "expired"
        log.warning(
            "interaction expired before its answer command=%s guild=%s seconds=%.1f",
            self.command,
            self.interaction.guild_id,
            time.monotonic() - self._started,
        )

    def _error_reply(self, error: BaseException | None) -> Reply:
        guild, served_by = self.interaction.guild_id, self._served[1].backend if self._served else "none"
        if isinstance(error, Refused):
            return error_reply(error.message, error.outcome)
        if isinstance(error, InvalidInput):
            return error_reply(str(error), "invalid")
        if isinstance(error, RequestError):
            # This request's own failure (e.g. data that cannot be shown): no backend is blamed.
            log.error("request failed command=%s backend=%s guild=%s", self.command, served_by, guild, exc_info=error)
        elif error is None:
            log.error("command ended without a reply command=%s backend=%s guild=%s", self.command, served_by, guild)
        else:
            log.error("command failed command=%s backend=%s guild=%s", self.command, served_by, guild, exc_info=error)
        return error_reply(messages.FAILED[self.command], "error")
