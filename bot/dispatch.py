"""Runs one command end to end: route, tenant context, rate limit, handler, reply in Discord's window.

Every command and button goes through `CommandDispatcher`, so errors, the 3 s deadline, ephemeral
rules and metrics are handled once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import nextcord

from backends.protocol import NotConfigured, TenantContext
from bot import messages
from bot.embeds import error_embed
from bot.metrics import Metrics
from bot.ratelimit import RateLimiter
from bot.router import Router
from bot.service import HotPathService

log = logging.getLogger(__name__)


@dataclass
class Reply:
    embed: nextcord.Embed
    ephemeral: bool
    view: nextcord.ui.View | None = None
    outcome: str = "ok"


class MemberError(Exception):
    """An answer for the member that is an error message (not a member, not ranked, ...)."""

    def __init__(self, message: str, outcome: str = "refused") -> None:
        super().__init__(message)
        self.message = message
        self.outcome = outcome


def error_reply(message: str, outcome: str) -> Reply:
    return Reply(error_embed(message), ephemeral=True, outcome=outcome)


Handler = Callable[[HotPathService, TenantContext], Awaitable[Reply]]


class CommandDispatcher:
    def __init__(
        self, router: Router, limiter: RateLimiter, metrics: Metrics, *, defer_after_seconds: float = 1.5
    ) -> None:
        self.router = router
        self.limiter = limiter
        self.metrics = metrics
        self.defer_after = defer_after_seconds

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
        backend = "none"

        async def produce() -> Reply:
            nonlocal backend
            guild_id, user = interaction.guild_id, interaction.user
            if guild_id is None or user is None:
                return error_reply(messages.GUILD_ONLY, "refused")
            decision = self.router.route(command, guild_id, user.id)
            backend = decision.backend
            service = self.router.service(decision)
            try:
                ctx = await service.open_context(guild_id, user.id)
                assert ctx.community is not None
                wait = self.limiter.acquire(guild_id, user.id, ctx.community.rate_limit_per_minute)
                if wait:
                    return error_reply(messages.slow_down(wait), "rate_limited")
                return await handler(service, ctx)
            except MemberError as exc:
                return error_reply(exc.message, exc.outcome)
            except NotConfigured:
                return error_reply(messages.NOT_CONFIGURED, "not_configured")
            except Exception:
                log.exception("command failed command=%s backend=%s guild=%s", command, backend, guild_id)
                return error_reply(messages.FAILED[command], "error")

        outcome = "undelivered"
        try:
            reply = await deliver(
                interaction, produce(), ephemeral=ephemeral, update=update, defer_after=self.defer_after
            )
            outcome = reply.outcome
        finally:
            self.metrics.observe(command, backend, interaction.guild_id, outcome, time.monotonic() - started)


async def deliver(
    interaction: nextcord.Interaction[Any],
    work: Coroutine[Any, Any, Reply],
    *,
    ephemeral: bool,
    update: bool,
    defer_after: float,
) -> Reply:
    """Send the reply directly when it is ready in time, else defer first and edit afterwards.

    An error after a public defer is sent as a private follow-up and the public placeholder removed,
    because Discord fixes a message's ephemeral state at its first response.
    """
    task = asyncio.ensure_future(work)
    done, _ = await asyncio.wait({task}, timeout=defer_after)
    if not done:
        if update:
            await interaction.response.defer()
        else:
            await interaction.response.defer(ephemeral=ephemeral)
    reply = await task
    view = reply.view or nextcord.utils.MISSING
    if not interaction.response.is_done():
        if update and not reply.ephemeral:
            await interaction.response.edit_message(embed=reply.embed, view=view)
        else:
            await interaction.response.send_message(embed=reply.embed, view=view, ephemeral=reply.ephemeral)
    elif update and reply.ephemeral:
        await interaction.followup.send(embed=reply.embed, ephemeral=True)
    elif reply.ephemeral != ephemeral:
        # A follow-up straight after a defer would replace the public placeholder and stay public;
        # after an edit it is a message of its own, so edit, answer privately, then remove the placeholder.
        await interaction.edit_original_message(embed=reply.embed)
        await interaction.followup.send(embed=reply.embed, ephemeral=True)
        await interaction.delete_original_message()
    else:
        await interaction.edit_original_message(embed=reply.embed, view=view)
    return reply
