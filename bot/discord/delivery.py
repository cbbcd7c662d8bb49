"""Gets a reply to Discord inside its 3-second window: directly when ready in time, else defer and edit."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

import nextcord

from backends.protocol import Board
from bot.discord.embeds import error_embed


@dataclass
class Reply:
    embed: nextcord.Embed
    ephemeral: bool
    view: nextcord.ui.View | None = None
    outcome: str = "ok"
    # What the answer was computed from, for shadow comparisons: the domain records, and the board read.
    data: Any = None
    board: Board = "conviction"


def error_reply(message: str, outcome: str) -> Reply:
    return Reply(error_embed(message), ephemeral=True, outcome=outcome)


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
