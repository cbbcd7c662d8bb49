"""`sietch community|import|demo|member remove`: the data an admin manages, written to the source of truth
and passed on to every copy."""

from __future__ import annotations

import argparse
from typing import Any

from backends.postgres.community_writes import MemberRow
from backends.protocol import BackendError, Community
from bot.app.container import Container, resolved
from bot.app.startup import opened
from bot.cli.copies import acknowledge, backfill_guild, replicas
from bot.cli.demo import demo_members
from bot.cli.errors import CliError
from bot.cli.member_csv import read_members
from bot.cli.progress import ProgressBar


async def cmd_community(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    async with opened(settings) as (container, _):
        writes = await resolved(container.community_writes)
        current = await writes.get_community(args.guild) or Community(args.guild)
        changes = {
            "name": args.name,
            "fedaykin": args.fedaykin,
            "naib": args.naib,
            "at_risk": args.at_risk,
            "waitlist_end": args.waitlist_end,
            "rate_limit_per_minute": args.rate_limit,
        }
        community = Community(**{**current.__dict__, **{k: v for k, v in changes.items() if v is not None}})
        move = await writes.upsert_community(community)
        for replica in (await replicas(container, required=False)).values():
            await replica.put_community(community)
            await acknowledge(container, replica, community.community_id, move)
        print(f"community {community.community_id} saved: {community}")


async def _import(settings: dict[str, Any], guild: int, rows: list[MemberRow], name: str | None, label: str) -> None:
    async with opened(settings) as (container, _):
        writes = await resolved(container.community_writes)
        bar = ProgressBar(len(rows), label)
        await writes.import_members(guild, rows, progress=bar.update, create=Community(guild, name=name or ""))
        bar.close()
        print(f"{len(rows)} member(s) imported into guild {guild}")
        if await replicas(container, required=False):
            await backfill_guild(container, guild)


async def cmd_import(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    if not args.file.is_file():
        raise CliError(f"{args.file}: no such file")
    await _import(settings, args.guild, read_members(args.file), args.name, "importing")


async def cmd_demo(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    if not 1 <= args.members <= 2_000_000:
        raise CliError("--members must be between 1 and 2000000", 2)
    await _import(settings, args.guild, demo_members(args.members, args.seed), "Demo", "generating")


async def remove_member(container: Container, guild: int, discord_user_id: int) -> bool:
    """Delete a member from the source of truth and from every copy, then rebuild the boards without them."""
    removed = await (await resolved(container.community_writes)).remove_member(guild, discord_user_id)
    copies = await replicas(container, required=False)
    if not copies:
        return removed is not None
    version = await (await resolved(container.copy_source)).score_version(guild)
    copied = None
    for name, replica in copies.items():
        try:
            copied = await replica.remove_member(guild, discord_user_id, version or 0) or copied
            await replica.rebuild(guild, force=True)
            if removed is not None:
                await acknowledge(container, replica, guild, removed[1])
        except BackendError as exc:
            raise CliError(
                f"removed from the source of truth, but {name} still has the member ({exc}); "
                "run the same command again once it answers"
            ) from exc
    return removed is not None or copied is not None


async def cmd_member_remove(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    async with opened(settings) as (container, _):
        if not await remove_member(container, args.guild, args.user):
            raise CliError(f"Discord user {args.user} is not a member of guild {args.guild}")
        print(f"Discord user {args.user} removed from guild {args.guild}")
