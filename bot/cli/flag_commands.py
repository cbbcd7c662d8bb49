"""`sietch flags check|explain|clear`: validate the flag file, show a routing decision, clear latches."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bot.app.app import App, assemble
from bot.cli.arguments import snowflake
from bot.cli.errors import CliError
from bot.routing.flags import FlagFile, FlagFileError, load_flags
from bot.routing.router import COMMANDS


def add_parser(sub: Any) -> None:
    flags = sub.add_parser("flags", help="the routing flag file: check, explain, clear auto-rollback")
    verbs = flags.add_subparsers(required=True, metavar="ACTION")
    check = verbs.add_parser("check", help="validate a flag file without starting the bot")
    check.add_argument("file", nargs="?", type=Path, help="default: flags.path from the settings")
    check.set_defaults(handler=cmd_check)
    explain = verbs.add_parser("explain", help="which backend serves COMMAND for a guild, and why")
    explain.add_argument("command", choices=COMMANDS)
    explain.add_argument("--guild", type=snowflake, required=True)
    explain.add_argument("--user", type=snowflake)
    explain.set_defaults(handler=cmd_explain)
    clear = verbs.add_parser("clear", help="clear auto-rollback latches (all, or one command/backend)")
    clear.add_argument("--command", choices=COMMANDS)
    clear.add_argument("--backend")
    clear.set_defaults(handler=cmd_clear)


async def cmd_check(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    path = args.file or Path(settings["flags"]["path"])
    try:
        flags = load_flags(path, backends=assemble(settings, discord=False).backend_names(), commands=COMMANDS)
    except FlagFileError as exc:
        raise CliError(f"rejected, nothing would change:\n{exc}") from exc
    print(f"{path}: valid (default {flags.default_backend}; {_routed(flags)})")


def _routed(flags: FlagFile) -> str:
    """Where each command goes as the file stands: the kill switch and the rollout share included."""
    return ", ".join(f"{name}→{_route_of(flags, name)}" for name in COMMANDS)


def _route_of(flags: FlagFile, command: str) -> str:
    cf = flags.for_command(command)
    target = cf.backend or flags.default_backend
    overrides = f", {len(cf.guilds)} guild override(s)" if cf.guilds else ""
    if target in flags.kill:
        return f"{flags.default_backend} ({target} killed{overrides})"
    if target != flags.default_backend and cf.rollout < 100:
        return f"{target} for {cf.rollout}% else {flags.default_backend}{overrides}"
    return target + (f" ({overrides[2:]})" if overrides else "")


async def cmd_explain(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    async with App.open(settings) as app:
        router = app.router
        if router.flags.last_error:
            print(f"note: the flag file is rejected, defaults are in force:\n{router.flags.last_error}")
        d = await router.route(args.command, args.guild, args.user, consume_trial=False)
        print(f"/{d.command} in guild {args.guild}: {d.backend} ({d.reason})")
        print(
            f"  fallback: {', '.join(d.fallbacks) or 'none'};"
            f" shadow share: {router.flags.current.for_command(d.command).shadow}%;"
            f" time budget: {d.budget_seconds * 1000:.0f} ms"
        )


async def cmd_clear(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    async with App.open(settings) as app:
        table = app.latch_table
        cleared = await table.clear(args.command, args.backend)
        print(f"{cleared} auto-rollback latch(es) cleared; running bots follow the flag file again within seconds")
