"""Server fixtures shared by every test: a real PostgreSQL (embedded unless a DSN is given), a CQL node.

Every test is marked with the servers it needs (`postgres`, `scylla`; see tests/fixtures/markers.py), so
`pytest -m "not scylla"` runs without a JVM and `pytest -m "not scylla and not postgres"` without a server.
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from psycopg_pool import AsyncConnectionPool

from backends.postgres.embedded import start_embedded
from backends.postgres.migrations import migrate
from backends.protocol import BackendUnavailable
from backends.scylla.migrations import migrate as migrate_cql
from backends.scylla.session import CqlSession, CqlSettings, connect
from tests.fixtures.markers import MARKERS, mark_items
from tests.fixtures.postgres_dirs import postgres_data_dir, remove_session_root
from tests.fixtures.worker_database import worker_database

ROOT = Path(__file__).parents[1]

pytest_plugins = ("pytester",)  # tests/unit/test_server_markers.py runs a small suite of its own


def pytest_configure(config: pytest.Config) -> None:
    for name, description in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {description}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    mark_items(items)


def pytest_sessionfinish(session: pytest.Session) -> None:
    remove_session_root()  # whatever a fixture's teardown left of this session's `.run/test-postgres/` dir


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """A migrated database: `SIETCH_TEST_POSTGRES_DSN` if set, else an embedded server for this session.

    Its data lives in `.run/test-postgres/<pid>-<random>/` (tests/fixtures/postgres_dirs.py), not under
    pytest's temp root, which any other pytest run of the same user prunes and makes 0700 again. On a
    given server each test worker has a database of its own (tests/fixtures/worker_database.py).
    """
    dsn = os.environ.get("SIETCH_TEST_POSTGRES_DSN")
    with ExitStack() as stack:
        if dsn:
            dsn = stack.enter_context(worker_database(dsn))
        else:
            data_dir = stack.enter_context(postgres_data_dir("session"))
            dsn, server = start_embedded(data_dir)
            stack.callback(server.cleanup)  # runs before the directory is removed
        asyncio.run(migrate(dsn))
        yield dsn


@pytest.fixture
async def pool(postgres_dsn: str) -> AsyncIterator[AsyncConnectionPool[Any]]:
    async with AsyncConnectionPool(postgres_dsn, min_size=1, max_size=4, open=False) as p:
        await p.open(wait=True)
        yield p


@pytest.fixture
def new_guild_id() -> int:
    """A fresh snowflake-sized id, so tests sharing a database never see each other's communities."""
    return random.getrandbits(62) | (1 << 60)


@pytest.fixture(scope="session")
def cql_node() -> CqlSettings:
    """CQL contact points: `SIETCH_TEST_SCYLLA_HOSTS` if set, else the local node, started if needed.

    A node that cannot be started fails the tests that need it; it never skips them.
    """
    hosts = os.environ.get("SIETCH_TEST_SCYLLA_HOSTS", "")
    port = int(os.environ.get("SIETCH_TEST_SCYLLA_PORT", "9042"))
    if not hosts and not _answers_cql(port):
        started = subprocess.run(
            ["bash", str(ROOT / "tools" / "cql-node" / "node.sh"), "start"],
            env={**os.environ, "PYTHON": sys.executable, "SIETCH_CQL_PORT": str(port)},
            capture_output=True,
            text=True,
            timeout=600,
        )
        if started.returncode != 0:
            pytest.fail(f"the local CQL node did not start:\n{started.stderr[-4000:]}")
    hosts = hosts or "127.0.0.1"
    return CqlSettings(hosts=hosts.split(","), port=port, keyspace=f"sietch_test_{uuid.uuid4().hex[:8]}")


def _answers_cql(port: int) -> bool:
    """A CQL server already listens locally (this checkout's node, or another's): use it as it is."""
    try:
        cluster, _ = connect(CqlSettings(hosts=["127.0.0.1"], port=port, connect_timeout_seconds=3))
    except BackendUnavailable:
        return False
    cluster.shutdown()
    return True


@pytest.fixture(scope="session")
def cql_session(cql_node: CqlSettings) -> Iterator[CqlSession]:
    """One driver session for the test session, on a fresh keyspace that is dropped afterwards."""
    cluster, session = connect(cql_node)
    cql = CqlSession(session)
    # Fixtures may first be asked for inside a running event loop: migrate on a loop of its own.
    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, migrate_cql(cql, cql_node.keyspace, cql_node.replication)).result()
    yield cql
    session.execute(f"DROP KEYSPACE IF EXISTS {cql_node.keyspace}", timeout=120)
    cluster.shutdown()


@pytest.fixture(scope="session")
def cql_keyspace(cql_node: CqlSettings) -> str:
    return cql_node.keyspace


@dataclass(frozen=True)
class SpareNode:
    """A second CQL node (own port and data directory) that a test may stop and start again."""

    settings: CqlSettings
    env: dict[str, str]

    def run(self, command: str) -> None:
        result = subprocess.run(
            ["bash", str(ROOT / "tools" / "cql-node" / "node.sh"), command],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if result.returncode != 0:
            pytest.fail(f"node.sh {command} failed:\n{result.stderr[-4000:]}")


@pytest.fixture(scope="session")
def spare_cql_node() -> Iterator[SpareNode]:
    port = int(os.environ.get("SIETCH_TEST_SPARE_CQL_PORT", "9142"))
    env = {
        **os.environ,
        "PYTHON": sys.executable,
        "SIETCH_CQL_PORT": str(port),
        "SIETCH_CQL_STORAGE_PORT": str(port - 2000),
        "SIETCH_CQL_DIR": str(ROOT / ".run" / "cql-node-spare"),
    }
    node = SpareNode(CqlSettings(hosts=["127.0.0.1"], port=port, keyspace=f"sietch_spare_{uuid.uuid4().hex[:8]}"), env)
    node.run("start")
    cluster, session = connect(node.settings)
    with ThreadPoolExecutor(1) as thread:
        thread.submit(
            asyncio.run, migrate_cql(CqlSession(session), node.settings.keyspace, node.settings.replication)
        ).result()
    cluster.shutdown()
    try:
        yield node
    finally:
        node.run("stop")
