"""The nextcord Bot factory: intents, ready timeout and the cogs, each handed its dependencies."""

from __future__ import annotations

import nextcord
from nextcord.ext import commands

from bot.app.redaction import redact_discord_logs
from bot.discord.dispatch import CommandDispatcher

EXTENSIONS = ("cogs.position", "cogs.threshold", "cogs.leaderboard", "cogs.backends")


def build_bot(dispatcher: CommandDispatcher, guild_ready_timeout: float = 2.0) -> commands.Bot:
    # Slash commands need no privileged intent: GUILDS fills the guild cache, interactions always arrive.
    redact_discord_logs()
    bot = commands.Bot(intents=nextcord.Intents(guilds=True), guild_ready_timeout=guild_ready_timeout)
    for extension in EXTENSIONS:
        bot.load_extension(extension, extras={"dispatcher": dispatcher})
    return bot
