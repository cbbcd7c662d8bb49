"""The contract suite's one fixture: a `World` per backend, holding the backend and a way to seed it.

Data is always written to the source of truth (PostgreSQL) and reaches the backend under test the way
it does in production: a copy through a backfill and the outbox relay. The application is the production
container (`tests.wiring.app`). To add a backend: register it in the container and add its name to
BACKENDS; every test in tests/contract then runs on it.
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

from backends.copies import replica_of
from backends.members import MemberRow
from backends.postgres.community_writes import CommunityWrites
from backends.protocol import BOARDS, Backend, BadgeChange, BadgeOutcome, Community, TenantContext
from backends.scylla.session import CqlSession
from bot.domain.service import HotPathService, ScoreWrites
from bot.replication.backfill import backfill
from bot.replication.writes import ScoreWriter
from tests.wiring import app

BACKENDS = ["postgres", "scylla", "memory"]
EPOCH = datetime(2024, 1, 1, tzinfo=UTC)


@dataclass
class World:
    backend: Backend
    admin: CommunityWrites
    guild_id: int
    writer: ScoreWrites
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

    async def badges(self, ctx: TenantContext, changes: Sequence[BadgeChange]) -> BadgeOutcome:
        """Badge changes written as the CLI and the feed write them: the source of truth, then the outbox."""
        assert isinstance(self.writer, ScoreWriter)
        return await self.writer.apply_badges(ctx, changes)

    async def seed_rows(self, ctx: TenantContext, rows: Sequence[MemberRow]) -> list[UUID]:
        ids = await self.admin.import_members(ctx.community_id, rows)
        assert ctx.community is not None
        await self.sync(ctx.community)
        return ids


@pytest.fixture(params=BACKENDS)
async def world(
    request: pytest.FixtureRequest, pool: AsyncConnectionPool[Any], new_guild_id: int
) -> AsyncIterator[World]:
    name = request.param
    cql: CqlSession | None = request.getfixturevalue("cql_session") if name == "scylla" else None
    keyspace = request.getfixturevalue("cql_keyspace") if name == "scylla" else "sietch"
    container = app(pool, cql=cql, keyspace=keyspace, memory=name == "memory")
    backend = container.backends()[name]
    replica = replica_of(backend)
    source = container.copy_source()

    async def sync(community: Community) -> None:
        """What brings the source of truth's data to the backend: a backfill for a copy, else a recalculation."""
        if replica is not None:
            await backfill(source, replica, community.community_id)
            return
        for board in BOARDS:
            await backend.recalculate(TenantContext(community.community_id), board)

    yield World(backend, container.community_writes(), new_guild_id, container.writer(), sync)
