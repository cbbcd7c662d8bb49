"""/alerts on|off|status: a member's own DMs about their standing (private answers), and /roles status for
admins: the roles the bot hands out here and what Discord refused it."""

from __future__ import annotations

from typing import Any

import nextcord
from nextcord.ext import commands

from backends.protocol import NotConfigured
from backends.roles import ROLE_KINDS
from bot.discord.dispatch import CommandCall, CommandDispatcher
from bot.discord.embeds import BLUE, GREEN, ORANGE
from bot.discord.extensions import CogDependencies
from bot.domain import messages
from bot.domain.queries import Refused
from bot.domain.service import HotPathService
from bot.roles.standing import decode
from bot.roles.stores import StandingStore
from bot.roles.sync import ROLE_ITSELF

MANAGE_GUILD = nextcord.Permissions(manage_guild=True)
NOT_ALLOWED = "You need the Manage Server permission to use /roles."
PROBLEMS_SHOWN = 10


class AlertsCog(commands.Cog):
    def __init__(self, dispatcher: CommandDispatcher, store: StandingStore, service: HotPathService) -> None:
        """`service`: the source of truth's, for the community's settings."""
        self.dispatcher = dispatcher
        self.store = store
        self.service = service

    @nextcord.slash_command(name="alerts", description="DMs when your standing changes")
    async def alerts(self, interaction: nextcord.Interaction[Any]) -> None:
        """Parent of the sub-commands; Discord never invokes it directly."""

    @alerts.subcommand(name="on", description="Get a DM when you enter or leave the eligible set, and more")
    async def on(self, interaction: nextcord.Interaction[Any]) -> None:
        await self._answer(interaction, "on")

    @alerts.subcommand(name="off", description="Stop the DMs about your standing")
    async def off(self, interaction: nextcord.Interaction[Any]) -> None:
        await self._answer(interaction, "off")

    @alerts.subcommand(name="status", description="Whether you get alerts, and your standing")
    async def status(self, interaction: nextcord.Interaction[Any]) -> None:
        await self._answer(interaction, "status")

    async def _answer(self, interaction: nextcord.Interaction[Any], action: str) -> None:
        async with self.dispatcher.command(interaction, "alerts", ephemeral=True) as call:
            guild, user = call.admit()
            await self._configured(call, guild, user)
            if action == "status":
                await call.reply(await self._status(guild, user))
                return
            await self.store.subscribe(guild, user, action == "on")
            await call.reply(_switched(action == "on"))

    async def _configured(self, call: CommandCall, guild: int, user: int) -> None:
        try:
            ctx = await self.service.open_context(guild, user)
        except NotConfigured:
            raise Refused(messages.NOT_CONFIGURED, "not_configured") from None
        assert ctx.community is not None
        call.learned(ctx.community)

    async def _status(self, guild: int, user: int) -> nextcord.Embed:
        sub = await self.store.subscription(guild, user)
        standing = (await self.store.standings_of(guild, [user])).get(user)
        if sub is not None and sub.enabled:
            text = "Alerts are **on**."
            if sub.last_sent_at is not None:
                text += f" Last alert: <t:{int(sub.last_sent_at.timestamp())}:R>."
        else:
            text = "Alerts are **off**." + (
                f" {sub.note}: open your DMs, then use /alerts on." if sub and sub.note else ""
            )
        parts = decode(standing.status) if standing else frozenset()
        where = f"position {standing.position}" if standing and standing.position else "not in the first positions"
        named = ", ".join(sorted(p.replace("_", " ") for p in parts)) or "no role standing"
        embed = nextcord.Embed(title="🔔 Alerts", description=text, colour=BLUE)
        embed.add_field(name="Your standing at the last sync", value=f"{named} ({where})", inline=False)
        return embed

    @nextcord.slash_command(
        name="roles", description="The roles Sietch hands out here", default_member_permissions=MANAGE_GUILD
    )
    async def roles(self, interaction: nextcord.Interaction[Any]) -> None:
        """Parent of the admin sub-commands; Discord never invokes it directly."""

    @roles.subcommand(name="status", description="Configured roles and what Discord refused")
    async def roles_status(self, interaction: nextcord.Interaction[Any]) -> None:
        async with self.dispatcher.command(interaction, "roles", ephemeral=True) as call:
            perms = interaction.permissions
            if not (perms and (perms.manage_guild or perms.administrator)):
                raise Refused(NOT_ALLOWED)
            guild, _ = call.admit()
            config = await self.store.role_config(guild)
            problems, total = await self.store.problems(guild, PROBLEMS_SHOWN)
            roles = "\n".join(
                f"{kind.replace('_', ' ')}: " + (f"<@&{r}>" if (r := config.role(kind)) else "not set")
                for kind in ROLE_KINDS
            )
            embed = nextcord.Embed(title="🎭 Roles", colour=ORANGE if total else GREEN)
            embed.add_field(name="Configured", value=roles, inline=False)
            shown = "\n".join(_problem(u, r, p) for u, r, p in problems) or "none"
            if total > len(problems):
                shown += f"\n… and {total - len(problems)} more"
            embed.add_field(name=f"Refused by Discord ({total})", value=shown[:1000], inline=False)
            await call.reply(embed)


def _problem(user: int, role: int, problem: str) -> str:
    return f"<@&{role}>: {problem}" if user == ROLE_ITSELF else f"<@{user}> <@&{role}>: {problem}"


def _switched(on: bool) -> nextcord.Embed:
    if on:
        text = (
            "Alerts are **on**: you will get a DM when you enter or leave the eligible set, become at risk,"
            " gain or lose a Naib seat, or reach the head of the waiting pool (at most one a day, except when"
            " you lose eligibility). Keep DMs from this server's members open."
        )
    else:
        text = "Alerts are **off**."
    return nextcord.Embed(title="🔔 Alerts", description=text, colour=GREEN if on else BLUE)


def setup(bot: commands.Bot, dependencies: CogDependencies) -> None:
    bot.add_cog(AlertsCog(dependencies.dispatcher, dependencies.standing, dependencies.source))
