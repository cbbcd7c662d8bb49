"""`sietch roles sync GUILD [--dry-run]`: the role changes (and alerts) a sync makes, from the source of
truth; without --dry-run they are made through Discord (DISCORD_TOKEN) as the running bot would."""

from __future__ import annotations

import argparse
import os
from typing import Any

import nextcord

from bot.app.app import App
from bot.cli.arguments import snowflake
from bot.cli.errors import CliError
from bot.discord.pace import RequestGuard

EXIT_USAGE = 2
ONE_SHOT_REQUESTS_PER_SECOND = 4  # within the tenth of the global limit the bots leave aside


def add_parser(sub: Any) -> None:
    roles = sub.add_parser("roles", help="the roles that follow the board")
    verbs = roles.add_subparsers(required=True, metavar="ACTION")
    sync = verbs.add_parser("sync", help="hold every member of a guild at the roles their position gives")
    sync.add_argument("guild", type=snowflake)
    sync.add_argument("--dry-run", action="store_true", help="print the changes, make none")
    sync.set_defaults(handler=cmd_sync)


async def cmd_sync(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    if args.dry_run:
        async with App.open(settings) as app:
            planned = await app.role_sync.plan(args.guild)
        print(planned.describe())
        for alert in planned.alerts:
            print(f"  alert for user {alert.discord_user_id}: {', '.join(alert.events)}")
        return
    token = os.environ.get("DISCORD_TOKEN", "").strip()
    if not token:
        raise CliError("DISCORD_TOKEN is not set: roles are changed as the bot (or use --dry-run)", EXIT_USAGE)
    nextcord.http.Route.BASE = settings["discord"]["api_base"]
    client = nextcord.Client(intents=nextcord.Intents.none())  # REST only: no gateway connection
    RequestGuard().install(client, ONE_SHOT_REQUESTS_PER_SECOND)  # beside the running bots' shares
    try:
        await client.login(token)
        async with App.open(settings, discord=client) as app:
            plan = await app.role_sync.sync(args.guild)
            await app.alert_sender.deliver_due()
    except nextcord.LoginFailure as exc:
        raise CliError("Discord refused DISCORD_TOKEN: check the token in the developer portal") from exc
    finally:
        await client.close()
    if plan is None:
        raise CliError(f"a running bot is syncing guild {args.guild} right now; try again in a moment")
    print(plan.describe())
