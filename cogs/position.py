"""/position: where the caller stands on the conviction board (ephemeral)."""

from __future__ import annotations

from typing import Any

import nextcord
from nextcord.ext import commands

from backends.protocol import TenantContext
from bot.discord.delivery import Reply
from bot.discord.dispatch import CommandDispatcher
from bot.discord.embeds import position_embed
from bot.domain import messages
from bot.domain.service import HotPathService
from bot.routing.serving import Refused


class PositionCog(commands.Cog):
    def __init__(self, dispatcher: CommandDispatcher) -> None:
        self.dispatcher = dispatcher

    @nextcord.slash_command(name="position", description="Your rank, the distance to your neighbours and to entry")
    async def position(self, interaction: nextcord.Interaction[Any]) -> None:
        await self.dispatcher.run(interaction, "position", self.answer, ephemeral=True)

    @staticmethod
    async def answer(service: HotPathService, ctx: TenantContext) -> Reply:
        assert ctx.user_id is not None
        profile = await service.get_profile_for_user(ctx, ctx.user_id)
        if profile is None:
            raise Refused(messages.NOT_A_MEMBER, "not_a_member")
        data = await service.get_position(ctx, profile.profile_id)
        if data is None:
            raise Refused(messages.NOT_RANKED, "not_ranked")
        return Reply(position_embed(data), ephemeral=True, data=data)


def setup(bot: commands.Bot, dispatcher: CommandDispatcher) -> None:
    bot.add_cog(PositionCog(dispatcher))
