"""`sietch verify` walks the members a page at a time: with pages of 7 members, a community of 301 with
a few differences gives the report the whole list of ids gives, and the CLI prints it the same way."""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from psycopg_pool import AsyncConnectionPool

from backends.copies import SourceView
from backends.members import MemberRow
from backends.postgres.backend import PostgresBackend
from backends.postgres.export import PostgresCopySource
from backends.protocol import Community, MemberState
from backends.scylla.session import CqlSettings
from bot.app.settings import load_settings
from bot.cli import copy_commands
from bot.cli.errors import CliError
from bot.replication import verify
from bot.replication.backfill import backfill
from bot.replication.verify import Difference, compare, compare_each, member_ids
from tests.scylla.conftest import Pair

SETTINGS = Path(__file__).parents[2] / "config" / "settings.yaml"
MEMBERS = 301  # 43 pages of 7: the last page is full, and one more (empty) read ends the walk
PAGE = 7


class PageCounting(PostgresCopySource):
    """The real source, noting how many members each read of the walk asked for."""

    def __init__(self, backend: PostgresBackend) -> None:
        super().__init__(backend)
        self.limits: list[int] = []

    @asynccontextmanager
    async def consistent_view(self) -> AsyncIterator[Any]:
        async with super().consistent_view() as view:
            yield Counted(view, self.limits)


class Counted:
    def __init__(self, view: SourceView, limits: list[int]) -> None:
        self.view = view
        self.limits = limits

    async def member_states_after(self, community_id: int, after: UUID | None, limit: int) -> list[MemberState]:
        self.limits.append(limit)
        return await self.view.member_states_after(community_id, after, limit)


async def diverged_community(pair: Pair, pool: AsyncConnectionPool[Any], guild: int) -> list[UUID]:
    """301 members copied to Scylla, then the lowest score raised on the source alone (it stays lowest, no
    score version moves): the copy is not behind and answers differently. The ids in profile id order."""
    await pair.admin.upsert_community(Community(guild))
    rows = [
        MemberRow(discord_user_id=1 + i, conviction=Decimal(1000 + 10 * i), activity=Decimal(i % 40))
        for i in range(MEMBERS)
    ]
    await pair.admin.import_members(guild, rows)
    await backfill(pair.copy_source, pair.scylla.replica, guild)
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE scores SET conviction = 1005 WHERE community_id = %s AND profile_id ="
            " (SELECT profile_id FROM profiles WHERE community_id = %s AND discord_user_id = 1)",
            (guild, guild),
        )
    async with pair.copy_source.consistent_view() as view:
        return [s.profile.profile_id for s in await view.member_states_after(guild, None, 10**6)]


async def test_pages_of_ids_give_the_report_of_the_whole_list(
    pair: Pair, pool: AsyncConnectionPool[Any], new_guild_id: int
) -> None:
    ids = await diverged_community(pair, pool, new_guild_id)
    source = PageCounting(pair.source)
    assert [pid async for pid in member_ids(source, new_guild_id, page=PAGE)] == ids
    assert source.limits == [PAGE] * (MEMBERS // PAGE + 1)

    postgres, scylla = pair.postgres_service(), pair.scylla_service()
    for sample in (0, 50, MEMBERS):
        whole = await compare(postgres, scylla, new_guild_id, ids, sample=sample)
        paged: list[Difference] = []
        checked: list[int] = []
        found = await compare_each(
            postgres,
            scylla,
            new_guild_id,
            member_ids(pair.copy_source, new_guild_id, page=PAGE),
            MEMBERS,
            sample=sample,
            progress=checked.append,
            report=paged.append,
        )
        assert paged == whole and found == len(whole), sample
        assert sum(checked) == (sample or MEMBERS)
    whole = await compare(postgres, scylla, new_guild_id, ids, sample=0)
    lowest, next_up = ids.index(await _profile(pair, new_guild_id, 1)), ids.index(await _profile(pair, new_guild_id, 2))
    assert sorted(d.what for d in whole) == sorted(
        ["conviction page 31", f"position of {ids[lowest]}", f"position of {ids[next_up]}"]
    )


async def _profile(pair: Pair, guild: int, discord_user_id: int) -> UUID:
    async with pair.copy_source.consistent_view() as view:
        states = await view.member_states_after(guild, None, 10**6)
    return next(s.profile.profile_id for s in states if s.profile.discord_user_id == discord_user_id)


async def test_the_cli_prints_each_difference_and_the_verdict_while_paging(
    pair: Pair,
    pool: AsyncConnectionPool[Any],
    postgres_dsn: str,
    cql_node: CqlSettings,
    new_guild_id: int,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ids = await diverged_community(pair, pool, new_guild_id)
    whole = await compare(pair.postgres_service(), pair.scylla_service(), new_guild_id, ids, sample=0)
    monkeypatch.setattr(verify, "ID_PAGE", PAGE)
    settings = load_settings(
        SETTINGS,
        {
            "SIETCH_POSTGRES_DSN": postgres_dsn,
            "SIETCH_SCYLLA_HOSTS": ",".join(cql_node.hosts),
            "SIETCH_SCYLLA_PORT": str(cql_node.port),
            "SIETCH_SCYLLA_KEYSPACE": cql_node.keyspace,
            "SIETCH_SCYLLA_REQUEST_TIMEOUT_SECONDS": "10",
            "SIETCH_METRICS_PORT": "0",
        },
    )
    with pytest.raises(CliError, match=f"{len(whole)} difference"):
        await copy_commands.cmd_verify(argparse.Namespace(guild=new_guild_id, sample=0), settings)
    out = capsys.readouterr().out.splitlines()
    report = "\n".join(f"guild {new_guild_id}: {d}" for d in whole).splitlines()
    assert out == [*report, f"guild {new_guild_id}: {len(whole)} difference(s): divergence, scylla is not behind"]
