"""A copy away for longer than any backoff grows (finding: after 1,024 failures in a row the relay's
backoff overflowed inside its own error handler and the loop ended for good): the relay keeps trying at
its longest wait, and the copy catches up the moment it answers again."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from psycopg_pool import AsyncConnectionPool

from backends.members import MemberRow
from backends.memory.replica import MemoryReplica
from backends.postgres.backend import PostgresBackend
from backends.postgres.community_writes import CommunityWrites
from backends.postgres.export import PostgresCopySource
from backends.protocol import BackendUnavailable, Community, MemberState, ScoreUpdate, TenantContext
from bot.app.health import Heartbeats
from bot.app.metrics import Metrics
from bot.replication.backfill import backfill
from bot.replication.relay import OutboxRelay

AWAY_FOR = 1_300  # failed rounds in a row, past the 1,024 that overflowed


class AwayCopy(MemoryReplica):
    """The in-memory copy, unreachable for its first AWAY_FOR writes of member states."""

    def __init__(self) -> None:
        super().__init__()
        self.refused = 0

    async def put_states(self, community_id: int, states: Sequence[MemberState], version: int) -> None:
        if self.refused < AWAY_FOR:
            self.refused += 1
            raise BackendUnavailable("the copy is away")
        await super().put_states(community_id, states, version)


async def test_the_relay_outlives_a_long_outage_and_catches_up(
    pool: AsyncConnectionPool[Any], new_guild_id: int
) -> None:
    admin = CommunityWrites(pool)
    await admin.upsert_community(Community(new_guild_id))
    ids = await admin.import_members(new_guild_id, [MemberRow(discord_user_id=1, conviction=Decimal(5))])
    copy = AwayCopy()
    source = PostgresCopySource(pool)
    copy.refused = AWAY_FOR  # the backfill itself goes through
    await backfill(source, copy, new_guild_id)
    copy.refused = 0
    await PostgresBackend(pool, outbox=True).apply_score_updates(
        TenantContext(new_guild_id), [ScoreUpdate(ids[0], "conviction", Decimal(9), "token_hold")]
    )
    relay = OutboxRelay(source, {"memory": copy}, interval_seconds=1e-6, max_backoff_seconds=1e-4)
    watch = Heartbeats(["outbox-relay"], Metrics())
    stop = asyncio.Event()
    loop = asyncio.create_task(relay.run(stop, watch))
    try:
        for _ in range(6000):
            if await relay.pending(new_guild_id) == 0:
                break
            await asyncio.sleep(0.01)
    finally:
        stop.set()
        await asyncio.wait_for(loop, 10)
    assert copy.refused == AWAY_FOR and await relay.pending(new_guild_id) == 0
    state = copy.state(new_guild_id, ids[0])
    assert state is not None and state.conviction == Decimal(9)
    healthy, loops = watch.report()
    assert healthy and loops["outbox-relay"]["failures_in_a_row"] == 0
