"""`sietch backfill|recalc|rebuilds|verify`: fill the copies, rebuild their snapshots, compare them with the
source."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import Any

from backends.protocol import BOARDS, TenantContext
from bot.app.app import App
from bot.cli.copies import backfill_guild, communities, replicas
from bot.cli.errors import CliError
from bot.cli.progress import ProgressBar
from bot.domain.service import HotPathService
from bot.replication.rebuilds import SnapshotRebuilds
from bot.replication.verify import Difference, compare_each, member_ids


async def cmd_backfill(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    async with App.open(settings) as app:
        await replicas(app, required=True)
        for guild in await communities(app, args.guild):
            await backfill_guild(app, guild)


async def cmd_recalc(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    async with App.open(settings) as app:
        copies = await replicas(app, required=True)
        guilds = await communities(app, args.guild)
        rebuilt = await SnapshotRebuilds(copies, 0).run_once(guilds, force=True)
        print(f"{rebuilt} board(s) rebuilt in {len(guilds)} community(ies)")


async def cmd_rebuilds(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    """The periodic rebuilds `sietch run` does, alone, until SIGTERM or Ctrl-C: for bots run with
    `recalculation.in_bot: false`, so a large board's rebuild takes a core of its own."""
    async with App.open(settings) as app:
        await replicas(app, required=True)
        rebuilds = app.rebuilds
        assert rebuilds is not None  # there is a copy
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        interval = settings["recalculation"]["interval_seconds"]
        print(f"rebuilding the snapshots of communities whose scores changed, every {interval:g}s", file=sys.stderr)
        await rebuilds.run(stop)
        print("stopped", file=sys.stderr)


async def cmd_verify(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    if args.sample < 0:
        raise CliError("--sample must be 0 (everything) or more", 2)
    async with App.open(settings) as app:
        copies = await replicas(app, required=True)
        services = app.services
        reference = settings["routing"]["reference_backend"]
        source = app.copy_source
        found = 0
        for guild in await communities(app, args.guild):
            # Members are read from the source a page at a time as they are compared, never all at once.
            members = await source.count_members(guild)
            for name in copies:
                before = await source.score_version(guild) or 0
                bar = ProgressBar(min(members, args.sample) if args.sample else members, f"verify {guild} {name}")

                def show(diff: Difference, guild: int = guild, bar: ProgressBar = bar) -> None:
                    _print_above(bar, f"guild {guild}: {diff}")

                diffs = await compare_each(
                    services[reference],
                    services[name],
                    guild,
                    member_ids(source, guild),
                    members,
                    sample=args.sample,
                    progress=bar.update,
                    report=show,
                )
                bar.close()
                lag = await _lag(services[name], guild, before, await source.score_version(guild) or 0)
                if not diffs:
                    print(f"guild {guild}: 0 difference(s)")
                elif lag:
                    print(f"guild {guild}: {diffs} difference(s) from lag: {lag}")
                else:
                    print(f"guild {guild}: {diffs} difference(s): divergence, {name} is not behind")
                found += diffs
        if found:
            raise CliError(f"{found} difference(s) between {reference} and {', '.join(copies)}")


def _print_above(bar: ProgressBar, text: str) -> None:
    """Print a line while the bar is drawn: on a terminal the bar's line is cleared first and redrawn after."""
    on_terminal = sys.stdout.isatty() and sys.stderr.isatty()
    if on_terminal:
        sys.stderr.write("\r\x1b[K")
        sys.stderr.flush()
    print(text, flush=on_terminal)
    if on_terminal:
        bar.update(0)


async def _lag(copy: HotPathService, guild: int, before: int, after: int) -> str | None:
    """Why the copy's answers may trail the source's (snapshots older than the scores, or scores that moved
    during the comparison); None when the copy was as new as the source throughout."""
    if after != before:
        return f"the source changed during the comparison (score version {before} → {after})"
    for board in BOARDS:
        info = await copy.backend.snapshot_info(TenantContext(guild), board)
        if not info.live and info.score_version < after:
            return (
                f"the {board} snapshot is from score version {info.score_version}, the source is at {after}"
                " (wait for the next rebuild, or run `sietch recalc`)"
            )
    return None
