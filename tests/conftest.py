"""Server fixtures shared by every test: a real PostgreSQL (embedded unless a DSN is given)."""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from psycopg_pool import AsyncConnectionPool

from backends.postgres.embedded import start_embedded
from backends.postgres.migrations import migrate


@pytest.fixture(scope="session")
def postgres_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated database: `SIETCH_TEST_POSTGRES_DSN` if set, else an embedded server for this session."""
    dsn = os.environ.get("SIETCH_TEST_POSTGRES_DSN")
    server = None
    if not dsn:
        dsn, server = start_embedded(tmp_path_factory.mktemp("postgres") / "data")
    asyncio.run(migrate(dsn))
    yield dsn
    if server is not None:
        server.cleanup()


@pytest.fixture
async def pool(postgres_dsn: str) -> AsyncIterator[AsyncConnectionPool[Any]]:
    async with AsyncConnectionPool(postgres_dsn, min_size=1, max_size=4, open=False) as p:
        await p.open(wait=True)
        yield p


@pytest.fixture
def new_guild_id() -> int:
    """A fresh snowflake-sized id, so tests sharing a database never see each other's communities."""
    return random.getrandbits(62) | (1 << 60)
