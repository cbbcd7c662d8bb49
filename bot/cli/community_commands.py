"""`sietch community|import|demo|member remove`: the data an admin manages, written to the source of truth
and passed on to every copy."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

from backends.members import MemberRow, RepeatedKey
from backends.protocol import BackendError, Community
from backends.roles import ROLE_KINDS
from bot.app.app import App
from bot.cli.copies import acknowledge, backfill_guild, replicas
from bot.cli.demo import demo_members
from bot.cli.errors import CliError
from bot.cli.member_csv import CsvProblem, MemberCsv, count_lines, repeated
from bot.cli.progress import ProgressBar

CLEAR = "none"  # a role option's value that clears it


async def cmd_community(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    async with App.open(settings) as app:
        writes = app.community_writes
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
        for replica in (await replicas(app, required=False)).values():
            await replica.put_community(community)
            await acknowledge(app, replica, community.community_id, move)
        print(f"community {community.community_id} saved: {community}")
        await _roles_and_token(app, args)


async def _roles_and_token(app: App, args: argparse.Namespace) -> None:
    """The role options (each a role id, or `none` to clear it) and a new feed token, when asked for."""
    roles = {kind: getattr(args, f"{kind}_role") for kind in ROLE_KINDS}
    if any(v is not None for v in roles.values()) or args.minimum_balance is not None:
        store = app.standing_store
        current = await store.role_config(args.guild)
        changes: dict[str, Any] = {k: (None if v == CLEAR else v) for k, v in roles.items() if v is not None}
        if args.minimum_balance is not None:
            changes["minimum_balance"] = None if args.minimum_balance == CLEAR else args.minimum_balance
        config = dataclasses.replace(current, **changes)
        move = await store.put_role_config(config)
        if move is not None:  # the new minimum balance moved the naib seats
            for replica in (await replicas(app, required=False)).values():
                await acknowledge(app, replica, args.guild, move)
        shown = ", ".join(f"{k} {config.role(k) or 'not set'}" for k in ROLE_KINDS)
        print(f"roles of guild {args.guild}: {shown}; minimum balance {config.minimum_balance or 'none'}")
    if args.new_ingest_token:
        token = await app.ingest.new_token(args.guild)
        print("score feed token (shown once; the previous token no longer works):", file=sys.stderr)
        print(token)


async def _import(settings: dict[str, Any], guild: int, rows: list[MemberRow], name: str | None, label: str) -> None:
    async with App.open(settings) as app:
        writes = app.community_writes
        bar = ProgressBar(len(rows), label)
        await writes.import_members(guild, rows, progress=bar.update, create=Community(guild, name=name or ""))
        bar.close()
        print(f"{len(rows)} member(s) imported into guild {guild}")
        if await replicas(app, required=False):
            await backfill_guild(app, guild)


async def cmd_import(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    if not args.file.is_file():
        raise CliError(f"{args.file}: no such file")
    await import_file(settings, args.guild, args.file, args.name)


async def import_file(settings: dict[str, Any], guild: int, path: Path, name: str | None) -> int:
    """Stream a members CSV into the source of truth in one transaction, then into every copy.

    The file is read once, line by line, into a staging table: memory does not grow with the file. Every
    bad line is reported (`MemberCsvError`, the first ones by line and how many in all), rows repeating
    another row's Discord id or wallet included (found in SQL once every row is staged), and then nothing
    is written. Returns the number of members imported.
    """
    bar = ProgressBar(max(count_lines(path) - 1, 0), "importing")  # progress in lines, the header aside
    reader = MemberCsv(path, progress=bar.update)

    def staged(repeats: list[RepeatedKey], total: int) -> None:
        reader.check([CsvProblem(r.line, repeated(r.column, r.value, r.first_line)) for r in repeats], total)
        bar.close()  # the file is read and good; matching and writing the members follows, in the same transaction
        print(f"writing {reader.rows_read} member(s)...", file=sys.stderr, flush=True)

    async with App.open(settings) as app:
        writes = app.community_writes
        try:
            imported = await writes.import_member_stream(
                guild, reader.rows(), create=Community(guild, name=name or ""), staged=staged
            )
        except BaseException:
            if sys.stderr.isatty() and bar.done < bar.total:
                sys.stderr.write("\n")  # the error goes below the unfinished bar, not after it
            raise
        print(f"{imported} member(s) imported into guild {guild}")
        if await replicas(app, required=False):
            await backfill_guild(app, guild)
    return imported


async def cmd_demo(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    if not 1 <= args.members <= 2_000_000:
        raise CliError("--members must be between 1 and 2000000", 2)
    await _import(settings, args.guild, demo_members(args.members, args.seed), "Demo", "generating")


async def remove_member(app: App, guild: int, discord_user_id: int) -> bool:
    """Delete a member from the source of truth and from every copy, then rebuild the boards without them."""
    removed = await app.community_writes.remove_member(guild, discord_user_id)
    copies = await replicas(app, required=False)
    if not copies:
        return removed is not None
    version = await app.copy_source.score_version(guild)
    copied = None
    for name, replica in copies.items():
        try:
            copied = await replica.remove_member(guild, discord_user_id, version or 0) or copied
            await replica.rebuild(guild, force=True)
            if removed is not None:
                await acknowledge(app, replica, guild, removed[1])
        except BackendError as exc:
            raise CliError(
                f"removed from the source of truth, but {name} still has the member ({exc}); "
                "run the same command again once it answers"
            ) from exc
    return removed is not None or copied is not None


async def cmd_member_remove(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    async with App.open(settings) as app:
        if not await remove_member(app, args.guild, args.user):
            raise CliError(f"Discord user {args.user} is not a member of guild {args.guild}")
        print(f"Discord user {args.user} removed from guild {args.guild}")
