"""The nextcord Bot factory: intents, ready timeout, shards and the cogs, each handed its dependencies."""

from __future__ import annotations

import nextcord
from nextcord.ext import commands

from backends.postgres.standing import StandingStore
from bot.app.redaction import redact_discord_logs
from bot.discord.dispatch import CommandDispatcher
from bot.discord.ratelimit import RateLimiter
from bot.domain.service import HotPathService
from cogs.alerts import AlertsCog

EXTENSIONS = ("cogs.position", "cogs.threshold", "cogs.leaderboard", "cogs.backends")

DiscordBot = commands.Bot | commands.AutoShardedBot


def build_bot(
    dispatcher: CommandDispatcher,
    guild_ready_timeout: float = 2.0,
    shard_count: int = 1,
    shard_ids: list[int] | None = None,
    standing: StandingStore | None = None,
    source: HotPathService | None = None,
    limiter: RateLimiter | None = None,
) -> DiscordBot:
    """`shard_ids` empty or None: every shard of `shard_count`. One shard is the plain, unsharded client.
    With `standing` and `source` (the source of truth's service), /alerts and /roles are offered."""
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
    for extension in EXTENSIONS:
        bot.load_extension(extension, extras={"dispatcher": dispatcher})
    if standing is not None and source is not None:
        bot.add_cog(AlertsCog(standing, source, limiter or RateLimiter()))
    return bot
