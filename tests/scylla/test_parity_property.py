"""Random communities written through the score-update path: both backends answer identically for everyone."""

from __future__ import annotations

import asyncio
import os
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from psycopg_pool import AsyncConnectionPool

from backends.members import MemberRow
from backends.postgres.backend import PostgresBackend
from backends.postgres.community_writes import CommunityWrites
from backends.postgres.export import PostgresCopySource
from backends.protocol import Community, ScoreUpdate, TenantContext
from backends.scylla.backend import ScyllaBackend
from backends.scylla.session import CqlSession
from bot.domain.service import HotPathService
from bot.replication.backfill import backfill
from bot.replication.relay import OutboxRelay
from bot.replication.verify import compare
from bot.replication.writes import ScoreWriter

EPOCH = datetime(2024, 1, 1, tzinfo=UTC)


@st.composite
def communities(draw: st.DrawFn) -> dict[str, Any]:
    fedaykin = draw(st.integers(1, 120))
    return {
        "members": draw(st.one_of(st.integers(1, 150), st.integers(1, 5000))),
        "seed": draw(st.integers(0, 2**32)),
        "distinct_scores": draw(st.integers(1, 60)),  # few distinct values: many ties
        "zero_share": draw(st.floats(0, 0.5)),
        "join_times": draw(st.integers(1, 50)),  # few distinct join times: ties down to the profile id
        "fedaykin": fedaykin,
        "naib": draw(st.integers(1, fedaykin)),
        "at_risk": draw(st.integers(0, fedaykin)),
        "waitlist_end": fedaykin + draw(st.integers(0, 60)),
    }


def test_both_backends_agree_on_random_communities(
    postgres_dsn: str, cql_session: CqlSession, cql_keyspace: str
) -> None:
    loop = asyncio.new_event_loop()
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(postgres_dsn, min_size=1, max_size=4, open=False)
    loop.run_until_complete(pool.open(wait=True))
    source = PostgresBackend(pool, outbox=True)
    scylla = ScyllaBackend(cql_session, cql_keyspace)
    writer = ScoreWriter(source, OutboxRelay(PostgresCopySource(source.pool), {"scylla": scylla.replica}))
    admin = CommunityWrites(pool)

    # Under CI the examples are derandomised, so the run time of `make test` is the same every time.
    @settings(
        max_examples=12,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=os.environ.get("CI") == "true",
    )
    @given(communities())
    @example(
        {
            "members": 5000,
            "seed": 7,
            "distinct_scores": 5,
            "zero_share": 0.2,
            "join_times": 3,
            "fedaykin": 69,
            "naib": 7,
            "at_risk": 63,
            "waitlist_end": 100,
        }
    )
    def check(spec: dict[str, Any]) -> None:
        loop.run_until_complete(_check(spec, source, scylla, writer, admin))

    try:
        check()
    finally:
        loop.run_until_complete(pool.close())
        loop.close()


async def _check(
    spec: dict[str, Any], source: PostgresBackend, scylla: ScyllaBackend, writer: ScoreWriter, admin: CommunityWrites
) -> None:
    rng = random.Random(spec["seed"])
    guild = rng.getrandbits(62) | (1 << 61)
    community = Community(
        guild, fedaykin=spec["fedaykin"], naib=spec["naib"], at_risk=spec["at_risk"], waitlist_end=spec["waitlist_end"]
    )
    await admin.upsert_community(community)
    # Profiles join with nothing; every score arrives through the score-update path.
    ids = await admin.import_members(
        guild,
        [
            MemberRow(
                discord_user_id=i + 1,
                nym=f"n{i}" if rng.random() < 0.8 else None,
                joined_at=EPOCH + timedelta(hours=rng.randrange(spec["join_times"])),
            )
            for i in range(spec["members"])
        ],
    )
    await backfill(PostgresCopySource(source.pool), scylla.replica, guild)
    values = [Decimal(rng.randrange(1, 10_000)) / 100 for _ in range(spec["distinct_scores"])]
    ctx = TenantContext(guild)
    updates = [
        ScoreUpdate(
            pid, "conviction", Decimal(0) if rng.random() < spec["zero_share"] else rng.choice(values), "token_hold"
        )
        for pid in ids
    ] + [ScoreUpdate(pid, "activity", rng.choice(values), "activity_bonus") for pid in ids if rng.random() < 0.5]
    # Some members then move by a delta, some down to or below zero.
    updates += [
        ScoreUpdate(pid, "conviction", rng.choice(values) * rng.choice([-1, 1]), "decay", mode="add")
        for pid in rng.sample(ids, k=min(len(ids), 20))
    ]
    for start in range(0, len(updates), 1000):
        await writer.apply(ctx, updates[start : start + 1000])
    for board in ("conviction", "activity"):
        await scylla.recalculate(ctx, board)
    diffs = await compare(
        HotPathService(source, writer=writer), HotPathService(scylla, writer=writer), guild, ids, sample=0
    )
    assert diffs == [], "\n".join(str(d) for d in diffs[:10])
