"""A Scylla backend, its PostgreSQL source and the write path between them, for Scylla-only tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from psycopg_pool import AsyncConnectionPool

from backends.postgres.backend import PostgresBackend
from backends.postgres.community_writes import CommunityAdmin
from backends.scylla.backend import ScyllaBackend
from backends.scylla.session import CqlSession
from bot.domain.service import HotPathService
from bot.replication.relay import ScoreMirror
from bot.replication.writes import ScoreWriter


@dataclass
class Pair:
    source: PostgresBackend
    scylla: ScyllaBackend
    admin: CommunityAdmin
    mirror: ScoreMirror

    @property
    def writer(self) -> ScoreWriter:
        return ScoreWriter(self.source, self.mirror)

    def postgres_service(self) -> HotPathService:
        return HotPathService(self.source, writer=self.writer)

    def scylla_service(self) -> HotPathService:
        return HotPathService(self.scylla, writer=self.writer)


@pytest.fixture
def pair(pool: AsyncConnectionPool[Any], cql_session: CqlSession, cql_keyspace: str) -> Pair:
    source = PostgresBackend(pool, outbox=True)
    scylla = ScyllaBackend(cql_session, cql_keyspace)
    return Pair(source, scylla, CommunityAdmin(pool), ScoreMirror(source, scylla, interval_seconds=0.1))
