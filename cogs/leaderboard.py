"""/leaderboard conviction|activity [page]: a public board page with previous/next buttons; /leaderboard
tiers: the tier progression board, and /leaderboard badges: the badge board (neither has pages), routed with
the other boards under `leaderboard`.

The buttons carry board, page and owner in their custom id (`lb:<board>:<page>:<owner>`), so a click
is served by the listener below even after a restart; only the member who opened the board may page it.
"""

from __future__ import annotations

from typing import Any

import nextcord
from nextcord.ext import commands

from backends.protocol import BOARDS, Board
from bot.discord.dispatch import CommandDispatcher
from bot.discord.embeds import badge_board_embed, error_embed, leaderboard_embed, tier_board_embed
from bot.discord.extensions import CogDependencies
from bot.domain import messages, queries
from bot.domain.records import LeaderboardPage

MAX_PAGE = 100_000
PREFIX = "lb"


def page_buttons(page: LeaderboardPage, owner_id: int) -> nextcord.ui.View:
    # prevent_update=False: the view is not kept in memory; clicks are routed by custom id instead.
    view = nextcord.ui.View(timeout=None, prevent_update=False)
    # Past the end, Previous goes to the last page there is (not one step back through empty pages).
    previous = min(page.page - 1, max(page.pages, 1))
    for label, target, disabled in (
        ("◀ Previous", previous, page.page <= 1),
        ("Next ▶", page.page + 1, page.page >= page.pages or page.page >= MAX_PAGE),
    ):
        view.add_item(
            nextcord.ui.Button(
                label=label,
                style=nextcord.ButtonStyle.secondary,
                custom_id=f"{PREFIX}:{page.board}:{target}:{owner_id}",
                disabled=disabled,
            )
        )
    return view


def parse_custom_id(custom_id: str) -> tuple[Board, int, int] | None:
    parts = custom_id.split(":")
    if len(parts) != 4 or parts[0] != PREFIX or parts[1] not in BOARDS:
        return None
    try:
        page, owner = int(parts[2]), int(parts[3])
    except ValueError:
        return None
    board: Board = "conviction" if parts[1] == "conviction" else "activity"
    return (board, page, owner) if 1 <= page <= MAX_PAGE else None


class LeaderboardCog(commands.Cog):
    def __init__(self, dispatcher: CommandDispatcher) -> None:
        self.dispatcher = dispatcher

    @nextcord.slash_command(name="leaderboard", description="The community's leaderboards")
    async def leaderboard(self, interaction: nextcord.Interaction[Any]) -> None:
        """Parent of the board sub-commands; Discord never invokes it directly."""

    @leaderboard.subcommand(name="conviction", description="Ranked by conviction (BGT holdings)")
    async def conviction(
        self,
        interaction: nextcord.Interaction[Any],
        page: int = nextcord.SlashOption(
            description="Page number", required=False, default=1, min_value=1, max_value=MAX_PAGE
        ),
    ) -> None:
        await self.show(interaction, "conviction", page)

    @leaderboard.subcommand(name="activity", description="Ranked by activity")
    async def activity(
        self,
        interaction: nextcord.Interaction[Any],
        page: int = nextcord.SlashOption(
            description="Page number", required=False, default=1, min_value=1, max_value=MAX_PAGE
        ),
    ) -> None:
        await self.show(interaction, "activity", page)

    @leaderboard.subcommand(name="tiers", description="Closest to their next tier promotion")
    async def tiers(self, interaction: nextcord.Interaction[Any]) -> None:
        async with self.dispatcher.command(interaction, "leaderboard", ephemeral=False) as call:
            board = await call.serve(queries.TIERS)
            await call.reply(tier_board_embed(board))

    @leaderboard.subcommand(name="badges", description="Ranked by badges held")
    async def badges(self, interaction: nextcord.Interaction[Any]) -> None:
        async with self.dispatcher.command(interaction, "leaderboard", ephemeral=False) as call:
            board = await call.serve(queries.BADGES)
            await call.reply(badge_board_embed(board))

    async def show(
        self, interaction: nextcord.Interaction[Any], board: Board, page: int, *, update: bool = False
    ) -> None:
        async with self.dispatcher.command(interaction, "leaderboard", ephemeral=False, update=update) as call:
            view = await call.serve(queries.leaderboard(board, page))
            await call.reply(leaderboard_embed(view.page, view.caller), page_buttons(view.page, _owner(interaction)))

    @commands.Cog.listener()
    async def on_interaction(self, interaction: nextcord.Interaction[Any]) -> None:
        if interaction.type != nextcord.InteractionType.component or interaction.data is None:
            return
        custom_id = str(interaction.data.get("custom_id", ""))
        parsed = parse_custom_id(custom_id)
        if parsed is None:
            if custom_id.startswith(f"{PREFIX}:"):  # ours, but not a page we serve: never leave it unanswered
                await interaction.response.send_message(embed=error_embed(messages.STALE_BUTTONS), ephemeral=True)
            return
        board, page, owner = parsed
        if interaction.user is None or interaction.user.id != owner:
            await interaction.response.send_message(embed=error_embed(messages.NOT_YOUR_BUTTONS), ephemeral=True)
            return
        await self.show(interaction, board, page, update=True)


def _owner(interaction: nextcord.Interaction[Any]) -> int:
    return interaction.user.id if interaction.user else 0


def setup(bot: commands.Bot, dependencies: CogDependencies) -> None:
    bot.add_cog(LeaderboardCog(dependencies.dispatcher))
