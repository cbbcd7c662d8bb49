"""Gets one interaction's reply to Discord inside its 3-second window: sent directly when ready in time,
else deferred first and edited in afterwards."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import nextcord

from bot.discord.embeds import error_embed

log = logging.getLogger(__name__)

UNKNOWN_INTERACTION = 10062  # Discord's answer once an interaction's window has passed unanswered


def expired(error: BaseException | None) -> bool:
    """Discord no longer knows the interaction: nothing can be sent for it any more."""
    return isinstance(error, nextcord.NotFound) and error.code == UNKNOWN_INTERACTION


@dataclass(frozen=True)
class Reply:
    embed: nextcord.Embed
    ephemeral: bool
    view: nextcord.ui.View | None = None
    outcome: str = "ok"


def error_reply(message: str, outcome: str) -> Reply:
    return Reply(error_embed(message), ephemeral=True, outcome=outcome)


class Delivery:
    """The first response of one interaction, and what follows it.

    `start()` arms a timer that defers the interaction once `defer_after` seconds pass with nothing sent;
    `send()` answers directly when that has not happened, else edits the deferred response. An error
    after a public defer is sent as a private follow-up and the public placeholder removed, because
    Discord fixes a message's ephemeral state at its first response. `update=True` answers a button
    click by editing the clicked message.
    """

    def __init__(
        self, interaction: nextcord.Interaction[Any], *, ephemeral: bool, update: bool, defer_after: float
    ) -> None:
        self.interaction = interaction
        self.ephemeral = ephemeral
        self.update = update
        self.defer_after = defer_after
        self.sent = False
        self._lock = asyncio.Lock()  # the timer's defer and the reply never race for the first response
        self._timer: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._timer = asyncio.ensure_future(self._defer_later())

    async def _defer_later(self) -> None:
        await asyncio.sleep(self.defer_after)
        async with self._lock:
            if self.sent or self.interaction.response.is_done():
                return
            try:
                if self.update:
                    await self.interaction.response.defer()
                else:
                    await self.interaction.response.defer(ephemeral=self.ephemeral)
            except nextcord.HTTPException as exc:
                # The timer's task has nobody to raise to; the reply that follows meets the same answer.
                log.warning(
                    "interaction not deferred id=%s status=%s code=%s", self.interaction.id, exc.status, exc.code
                )

    def close(self) -> None:
        """Disarm the timer (nothing more will be sent)."""
        if self._timer is not None and not self._timer.done():
            self._timer.cancel()

    async def send(self, reply: Reply) -> None:
        async with self._lock:
            # Holding the lock, the timer is asleep or waiting for it: cancelling it cannot cut a defer short.
            self.close()
            self.sent = True
            await self._send(reply)

    async def _send(self, reply: Reply) -> None:
        response, view = self.interaction.response, reply.view or nextcord.utils.MISSING
        if not response.is_done():
            if self.update and not reply.ephemeral:
                await response.edit_message(embed=reply.embed, view=view)
            else:
                await response.send_message(embed=reply.embed, view=view, ephemeral=reply.ephemeral)
        elif self.update and reply.ephemeral:
            await self.interaction.followup.send(embed=reply.embed, ephemeral=True)
        elif reply.ephemeral != self.ephemeral:
            # A follow-up straight after a defer would replace the public placeholder and stay public;
            # after an edit it is a message of its own, so edit, answer privately, then remove the placeholder.
            await self.interaction.edit_original_message(embed=reply.embed)
            await self.interaction.followup.send(embed=reply.embed, ephemeral=True)
            await self.interaction.delete_original_message()
        else:
            await self.interaction.edit_original_message(embed=reply.embed, view=view)
