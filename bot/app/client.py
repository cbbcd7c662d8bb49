"""The nextcord Bot: intents, ready timeout, shards, and every cog loaded as an extension with the same
dependencies."""

from __future__ import annotations

from typing import Protocol

import nextcord
from nextcord.ext import commands

from bot.app.redaction import redact_discord_logs
from bot.discord.connections import RecentFirstConnector
from bot.discord.extensions import CogDependencies, load_cogs
from bot.discord.pace import RequestGuard, share_of_global_limit

# Discord: one IDENTIFY per concurrency bucket every 5 seconds; the half second more covers the time
# between taking the turn and the IDENTIFY reaching Discord, which differs from shard to shard.
IDENTIFY_GAP_SECONDS = 5.5


class IdentifyGate(Protocol):
    """Where every process of the bot takes its turn to IDENTIFY."""

    async def take(self, bucket: int, gap_seconds: float) -> None: ...


class _Identifying:
    """Each shard IDENTIFYs only in its bucket's turn across every process (nextcord's own wait is per
    process, and a second process's shard would IDENTIFY too soon)."""

    identify_gate: IdentifyGate
    max_concurrency: int

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        await self.identify_gate.take((shard_id or 0) % self.max_concurrency, IDENTIFY_GAP_SECONDS)


# nextcord's Bot classes join BotBase and Client, whose signatures differ: mypy sees that on any subclass.
class SietchBot(_Identifying, commands.Bot):  # type: ignore[misc]
    pass


class ShardedSietchBot(_Identifying, commands.AutoShardedBot):  # type: ignore[misc]
    pass


DiscordBot = SietchBot | ShardedSietchBot


def build_bot(
    dependencies: CogDependencies,
    guard: RequestGuard,
    identify_gate: IdentifyGate,
    guild_ready_timeout: float = 2.0,
    shard_count: int = 1,
    shard_ids: list[int] | None = None,
    requests_per_second: float = 50.0,
    max_concurrency: int = 1,
) -> DiscordBot:
    """`shard_ids` empty or None: every shard of `shard_count`. One shard is the plain, unsharded client."""
    # Slash commands need no privileged intent: GUILDS fills the guild cache, interactions always arrive.
    redact_discord_logs()
    intents = nextcord.Intents(guilds=True)
    bot: DiscordBot
    connector = RecentFirstConnector()  # the pool shrinks back after a burst of answers
    if shard_count == 1:
        bot = SietchBot(intents=intents, guild_ready_timeout=guild_ready_timeout, connector=connector)
    else:
        # A given count skips GET /gateway/bot: every process must agree on it, not on Discord's advice.
        bot = ShardedSietchBot(
            intents=intents,
            guild_ready_timeout=guild_ready_timeout,
            connector=connector,
            shard_count=shard_count,
            shard_ids=list(shard_ids) if shard_ids else None,
        )
    bot.identify_gate, bot.max_concurrency = identify_gate, max(1, max_concurrency)
    guard.install(bot, share_of_global_limit(requests_per_second, shard_count, list(shard_ids or [])))
    load_cogs(bot, dependencies)
    return bot
