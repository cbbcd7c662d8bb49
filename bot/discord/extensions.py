"""The cogs and what they are handed: every cog is an extension loaded the same way, by name, with the
same `CogDependencies` (nextcord passes `extras` to the extension's `setup`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from nextcord.ext import commands

from bot.discord.dispatch import CommandDispatcher
from bot.domain.service import HotPathService
from bot.roles.stores import StandingStore

EXTENSIONS = ("cogs.position", "cogs.threshold", "cogs.leaderboard", "cogs.naib", "cogs.backends", "cogs.alerts")


@dataclass(frozen=True)
class CogDependencies:
    dispatcher: CommandDispatcher
    services: Mapping[str, HotPathService]  # every backend's, by registered name (for /backends status)
    source: HotPathService  # the source of truth's: /alerts and /roles follow it, whatever serves commands
    standing: StandingStore


def load_cogs(bot: commands.Bot | commands.AutoShardedBot, dependencies: CogDependencies) -> None:
    for extension in EXTENSIONS:
        bot.load_extension(extension, extras={"dependencies": dependencies})
