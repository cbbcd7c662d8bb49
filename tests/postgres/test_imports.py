"""Writes that bypass the outbox: an import is one transaction with the community it creates and drops its
members' cached eligibility, and the copy floor a write raises names the floor it followed, even behind
another writer."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from backends.members import MemberRow
from backends.postgres.backend import PostgresBackend
from backends.postgres.community_writes import CommunityWrites, raise_copy_floor
from backends.protocol import BackendError, Community, TenantContext
from bot.domain.records import EligibilityRule
from bot.domain.service import HotPathService
from tests.cogs.test_failures import until, waiting_on_a_lock


async def test_an_import_the_database_refuses_leaves_no_empty_community(
    pool: AsyncConnectionPool[Any], new_guild_id: int
) -> None:
    writes = CommunityWrites(pool)
    rows = [
        MemberRow(discord_user_id=1, conviction=Decimal(5)),
        MemberRow(discord_user_id=2, conviction=Decimal("1e200000")),
    ]
    with pytest.raises(BackendError):
        await writes.import_members(new_guild_id, rows, create=Community(new_guild_id, name="Arrakis"))
    assert await writes.get_community(new_guild_id) is None


async def test_an_import_creates_its_community_with_the_members(
    pool: AsyncConnectionPool[Any], new_guild_id: int
) -> None:
    writes = CommunityWrites(pool)
    ids = await writes.import_members(
        new_guild_id,
        [MemberRow(discord_user_id=1, conviction=Decimal(5))],
        create=Community(new_guild_id, name="Arrakis"),
    )
    community = await writes.get_community(new_guild_id)
    assert len(ids) == 1 and community is not None and community.name == "Arrakis"


async def test_a_floor_raised_behind_another_writer_reports_the_floor_it_follows(
    pool: AsyncConnectionPool[Any], postgres_dsn: str, new_guild_id: int
) -> None:
    writes = CommunityWrites(pool)
    await writes.upsert_community(Community(new_guild_id))
    async with pool.connection() as first, first.transaction():
        first.row_factory = dict_row
        held = await raise_copy_floor(first, new_guild_id)  # holds the community row
        second = asyncio.ensure_future(writes.upsert_community(Community(new_guild_id, name="later")))
        await until(lambda: waiting_on_a_lock(postgres_dsn), "the second writer waiting on the row")
    move = await second
    assert move.before == held.after and move.after == held.after + 1


async def test_a_reimport_drops_the_cached_eligibility_of_its_members(
    pool: AsyncConnectionPool[Any], new_guild_id: int
) -> None:
    writes = CommunityWrites(pool)
    create = Community(new_guild_id, name="Arrakis")
    (member, other) = await writes.import_members(
        new_guild_id,
        [MemberRow(discord_user_id=1, conviction=Decimal(50)), MemberRow(discord_user_id=2, conviction=Decimal(60))],
        create=create,
    )
    ctx, rule = TenantContext(new_guild_id), EligibilityRule("holders", minimum_balance=Decimal(40))
    checker = HotPathService(PostgresBackend(pool))
    for profile in (member, other):
        assert (await checker.check_eligibility(ctx, profile, rule)).eligible
    await writes.import_members(new_guild_id, [MemberRow(discord_user_id=1, conviction=Decimal(10))])
    # Another process's service: only the database's cache is shared.
    later = HotPathService(PostgresBackend(pool))
    after = await later.check_eligibility(ctx, member, rule)
    assert (after.eligible, after.balance, after.from_cache) == (False, Decimal(10), False)
    assert (await later.check_eligibility(ctx, other, rule)).from_cache  # not in the import: kept
