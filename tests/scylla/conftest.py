"""A Scylla backend, its PostgreSQL source and the write path between them, for Scylla-only tests: the
production container on the test's pool and CQL session."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from psycopg_pool import AsyncConnectionPool

from backends.postgres.backend import PostgresBackend
from backends.postgres.community_writes import CommunityWrites
from backends.postgres.export import PostgresCopySource
from backends.scylla.backend import ScyllaBackend
from backends.scylla.session import CqlSession
from bot.app.container import Application
from bot.domain.service import HotPathService
from bot.replication.relay import OutboxRelay
from bot.replication.writes import ScoreWriter
from tests.wiring import app


@dataclass
class Pair:
    container: Application

    @property
    def source(self) -> PostgresBackend:
        return self.container.postgres_backend()

    @property
    def copy_source(self) -> PostgresCopySource:
        return self.container.copy_source()

    @property
    def scylla(self) -> ScyllaBackend:
        scylla = self.container.scylla_backend()
        assert scylla is not None
        return scylla

    @property
    def admin(self) -> CommunityWrites:
        return self.container.community_writes()

    @property
    def mirror(self) -> OutboxRelay:
        relay = self.container.relay()
        assert relay is not None
        return relay

    @property
    def writer(self) -> ScoreWriter:
        return self.container.writer()

    def postgres_service(self) -> HotPathService:
        return self.container.services()["postgres"]

    def scylla_service(self) -> HotPathService:
        return self.container.services()["scylla"]


@contextmanager
def counted_statements(cql: CqlSession) -> Iterator[list[int]]:
    """Counts the statements `cql` executes inside the block: the one-element list holds the count."""
    count = [0]
    execute = cql.execute

    async def counted(*args: Any, **kwargs: Any) -> Any:
        count[0] += 1
        return await execute(*args, **kwargs)

    cql.execute = counted  # type: ignore[method-assign]
    try:
        yield count
    finally:
        cql.execute = execute  # type: ignore[method-assign]


@pytest.fixture
def pair(pool: AsyncConnectionPool[Any], cql_session: CqlSession, cql_keyspace: str) -> Pair:
    return Pair(app(pool, cql=cql_session, keyspace=cql_keyspace, SIETCH_WRITES_RETRY_INTERVAL_SECONDS="0.1"))
