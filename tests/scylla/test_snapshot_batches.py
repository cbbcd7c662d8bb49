"""Snapshot batches are built from values serialised by hand: they must be what `BatchStatement.add` builds."""

from __future__ import annotations

from decimal import Decimal
from uuid import uuid4

from cassandra.query import BatchStatement, BatchType

from backends.scylla.session import CqlSession
from backends.scylla.snapshots import _ROW_COLUMNS, _PartitionBatches, _Row
from backends.scylla.tables import Tables


def test_batches_match_the_drivers_own_binding(cql_session: CqlSession, cql_keyspace: str) -> None:
    rows = [
        _Row(uuid4(), Decimal("12.50"), 1, "Chani", "0x00ab"),
        _Row(uuid4(), Decimal("1E+3"), 2, None, None),
        _Row(uuid4(), Decimal("0.000001"), 3, "Ünïcødé", None),
        _Row(uuid4(), Decimal("123456789012345678901234567890.125"), 4, "", "0x"),
    ]
    head = (900_000_000_000_000_123, "conviction", 7)
    t = Tables(cql_keyspace)
    for table in (t.by_rank, t.by_profile):
        prepared = cql_session.prepare(f"INSERT INTO {table} ({_ROW_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
        batches = _PartitionBatches(prepared, head)
        encode = batches.row_encoder()
        ours = batches.batch(5, [encode(rank, row) for rank, row in enumerate(rows, 1)])

        bound = BatchStatement(batch_type=BatchType.UNLOGGED)
        for rank, row in enumerate(rows, 1):
            bound.add(prepared, (*head, 5, rank, row.profile_id, row.score, row.nym, row.wallet_address))

        assert [(p, q, list(v)) for p, q, v in ours._statements_and_parameters] == [
            (p, q, list(v)) for p, q, v in bound._statements_and_parameters
        ]
        assert (ours.routing_key, ours.keyspace) == (bound.routing_key, bound.keyspace)
        assert ours.routing_key is not None
