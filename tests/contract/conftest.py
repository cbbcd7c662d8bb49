"""The contract suite's one fixture: a `World` per backend, holding the backend and a way to seed it.

Data is always written to the source of truth (PostgreSQL) and reaches the backend under test the way
it does in production. To add a backend: add its name to BACKENDS and a branch in `world` that builds
it and its `sync` (how PostgreSQL's data reaches it). Every test in tests/contract then runs on it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from psycopg_pool import AsyncConnectionPool

from backends.postgres.backend import PostgresBackend
from backends.postgres.community_writes import CommunityAdmin, MemberRow
from backends.protocol import BOARDS, Backend, Community, TenantContext
from backends.scylla.backend import ScyllaBackend
from backends.scylla.session import CqlSession
from bot.domain.service import HotPathService
from bot.replication.relay import ScoreMirror, backfill
from bot.replication.writes import ScoreWriter

BACKENDS = ["postgres", "scylla"]
EPOCH = datetime(2024, 1, 1, tzinfo=UTC)


@dataclass
class World:
    backend: Backend
    admin: CommunityAdmin
    guild_id: int
    writer: ScoreWriter
    sync: Callable[[Community], Awaitable[None]]

    @property
    def service(self) -> HotPathService:
        """A fresh service (as another process would have) over the backend under test."""
        return HotPathService(self.backend, writer=self.writer)

    async def community(self, guild_id: int | None = None, **settings: Any) -> TenantContext:
        gid = guild_id or self.guild_id
        community = Community(gid, name=f"guild {gid}", **settings)
        await self.admin.upsert_community(community)
        await self.sync(community)
        return TenantContext(gid).with_community(community)

    async def seed(
        self, ctx: TenantContext, convictions: Sequence[Decimal | int | str], activities: Sequence[Any] = ()
    ) -> list[UUID]:
        """Members joining one second apart in list order, with these scores; returns their profile ids."""
        rows = [
            MemberRow(
                discord_user_id=1000 + i,
                nym=f"member{i}",
                wallet_address=f"0x{i:040x}",
                joined_at=EPOCH + timedelta(seconds=i),
                conviction=Decimal(str(c)),
                activity=Decimal(str(activities[i])) if i < len(activities) else Decimal(0),
            )
            for i, c in enumerate(convictions)
        ]
        return await self.seed_rows(ctx, rows)

    async def seed_rows(self, ctx: TenantContext, rows: Sequence[MemberRow]) -> list[UUID]:
        ids = await self.admin.import_members(ctx.community_id, rows)
        assert ctx.community is not None
        await self.sync(ctx.community)
        return ids


@pytest.fixture(params=BACKENDS)
async def world(
    request: pytest.FixtureRequest, pool: AsyncConnectionPool[Any], new_guild_id: int
) -> AsyncIterator[World]:
    admin = CommunityAdmin(pool)
    if request.param == "postgres":
        postgres = PostgresBackend(pool)

        async def recalculate(community: Community) -> None:
            for board in BOARDS:
                await postgres.recalculate(TenantContext(community.community_id), board)

        yield World(postgres, admin, new_guild_id, ScoreWriter(postgres), recalculate)
    elif request.param == "scylla":
        cql: CqlSession = request.getfixturevalue("cql_session")
        scylla = ScyllaBackend(cql, request.getfixturevalue("cql_keyspace"))
        source = PostgresBackend(pool, outbox=True)

        async def copy(community: Community) -> None:
            await backfill(source, scylla, community.community_id)

        yield World(scylla, admin, new_guild_id, ScoreWriter(source, ScoreMirror(source, scylla)), copy)
    else:  # pragma: no cover - a name in BACKENDS without a branch here
        raise AssertionError(f"no world for backend {request.param}")
