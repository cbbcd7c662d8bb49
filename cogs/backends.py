"""/backends status|reload|clear: what serves this guild and why, and the admin's levers (Manage Guild)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import nextcord
from nextcord.ext import commands

from backends.protocol import BOARDS, TenantContext
from bot.discord.embeds import BLUE, GREEN, error_embed
from bot.discord.extensions import CogDependencies
from bot.domain.queries import Refused
from bot.routing.router import COMMANDS

MANAGE_GUILD = nextcord.Permissions(manage_guild=True)
NOT_ALLOWED = "You need the Manage Server permission to use /backends."
FIELD_LIMIT = 1000


def _may_manage(interaction: nextcord.Interaction[Any]) -> bool:
    # Discord hides the command from members without the bit, but admins can re-grant it per server,
    # so check what Discord computed for this member in this channel.
    perms = interaction.permissions
    return bool(perms and (perms.manage_guild or perms.administrator))


def _refuse(interaction: nextcord.Interaction[Any]) -> None:
    if interaction.guild_id is None or not _may_manage(interaction):
        raise Refused(NOT_ALLOWED)


def _clip(text: str) -> str:
    return text if len(text) <= FIELD_LIMIT else text[: FIELD_LIMIT - 1] + "…"


class BackendsCog(commands.Cog):
    def __init__(self, dependencies: CogDependencies) -> None:
        self.dispatcher = dependencies.dispatcher
        self.router = dependencies.dispatcher.router
        self.shadow = dependencies.dispatcher.shadow
        self.services = dependencies.services

    @nextcord.slash_command(
        name="backends",
        description="Which backend serves this server's commands",
        default_member_permissions=MANAGE_GUILD,
    )
    async def backends(self, interaction: nextcord.Interaction[Any]) -> None:
        """Parent of the admin sub-commands; Discord never invokes it directly."""

    @backends.subcommand(name="status", description="Each command's backend and why, breakers, snapshots")
    async def status(self, interaction: nextcord.Interaction[Any]) -> None:
        async with self.dispatcher.command(interaction, "backends", ephemeral=True) as call:
            _refuse(interaction)
            await call.reply(await self._status(interaction))

    async def _status(self, interaction: nextcord.Interaction[Any]) -> nextcord.Embed:
        guild_id = interaction.guild_id or 0
        user_id = interaction.user.id if interaction.user else None
        embed = nextcord.Embed(title="🛠️ Backends", colour=BLUE, timestamp=datetime.now(UTC))
        lines = []
        for command in COMMANDS:
            d = await self.router.route(command, guild_id, user_id, consume_trial=False)
            extras = [f"fallback {d.fallback}" if d.fallback else "no fallback"]
            if self.router.flags.current.for_command(command).shadow:
                extras.append(f"shadow {self.router.flags.current.for_command(command).shadow}%")
            lines.append(f"`/{command}` → **{d.backend}** — {d.reason} ({', '.join(extras)})")
        embed.add_field(name="Commands", value=_clip("\n".join(lines)), inline=False)
        embed.add_field(
            name="Breakers",
            value=" • ".join(
                f"{name}: {b.state.replace('_', '-')}" for name, b in sorted(self.router.breakers.items())
            ),
            inline=False,
        )
        embed.add_field(name="Shadow reads (this process)", value=_clip(self._shadow_counts()), inline=False)
        embed.add_field(name="Snapshots", value=_clip(await self._snapshots(guild_id)), inline=False)
        latches = self.router.rollback.latches
        embed.add_field(
            name="Auto-rollback",
            value=_clip("\n".join(f"`/{c}` off {b}: {why}" for (c, b), why in sorted(latches.items())) or "none"),
            inline=False,
        )
        flags = self.router.flags
        loaded = f"<t:{int(flags.loaded_at.timestamp())}:R>" if flags.loaded_at else "never (defaults in force)"
        embed.add_field(name="Flag file", value=f"`{flags.path}` loaded {loaded}", inline=False)
        if flags.last_error:
            embed.add_field(name="Last reload error", value=_clip(f"```{flags.last_error}```"), inline=False)
        return embed

    @backends.subcommand(name="reload", description="Re-read the flag file now")
    async def reload(self, interaction: nextcord.Interaction[Any]) -> None:
        async with self.dispatcher.command(interaction, "backends", ephemeral=True) as call:
            _refuse(interaction)
            accepted, changes = await self.router.flags.reload()
            if not accepted:
                message = "The flag file was rejected; the last good configuration stays in force.\n"
                await call.reply(error_embed(_clip(message + f"```{changes[0]}```")))
                return
            text = "\n".join(f"• {c}" for c in changes) if changes else "No changes."
            embed = nextcord.Embed(
                title="Flag file reloaded", description=_clip(text), colour=GREEN, timestamp=datetime.now(UTC)
            )
            await call.reply(embed)

    @backends.subcommand(name="clear", description="Clear auto-rollback latches so the flag file decides again")
    async def clear(self, interaction: nextcord.Interaction[Any]) -> None:
        async with self.dispatcher.command(interaction, "backends", ephemeral=True) as call:
            _refuse(interaction)
            cleared = await self.router.rollback.clear()
            embed = nextcord.Embed(
                title="Auto-rollback cleared",
                colour=GREEN,
                timestamp=datetime.now(UTC),
                description=f"{cleared} latch(es) cleared; routing follows the flag file again.",
            )
            await call.reply(embed)

    def _shadow_counts(self) -> str:
        """Per command and compared backend: matches, mismatches, stale answers (and errors, skips)."""
        lines = []
        for command in COMMANDS:
            for backend in self.router.backends:
                counts = {r: n for (c, b, r), n in self.shadow.results.items() if (c, b) == (command, backend)}
                if counts:
                    shown = [f"{counts.get(r, 0)} {r}" for r in ("match", "mismatch", "stale")]
                    shown += [f"{counts[r]} {r}" for r in ("refused", "error", "skipped") if r in counts]
                    lines.append(f"`/{command}` vs {backend}: {', '.join(shown)}")
        return "\n".join(lines) or "none yet"

    async def _snapshots(self, guild_id: int) -> str:
        """Each backend that serves from snapshots: how old its boards are; live backends have none."""
        lines = []
        for name in self.router.backends:
            backend = self.services[name].backend
            for board in BOARDS:
                try:
                    info = await backend.snapshot_info(TenantContext(guild_id), board)
                except Exception as exc:
                    lines.append(f"{name} {board}: unavailable ({type(exc).__name__})")
                    continue
                if info.live:
                    break
                if info.score_version < 0:
                    lines.append(f"{name} {board}: none yet")
                else:
                    age = (datetime.now(UTC) - info.as_of).total_seconds()
                    lines.append(f"{name} {board}: built {age:.0f} s ago from score version {info.score_version}")
        return "\n".join(lines) or "Every backend reads live data."


def setup(bot: commands.Bot, dependencies: CogDependencies) -> None:
    bot.add_cog(BackendsCog(dependencies))
