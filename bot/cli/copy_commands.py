"""`sietch backfill|recalc|verify`: fill the copies, rebuild their snapshots, compare them with the source."""

from __future__ import annotations

import argparse
from typing import Any

from backends.protocol import BOARDS, TenantContext
from bot.app.container import resolved
from bot.app.startup import opened
from bot.cli.copies import backfill_guild, communities, replicas
from bot.cli.errors import CliError
from bot.cli.progress import ProgressBar
from bot.domain.service import HotPathService
from bot.replication.rebuilds import SnapshotRebuilds
from bot.replication.verify import compare


async def cmd_backfill(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    async with opened(settings) as (container, _):
        await replicas(container, required=True)
        for guild in await communities(container, args.guild):
            await backfill_guild(container, guild)


async def cmd_recalc(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    async with opened(settings) as (container, _):
        copies = await replicas(container, required=True)
        guilds = await communities(container, args.guild)
        rebuilt = await SnapshotRebuilds(copies, 0).run_once(guilds, force=True)
        print(f"{rebuilt} board(s) rebuilt in {len(guilds)} community(ies)")


async def cmd_verify(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    if args.sample < 0:
        raise CliError("--sample must be 0 (everything) or more", 2)
    async with opened(settings) as (container, _):
        copies = await replicas(container, required=True)
        services = await resolved(container.services)
        reference = settings["routing"]["reference_backend"]
        source = await resolved(container.copy_source)
        found = 0
        for guild in await communities(container, args.guild):
            async with source.consistent_view() as view:
                ids = [s.profile.profile_id for s in await view.member_states_after(guild, None, 10**9)]
            for name in copies:
                before = await source.score_version(guild) or 0
                bar = ProgressBar(min(len(ids), args.sample) if args.sample else len(ids), f"verify {guild} {name}")
                diffs = await compare(
                    services[reference], services[name], guild, ids, sample=args.sample, progress=bar.update
                )
                bar.close()
                for diff in diffs:
                    print(f"guild {guild}: {diff}")
                lag = await _lag(services[name], guild, before, await source.score_version(guild) or 0)
                if not diffs:
                    print(f"guild {guild}: 0 difference(s)")
                elif lag:
                    print(f"guild {guild}: {len(diffs)} difference(s) from lag: {lag}")
                else:
                    print(f"guild {guild}: {len(diffs)} difference(s): divergence, {name} is not behind")
                found += len(diffs)
        if found:
            raise CliError(f"{found} difference(s) between {reference} and {', '.join(copies)}")


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
