"""Smoke test for the local CQL node: the CQL features the project relies on, through scylla-driver.

Usage: .venv/bin/python tools/cql-node/smoke.py [port]   (default $SIETCH_CQL_PORT or 9042;
       start the node first with tools/cql-node/node.sh start)

Creates a throw-away keyspace (SimpleStrategy RF 1), checks prepared insert/select, a per-write TTL,
PER PARTITION LIMIT and a logged batch inside one partition, then drops the keyspace.
Exits non-zero on the first failed check.
"""

from __future__ import annotations

import os
import sys
import time
import uuid

import cassandra
from cassandra import ConsistencyLevel
from cassandra.cluster import Cluster, DefaultConnection
from cassandra.query import BatchStatement, BatchType


def main() -> int:
    port = int(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("SIETCH_CQL_PORT", "9042"))
    print(f"scylla-driver (module cassandra) {cassandra.__version__}, python {sys.version.split()[0]}")
    print(f"default connection class: {DefaultConnection.__module__}.{DefaultConnection.__name__}")

    t0 = time.perf_counter()
    cluster = Cluster(["127.0.0.1"], port=port, protocol_version=4)
    session = cluster.connect()
    print(
        f"connected in {time.perf_counter() - t0:.2f}s; "
        f"release_version={session.execute('SELECT release_version FROM system.local').one()[0]}; "
        f"protocol v{cluster.protocol_version}; shard-aware={cluster.is_shard_aware()}"
    )

    ks = f"smoke_{uuid.uuid4().hex[:8]}"
    try:
        session.execute(
            f"CREATE KEYSPACE {ks} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}"
        )
        session.set_keyspace(ks)
        session.execute(
            """CREATE TABLE board (
                   guild bigint, bucket int, rank int, member bigint, score bigint,
                   PRIMARY KEY ((guild, bucket), rank)
               ) WITH CLUSTERING ORDER BY (rank ASC)"""
        )

        # Prepared insert + select.
        ins = session.prepare("INSERT INTO board (guild, bucket, rank, member, score) VALUES (?, ?, ?, ?, ?)")
        ins.consistency_level = ConsistencyLevel.ONE
        sel = session.prepare(
            "SELECT rank, member, score FROM board WHERE guild = ? AND bucket = ? AND rank >= ? LIMIT ?"
        )
        for bucket in (0, 1):
            for rank in range(1, 6):
                session.execute(ins, (42, bucket, bucket * 100 + rank, 1000 + rank, 500 - rank))
        rows = list(session.execute(sel, (42, 0, 2, 3)))
        assert [r.rank for r in rows] == [2, 3, 4], rows
        print(f"prepared insert/select: ok ({[tuple(r) for r in rows]})")

        # Per-write TTL: readable with TTL(), then gone after expiry.
        ins_ttl = session.prepare(
            "INSERT INTO board (guild, bucket, rank, member, score) VALUES (?, ?, ?, ?, ?) USING TTL ?"
        )
        session.execute(ins_ttl, (7, 0, 1, 1, 1, 2))
        ttl = session.execute(
            "SELECT TTL(score) FROM board WHERE guild = 7 AND bucket = 0 AND rank = 1"
        ).one()[0]
        assert ttl is not None and 0 < ttl <= 2, ttl
        time.sleep(3)
        gone = session.execute("SELECT rank FROM board WHERE guild = 7 AND bucket = 0 AND rank = 1").one()
        assert gone is None, gone
        print(f"TTL write: ok (TTL read back {ttl}s, row expired after 3s)")

        # PER PARTITION LIMIT across the two partitions of guild 42.
        ppl = "SELECT bucket, rank FROM board WHERE guild = 42 AND bucket IN (0, 1) PER PARTITION LIMIT 2"
        rows = list(session.execute(ppl))
        assert sorted((r.bucket, r.rank) for r in rows) == [(0, 1), (0, 2), (1, 101), (1, 102)], rows
        print(f"PER PARTITION LIMIT: ok ({sorted((r.bucket, r.rank) for r in rows)})")

        # Logged batch inside one partition.
        batch = BatchStatement(batch_type=BatchType.LOGGED)
        for rank in range(1, 51):
            batch.add(ins, (99, 0, rank, 2000 + rank, 10_000 - rank))
        session.execute(batch)
        count = session.execute("SELECT COUNT(*) FROM board WHERE guild = 99 AND bucket = 0").one()[0]
        assert count == 50, count
        print("logged batch (50 rows, one partition): ok")
    finally:
        session.execute(f"DROP KEYSPACE IF EXISTS {ks}")
        cluster.shutdown()
    print("smoke: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
