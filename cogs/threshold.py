"""/threshold: the entry bar at position F and the head of the waiting pool (public)."""

from __future__ import annotations

from typing import Any

import nextcord
from nextcord.ext import commands

from backends.protocol import TenantContext
from bot.discord.delivery import Reply
from bot.discord.dispatch import CommandDispatcher
from bot.discord.embeds import threshold_embed
from bot.domain.service import HotPathService

WAITLIST_SHOWN = 5


class ThresholdCog(commands.Cog):
    def __init__(self, dispatcher: CommandDispatcher) -> None:
        self.dispatcher = dispatcher

    @nextcord.slash_command(name="threshold", description="The entry requirement and the waiting pool")
    async def threshold(self, interaction: nextcord.Interaction[Any]) -> None:
        await self.dispatcher.run(interaction, "threshold", self.answer, ephemeral=False)

    @staticmethod
    async def answer(service: HotPathService, ctx: TenantContext) -> Reply:
        data = await service.get_threshold(ctx)
        waitlist = await service.get_waitlist(ctx, limit=WAITLIST_SHOWN)
        return Reply(threshold_embed(data, waitlist), ephemeral=False, data=(data, waitlist))


def setup(bot: commands.Bot, dispatcher: CommandDispatcher) -> None:
    bot.add_cog(ThresholdCog(dispatcher))
