"""/threshold: the entry bar at position F and the head of the waiting pool (public)."""

from __future__ import annotations

from typing import Any

import nextcord
from nextcord.ext import commands

from bot.discord.dispatch import CommandDispatcher
from bot.discord.embeds import threshold_embed
from bot.discord.extensions import CogDependencies
from bot.domain import queries


class ThresholdCog(commands.Cog):
    def __init__(self, dispatcher: CommandDispatcher) -> None:
        self.dispatcher = dispatcher

    @nextcord.slash_command(name="threshold", description="The entry requirement and the waiting pool")
    async def threshold(self, interaction: nextcord.Interaction[Any]) -> None:
        async with self.dispatcher.command(interaction, "threshold", ephemeral=False) as call:
            view = await call.serve(queries.THRESHOLD)
            await call.reply(threshold_embed(view.threshold, view.waitlist))


def setup(bot: commands.Bot, dependencies: CogDependencies) -> None:
    bot.add_cog(ThresholdCog(dependencies.dispatcher))
