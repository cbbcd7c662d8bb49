"""/naib overview|current|former: the naib council (public, no options), routed under `naib`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import nextcord
from nextcord.ext import commands

from bot.discord.dispatch import CommandDispatcher
from bot.discord.embeds import naib_current_embed, naib_former_embed, naib_overview_embed
from bot.discord.extensions import CogDependencies
from bot.domain import queries
from bot.domain.records import NaibCouncil


class NaibCog(commands.Cog):
    def __init__(self, dispatcher: CommandDispatcher) -> None:
        self.dispatcher = dispatcher

    @nextcord.slash_command(name="naib", description="The Naib Council")
    async def naib(self, interaction: nextcord.Interaction[Any]) -> None:
        """Parent of the sub-commands; Discord never invokes it directly (it has no default sub-command)."""

    @naib.subcommand(name="overview", description="The council at a glance")
    async def overview(self, interaction: nextcord.Interaction[Any]) -> None:
        await self.show(interaction, naib_overview_embed)

    @naib.subcommand(name="current", description="The seats and their holders")
    async def current(self, interaction: nextcord.Interaction[Any]) -> None:
        await self.show(interaction, naib_current_embed)

    @naib.subcommand(name="former", description="Members who held a seat")
    async def former(self, interaction: nextcord.Interaction[Any]) -> None:
        await self.show(interaction, naib_former_embed)

    async def show(
        self, interaction: nextcord.Interaction[Any], embed: Callable[[NaibCouncil], nextcord.Embed]
    ) -> None:
        async with self.dispatcher.command(interaction, "naib", ephemeral=False) as call:
            council = await call.serve(queries.NAIB)
            await call.reply(embed(council))


def setup(bot: commands.Bot, dependencies: CogDependencies) -> None:
    bot.add_cog(NaibCog(dependencies.dispatcher))
