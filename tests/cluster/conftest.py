"""The local two-node CQL cluster (`tools/cql-node/cluster.sh`) and the command tests' fixtures.

Part of `make test`; `make test-cluster` (or `pytest -m cluster`) runs only these, and
`pytest -m "not cluster"` leaves them out (they start two more JVMs: about 3 minutes on 2 cores).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from cassandra import ConsistencyLevel
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
from cassandra.policies import WhiteListRoundRobinPolicy

from backends.scylla.session import PROTOCOL_VERSION, CqlSession, cached_row_factory
from tests.cogs.conftest import emulator, guilds  # noqa: F401  (fixtures)

HERE = Path(__file__).parent
CLUSTER_SH = HERE.parents[1] / "tools" / "cql-node" / "cluster.sh"


@dataclass(frozen=True)
class TwoNodes:
    """The cluster's nodes by address; each can be killed, stopped and started again on its own data."""

    addresses: tuple[str, ...] = ("127.0.0.2", "127.0.0.3")
    port: int = 9042

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["bash", str(CLUSTER_SH), *args],
            env={**os.environ, "PYTHON": sys.executable},
            capture_output=True,
            text=True,
            timeout=900,
        )
        if check and result.returncode != 0:
            pytest.fail(f"cluster.sh {' '.join(args)} failed:\n{result.stdout}{result.stderr[-4000:]}")
        return result

    def kill(self, address: str) -> None:
        """SIGKILL, as a crash: no drain, no flush."""
        self.run("kill", _node(address))

    def stop(self, address: str) -> None:
        self.run("stop", _node(address))

    def start(self, address: str) -> None:
        """Start the node on its own data; returns once both nodes see each other up."""
        self.run("start", _node(address))

    def all_up(self) -> bool:
        return self.run("status", check=False).returncode == 0

    @asynccontextmanager
    async def alone(self, address: str, consistency: str = "ONE") -> AsyncIterator[CqlSession]:
        """A session whose only coordinator is `address` (the other node may still serve the data it
        asks for, unless that node is down). Connected and shut down off the event loop."""
        cluster = self._cluster(address, consistency)
        try:
            yield CqlSession(await asyncio.to_thread(cluster.connect))
        finally:
            await asyncio.to_thread(cluster.shutdown)

    def pending_hints(self, on: str, target: str) -> int:
        """Blocking: the hint files `on` keeps for `target` (writes `target` missed while down, not yet
        handed over)."""
        cluster = self._cluster(on, "ONE")
        try:
            rows = cluster.connect().execute("SELECT address, files FROM system_views.pending_hints")
            return sum(r.files or 0 for r in rows if r.address == target)
        finally:
            cluster.shutdown()

    def hints_on_the_way(self, on: str) -> int:
        """Blocking: the hint files `on` has closed and not handed over yet, and the hand-overs running
        now (a file being handed over is no longer listed as pending). A hint still in memory or in the
        file being written is not seen: see `HINTS_VISIBLE_SECONDS` in the test."""
        cluster = self._cluster(on, "ONE")
        try:
            session = cluster.connect()
            files = sum(r.files or 0 for r in session.execute("SELECT files FROM system_views.pending_hints"))
            dispatch = session.execute(
                "SELECT active_tasks, pending_tasks FROM system_views.thread_pools WHERE name = 'HintsDispatcher'"
            ).one()
            return files + (dispatch.active_tasks + dispatch.pending_tasks if dispatch else 0)
        finally:
            cluster.shutdown()

    def hint_files(self, address: str) -> list[Path]:
        """The hint files on a stopped node's disk: writes its peer missed, never handed over (a clean stop
        writes every hint the node held to a file)."""
        cluster_dir = Path(os.environ.get("SIETCH_CLUSTER_DIR", HERE.parents[1] / ".run" / "cql-cluster"))
        return sorted((cluster_dir / f"node{_node(address)}" / "data" / "hints").glob("*.hints"))

    def _cluster(self, address: str, consistency: str) -> Cluster:
        profile = ExecutionProfile(
            load_balancing_policy=WhiteListRoundRobinPolicy([address]),
            consistency_level=ConsistencyLevel.name_to_value[consistency],
            request_timeout=10,
            row_factory=cached_row_factory,
        )
        return Cluster(
            [address],
            port=self.port,
            protocol_version=PROTOCOL_VERSION,
            execution_profiles={EXEC_PROFILE_DEFAULT: profile},
            connect_timeout=10,
        )


def _node(address: str) -> str:
    return address.rsplit(".", 1)[1]


@pytest.fixture(scope="module")
def two_nodes() -> Iterator[TwoNodes]:
    """Both nodes up (started one after the other when they are not). Left as found once the module's
    tests are done (not at the end of `make test`: the nodes would hold a core share and 2 GB meanwhile):
    stopped if this fixture started them, else with both nodes running again."""
    nodes = TwoNodes()
    was_up = nodes.all_up()
    began = time.monotonic()
    nodes.run("start")
    print(f"\ncluster {'checked' if was_up else 'started'} in {time.monotonic() - began:.0f}s", flush=True)
    try:
        yield nodes
    finally:
        nodes.run("start" if was_up else "stop")
