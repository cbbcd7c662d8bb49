"""A rebuild reads what it builds from at a quorum, so a replica that missed an update cannot answer alone."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest
from cassandra import ConsistencyLevel

from backends.protocol import BackendUnavailable
from backends.scylla.migrations import migrate as migrate_cql
from backends.scylla.session import CqlSession, CqlSettings, connect
from backends.scylla.snapshots import SnapshotWriter
from backends.scylla.tables import Tables


@pytest.fixture
def short_of_a_quorum(cql_node: CqlSettings) -> Iterator[tuple[CqlSession, Tables]]:
    """A LOCAL_ONE session on a keyspace with one replica more than there are nodes: one replica can
    answer, a quorum of them never can."""
    cluster, session = connect(replace(cql_node, consistency="LOCAL_ONE"))
    keyspace = f"sietch_quorum_{uuid.uuid4().hex[:8]}"
    replication = {"class": "SimpleStrategy", "replication_factor": len(cluster.metadata.all_hosts()) + 1}
    cql = CqlSession(session)
    try:
        with ThreadPoolExecutor(1) as thread:
            thread.submit(asyncio.run, migrate_cql(cql, keyspace, replication)).result()
        yield cql, Tables(keyspace)
    finally:
        session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}", timeout=120)
        cluster.shutdown()


async def test_a_rebuild_reads_the_scores_at_a_quorum(short_of_a_quorum: tuple[CqlSession, Tables]) -> None:
    """At LOCAL_ONE, a rebuild reading a replica an update has not reached yet (a node back from an outage,
    its hints still on the way) would build a snapshot without that update. Its reads are at LOCAL_QUORUM:
    here, where no quorum can answer, the rebuild fails at its first read, before it writes anything (at
    LOCAL_ONE it would have read, and failed only at its version claim, a lightweight transaction)."""
    cql, t = short_of_a_quorum
    assert cql.quorum_at_least() == ConsistencyLevel.LOCAL_QUORUM
    assert await cql.execute(f"SELECT score_version FROM {t.community_versions} WHERE community_id = ?", (1,)) == []

    with pytest.raises(BackendUnavailable, match="LOCAL_QUORUM"):
        await SnapshotWriter(cql, t).rebuild(1, "conviction")
    assert (
        await cql.execute(f"SELECT version FROM {t.versions} WHERE community_id = ? AND board = ?", (1, "conviction"))
        == []
    )
