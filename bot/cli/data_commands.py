"""The `sietch` commands that manage data: community, import, demo, backfill, recalc, verify."""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from backends.postgres import export
from backends.postgres.migrations import migrate
from backends.protocol import BackendError, Community
from backends.scylla.backend import ScyllaBackend
from backends.scylla.migrations import migrate as migrate_cql
from bot.app.container import Container, make_container
from bot.cli.demo import demo_members
from bot.cli.member_csv import read_members
from bot.cli.progress import ProgressBar
from bot.replication.rebuilds import Recalculator
from bot.replication.relay import backfill
from bot.replication.verify import compare


class CliError(Exception):
    """Ends the command with one line on stderr and the given exit code."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


@asynccontextmanager
async def opened(settings: dict[str, Any]) -> AsyncIterator[tuple[Container, list[str]]]:
    """The container with every configured database up and migrated (and the migrations applied)."""
    container = make_container(settings)
    try:
        applied = await migrate(await container.postgres_dsn())  # type: ignore[misc]
        cql = await container.cql_session()  # type: ignore[misc]
        if cql is not None:
            scylla = settings["scylla"]
            applied += [f"cql:{name}" for name in await migrate_cql(cql, scylla["keyspace"], scylla["replication"])]
        await container.init_resources()  # type: ignore[misc]
        yield container, applied
    finally:
        await container.shutdown_resources()  # type: ignore[misc]


async def _scylla(container: Container, required: bool) -> ScyllaBackend | None:
    scylla: ScyllaBackend | None = await container.scylla_backend()
    if scylla is None and required:
        raise CliError("Scylla is not configured: set scylla.hosts (or SIETCH_SCYLLA_HOSTS)", 2)
    return scylla


async def _communities(container: Container, guild: int | None) -> list[int]:
    postgres = await container.postgres_backend()  # type: ignore[misc]
    async with postgres.connection() as conn:
        known = await export.community_ids(conn)
    if guild is None:
        return known
    if guild not in known:
        raise CliError(f"guild {guild} is not a configured community (see `sietch community`)")
    return [guild]


async def cmd_community(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    async with opened(settings) as (container, _):
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
        community = Community(**{**current.__dict__, **{k: v for k, v in changes.items() if v is not None}})
        await admin.upsert_community(community)
        scylla = await _scylla(container, required=False)
        if scylla is not None:
            await scylla.replica.put_community(community)
        print(f"community {community.community_id} saved: {community}")


async def _import(settings: dict[str, Any], guild: int, rows: list[Any], name: str | None, label: str) -> None:
    async with opened(settings) as (container, _):
        admin = await container.community_admin()  # type: ignore[misc]
        if await admin.get_community(guild) is None:
            await admin.upsert_community(Community(guild, name=name or ""))
        bar = ProgressBar(len(rows), label)
        await admin.import_members(guild, rows, progress=bar.update)
        bar.close()
        print(f"{len(rows)} member(s) imported into guild {guild}")
        if await _scylla(container, required=False) is not None:
            await _backfill(container, guild)


async def cmd_import(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    if not args.file.is_file():
        raise CliError(f"{args.file}: no such file")
    await _import(settings, args.guild, read_members(args.file), args.name, "importing")


async def cmd_demo(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    if not 1 <= args.members <= 2_000_000:
        raise CliError("--members must be between 1 and 2000000", 2)
    await _import(settings, args.guild, demo_members(args.members, args.seed), "Demo", "generating")


async def _backfill(container: Container, guild: int) -> None:
    scylla = await _scylla(container, required=True)
    assert scylla is not None
    postgres = await container.postgres_backend()  # type: ignore[misc]
    async with postgres.connection() as conn:
        bar = ProgressBar(await export.count_members(conn, guild), f"backfill {guild}")
    copied = await backfill(postgres, scylla, guild, progress=lambda done, total: bar.update(done - bar.done))
    bar.close()
    print(f"guild {guild}: {copied} member(s) copied to Scylla, snapshots rebuilt")


async def remove_member(container: Container, guild: int, discord_user_id: int) -> bool:
    """Delete a member from PostgreSQL and from the Scylla copy, then rebuild the boards without them."""
    admin = await container.community_admin()  # type: ignore[misc]
    removed = await admin.remove_member(guild, discord_user_id)
    scylla = await _scylla(container, required=False)
    if scylla is None:
        return removed is not None
    postgres = await container.postgres_backend()  # type: ignore[misc]
    async with postgres.connection() as conn:
        version = await export.score_version(conn, guild)
    try:
        copied = await scylla.replica.remove_member(guild, discord_user_id, version or 0)
        await Recalculator(scylla, 0).run_once([guild], force=True)
    except BackendError as exc:
        raise CliError(
            f"removed from PostgreSQL, but Scylla still has the member ({exc}); "
            "run the same command again once Scylla answers"
        ) from exc
    return removed is not None or copied is not None


async def cmd_member_remove(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    async with opened(settings) as (container, _):
        if not await remove_member(container, args.guild, args.user):
            raise CliError(f"Discord user {args.user} is not a member of guild {args.guild}")
        print(f"Discord user {args.user} removed from guild {args.guild}")


async def cmd_backfill(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    async with opened(settings) as (container, _):
        await _scylla(container, required=True)
        for guild in await _communities(container, args.guild):
            await _backfill(container, guild)


async def cmd_recalc(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    async with opened(settings) as (container, _):
        scylla = await _scylla(container, required=True)
        assert scylla is not None
        guilds = await _communities(container, args.guild)
        rebuilt = await Recalculator(scylla, 0).run_once(guilds, force=True)
        print(f"{rebuilt} board(s) rebuilt in {len(guilds)} community(ies)")


async def cmd_verify(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    if args.sample < 0:
        raise CliError("--sample must be 0 (everything) or more", 2)
    async with opened(settings) as (container, _):
        await _scylla(container, required=True)
        postgres = await container.postgres_service()  # type: ignore[misc]
        scylla = await container.scylla_service()
        source = await container.postgres_backend()  # type: ignore[misc]
        found = 0
        for guild in await _communities(container, args.guild):
            async with source.connection() as conn:
                ids = [s.profile.profile_id for s in await export.member_states_after(conn, guild, None, 10**9)]
            bar = ProgressBar(min(len(ids), args.sample) if args.sample else len(ids), f"verify {guild}")
            diffs = await compare(postgres, scylla, guild, ids, sample=args.sample, progress=bar.update)
            bar.close()
            for diff in diffs:
                print(f"guild {guild}: {diff}")
            print(f"guild {guild}: {len(diffs)} difference(s)")
            found += len(diffs)
        if found:
            raise CliError(f"{found} difference(s) between PostgreSQL and Scylla")
