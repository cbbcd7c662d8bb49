"""/alerts on|off|status: a member's own DMs about their standing (private answers), and /roles status for
admins: the roles the bot hands out here and what Discord refused it."""

from __future__ import annotations

from typing import Any

import nextcord
from nextcord.ext import commands

from backends.protocol import BackendError, NotConfigured
from backends.roles import ROLE_KINDS
from bot.discord.embeds import BLUE, GREEN, ORANGE, error_embed
from bot.discord.extensions import CogDependencies
from bot.discord.ratelimit import RateLimiter
from bot.domain import messages
from bot.domain.service import HotPathService
from bot.roles.standing import decode
from bot.roles.stores import StandingStore

MANAGE_GUILD = nextcord.Permissions(manage_guild=True)
UNAVAILABLE = "Alerts are not available right now. Please try again in a minute."
PROBLEMS_SHOWN = 10


class AlertsCog(commands.Cog):
    def __init__(self, store: StandingStore, service: HotPathService, limiter: RateLimiter) -> None:
        """`service`: the source of truth's, for the community's settings and rate limit."""
        self.store = store
        self.service = service
        self.limiter = limiter

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
        guild, user = interaction.guild_id, interaction.user.id if interaction.user else None
        if guild is None or user is None:
            await interaction.response.send_message(embed=error_embed("Use /alerts in a server."), ephemeral=True)
            return
        try:
            ctx = await self.service.open_context(guild, user)
            assert ctx.community is not None
            wait = self.limiter.acquire(guild, user, ctx.community.rate_limit_per_minute)
            if wait:
                embed = error_embed(messages.slow_down(wait))
            elif action == "status":
                embed = await self._status(guild, user)
            else:
                await self.store.subscribe(guild, user, action == "on")
                embed = _switched(action == "on")
        except NotConfigured:
            embed = error_embed(messages.NOT_CONFIGURED)
        except BackendError:
            embed = error_embed(UNAVAILABLE)
        await interaction.response.send_message(embed=embed, ephemeral=True)

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
        perms = interaction.permissions
        if not (perms and (perms.manage_guild or perms.administrator)):
            embed = error_embed("You need the Manage Server permission to use /roles.")
            await interaction.response.send_message(embed=embed, ephemeral=True)
            return
        guild = interaction.guild_id or 0
        try:
            config = await self.store.role_config(guild)
            problems, total = await self.store.problems(guild, PROBLEMS_SHOWN)
        except BackendError:
            await interaction.response.send_message(embed=error_embed(UNAVAILABLE), ephemeral=True)
            return
        roles = "\n".join(
            f"{kind.replace('_', ' ')}: " + (f"<@&{r}>" if (r := config.role(kind)) else "not set")
            for kind in ROLE_KINDS
        )
        embed = nextcord.Embed(title="🎭 Roles", colour=ORANGE if total else GREEN)
        embed.add_field(name="Configured", value=roles, inline=False)
        shown = "\n".join(f"<@{u}> <@&{r}>: {p}" for u, r, p in problems) or "none"
        if total > len(problems):
            shown += f"\n… and {total - len(problems)} more"
        embed.add_field(name=f"Refused by Discord ({total})", value=shown[:1000], inline=False)
        await interaction.response.send_message(
            embed=embed, ephemeral=True, allowed_mentions=nextcord.AllowedMentions.none()
        )


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
    bot.add_cog(AlertsCog(dependencies.standing, dependencies.source, dependencies.limiter))
