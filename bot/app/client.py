"""The nextcord Bot: intents, ready timeout, shards, and every cog loaded as an extension with the same
dependencies."""

from __future__ import annotations

import nextcord
from nextcord.ext import commands

from bot.app.redaction import redact_discord_logs
from bot.discord.extensions import CogDependencies, load_cogs

DiscordBot = commands.Bot | commands.AutoShardedBot


def build_bot(
    dependencies: CogDependencies,
    guild_ready_timeout: float = 2.0,
    shard_count: int = 1,
    shard_ids: list[int] | None = None,
) -> DiscordBot:
    """`shard_ids` empty or None: every shard of `shard_count`. One shard is the plain, unsharded client."""
    # Slash commands need no privileged intent: GUILDS fills the guild cache, interactions always arrive.
    redact_discord_logs()
    intents = nextcord.Intents(guilds=True)
    bot: DiscordBot
    if shard_count == 1:
        bot = commands.Bot(intents=intents, guild_ready_timeout=guild_ready_timeout)
    else:
        # A given count skips GET /gateway/bot: every process must agree on it, not on Discord's advice.
        bot = commands.AutoShardedBot(
            intents=intents,
            guild_ready_timeout=guild_ready_timeout,
            shard_count=shard_count,
            shard_ids=list(shard_ids) if shard_ids else None,
        )
    load_cogs(bot, dependencies)
    return bot
