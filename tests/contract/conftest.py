"""The contract suite's one fixture: a `World` per backend, holding the backend and a way to seed it.

To add a backend: add its name to BACKENDS and a branch in `world` that builds it and says how data
written to the source of truth (PostgreSQL) reaches it. Every test in tests/contract then runs on it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from psycopg_pool import AsyncConnectionPool

from backends.postgres.admin import CommunityAdmin, MemberRow
from backends.postgres.backend import PostgresBackend
from backends.protocol import BOARDS, Backend, Community, TenantContext
from bot.service import HotPathService

BACKENDS = ["postgres"]
EPOCH = datetime(2024, 1, 1, tzinfo=UTC)


@dataclass
class World:
    backend: Backend
    admin: CommunityAdmin
    guild_id: int

    @property
    def service(self) -> HotPathService:
        return HotPathService(self.backend)

    async def community(self, guild_id: int | None = None, **settings: Any) -> TenantContext:
        gid = guild_id or self.guild_id
        community = Community(gid, name=f"guild {gid}", **settings)
        await self.admin.upsert_community(community)
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
        for board in BOARDS:
            await self.backend.recalculate(ctx, board)
        return ids


@pytest.fixture(params=BACKENDS)
async def world(
    request: pytest.FixtureRequest, pool: AsyncConnectionPool[Any], new_guild_id: int
) -> AsyncIterator[World]:
    if request.param == "postgres":
        yield World(PostgresBackend(pool), CommunityAdmin(pool), new_guild_id)
    else:  # pragma: no cover - a name in BACKENDS without a branch here
        raise AssertionError(f"no world for backend {request.param}")
