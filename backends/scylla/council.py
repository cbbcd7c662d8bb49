"""The naib council on the Scylla copy: one row per community, the whole council as one text, written at
the score version it was read at (a newer one stays) and read by key."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any
from uuid import UUID

from backends.protocol import FORMER_KEPT, Council, FormerSeat, Seat
from backends.scylla.session import CqlSession
from backends.scylla.tables import Tables, from_micros, to_micros

MICROSECOND = timedelta(microseconds=1)


def encode(council: Council) -> str:
    """Times as microseconds since the epoch and tenure in microseconds: exact, and the same in any zone."""
    return json.dumps(
        {
            "version": council.version,
            "first": None if council.first_seated_at is None else to_micros(council.first_seated_at),
            "former_count": council.former_count,
            "seats": [
                [str(s.profile_id), to_micros(s.seated_at), to_micros(s.first_seated_at), s.nym, s.wallet_address]
                for s in council.seats
            ],
            "former": [
                [
                    str(f.profile_id),
                    to_micros(f.first_seated_at),
                    f.tenure // MICROSECOND,
                    f.terms,
                    to_micros(f.left_at),
                    f.nym,
                    f.wallet_address,
                ]
                for f in council.former[:FORMER_KEPT]
            ],
        },
        separators=(",", ":"),
    )


def decode(text: str) -> Council:
    data: dict[str, Any] = json.loads(text)
    return Council(
        seats=tuple(
            Seat(UUID(pid), from_micros(seated), from_micros(first), nym, wallet)
            for pid, seated, first, nym, wallet in data["seats"]
        ),
        former=tuple(
            FormerSeat(UUID(pid), from_micros(first), tenure * MICROSECOND, terms, from_micros(left), nym, wallet)
            for pid, first, tenure, terms, left, nym, wallet in data["former"]
        ),
        former_count=int(data["former_count"]),
        first_seated_at=None if data["first"] is None else from_micros(data["first"]),
        version=int(data["version"]),
    )


class CouncilTable:
    def __init__(self, cql: CqlSession, tables: Tables) -> None:
        self.cql = cql
        self.t = tables

    async def put(self, community_id: int, council: Council, version: int) -> None:
        await self.cql.execute(
            f"INSERT INTO {self.t.naib_council} (community_id, council) VALUES (?, ?) USING TIMESTAMP ?",
            (community_id, encode(council), version),
        )

    async def get(self, community_id: int) -> Council:
        rows = await self.cql.execute(
            f"SELECT council FROM {self.t.naib_council} WHERE community_id = ?", (community_id,)
        )
        return decode(rows[0].council) if rows and rows[0].council else Council()
