"""`sietch flags check|explain|clear`: validate the flag file, show a routing decision, clear latches."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from backends.postgres.latches import LatchTable
from bot.cli.data_commands import CliError, opened
from bot.routing.flags import FlagFileError, load_flags
from bot.routing.router import COMMANDS


def add_parser(sub: Any) -> None:
    flags = sub.add_parser("flags", help="the routing flag file: check, explain, clear auto-rollback")
    verbs = flags.add_subparsers(required=True, metavar="ACTION")
    check = verbs.add_parser("check", help="validate a flag file without starting the bot")
    check.add_argument("file", nargs="?", type=Path, help="default: flags.path from the settings")
    check.set_defaults(handler=cmd_check)
    explain = verbs.add_parser("explain", help="which backend serves COMMAND for a guild, and why")
    explain.add_argument("command", choices=COMMANDS)
    explain.add_argument("--guild", type=int, required=True)
    explain.add_argument("--user", type=int)
    explain.set_defaults(handler=cmd_explain)
    clear = verbs.add_parser("clear", help="clear auto-rollback latches (all, or one command/backend)")
    clear.add_argument("--command", choices=COMMANDS)
    clear.add_argument("--backend")
    clear.set_defaults(handler=cmd_clear)


def _backends(settings: dict[str, Any]) -> list[str]:
    return ["postgres", *(["scylla"] if settings["scylla"]["hosts"] else [])]


async def cmd_check(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    path = args.file or Path(settings["flags"]["path"])
    try:
        flags = load_flags(path, backends=_backends(settings), commands=COMMANDS)
    except FlagFileError as exc:
        raise CliError(f"rejected, nothing would change:\n{exc}") from exc
    routed = ", ".join(f"{name}→{flags.for_command(name).backend or flags.default_backend}" for name in COMMANDS)
    print(f"{path}: valid (default {flags.default_backend}; {routed})")


async def cmd_explain(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    async with opened(settings) as (container, _):
        router = await container.router()  # type: ignore[misc]
        if router.flags.last_error:
            print(f"note: the flag file is rejected, defaults are in force:\n{router.flags.last_error}")
        d = await router.route(args.command, args.guild, args.user, consume_trial=False)
        print(f"/{d.command} in guild {args.guild}: {d.backend} ({d.reason})")
        print(
            f"  fallback: {d.fallback or 'none'}; shadow share: {router.flags.current.for_command(d.command).shadow}%;"
            f" time budget: {d.budget_seconds * 1000:.0f} ms"
        )


async def cmd_clear(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    async with opened(settings) as (container, _):
        table = LatchTable(await container.postgres_backend())  # type: ignore[misc]
        cleared = await table.clear(args.command, args.backend)
        print(f"{cleared} auto-rollback latch(es) cleared; running bots follow the flag file again within seconds")
