"""An import is one transaction with the community it creates: a failure leaves nothing behind."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from psycopg_pool import AsyncConnectionPool

from backends.postgres.community_writes import CommunityWrites, MemberRow
from backends.protocol import BackendError, Community


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
