"""/position: where the caller stands on the conviction board (ephemeral)."""

from __future__ import annotations

from typing import Any

import nextcord
from nextcord.ext import commands

from bot.discord.dispatch import CommandDispatcher
from bot.discord.embeds import position_embed
from bot.discord.extensions import CogDependencies
from bot.domain import queries


class PositionCog(commands.Cog):
    def __init__(self, dispatcher: CommandDispatcher) -> None:
        self.dispatcher = dispatcher

    @nextcord.slash_command(name="position", description="Your rank, the distance to your neighbours and to entry")
    async def position(self, interaction: nextcord.Interaction[Any]) -> None:
        async with self.dispatcher.command(interaction, "position", ephemeral=True) as call:
            data = await call.serve(queries.POSITION)
            await call.reply(position_embed(data))


def setup(bot: commands.Bot, dependencies: CogDependencies) -> None:
    bot.add_cog(PositionCog(dependencies.dispatcher))
