"""Snapshot batches are built from values serialised by hand: they must be what `BatchStatement.add` builds."""

from __future__ import annotations

from decimal import Decimal
from uuid import uuid4

from cassandra.query import UNSET_VALUE, BatchStatement, BatchType

from backends.scylla.session import CqlSession
from backends.scylla.snapshots import _PROFILE_COLUMNS, _ROW_COLUMNS, _marks, _PartitionBatches, _Row
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
    by_rank = [(rank, r.profile_id, r.score, r.nym, r.wallet_address, r.joined_at_us) for rank, r in enumerate(rows, 1)]
    by_profile = [
        (
            r.profile_id,
            rank,
            r.score,
            r.nym,
            r.wallet_address,
            *([None] * 4 if rank == 1 else by_rank[rank - 2][1:5]),
            *([None] * 4 if rank == len(rows) else by_rank[rank][1:5]),
        )
        for rank, r in enumerate(rows, 1)
    ]
    for table, columns, values in ((t.by_rank, _ROW_COLUMNS, by_rank), (t.by_profile, _PROFILE_COLUMNS, by_profile)):
        prepared = cql_session.prepare(f"INSERT INTO {table} ({columns}) VALUES ({_marks(columns)})")
        batches = _PartitionBatches(prepared, head)
        encode = batches.row_encoder()
        ours = batches.batch(5, [encode(v) for v in values])

        bound = BatchStatement(batch_type=BatchType.UNLOGGED)
        for v in values:  # an absent value goes unset, not null (no tombstone in a new row)
            bound.add(prepared, (*head, 5, *(UNSET_VALUE if x is None else x for x in v)))

        assert [(p, q, list(v)) for p, q, v in ours._statements_and_parameters] == [
            (p, q, list(v)) for p, q, v in bound._statements_and_parameters
        ]
        assert (ours.routing_key, ours.keyspace) == (bound.routing_key, bound.keyspace)
        assert ours.routing_key is not None
