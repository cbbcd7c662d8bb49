"""Relays of several processes claim from one outbox at once (finding: two processes' relays met on an event
the other had just marked, PostgreSQL refused the claim as a serialization failure, and the round failed).
Every event reaches exactly one relay, and no claim fails for meeting another."""

from __future__ import annotations

import asyncio
from collections import Counter
from decimal import Decimal
from typing import Any

from psycopg_pool import AsyncConnectionPool

from backends.members import MemberRow
from backends.postgres.backend import PostgresBackend
from backends.postgres.community_writes import CommunityWrites
from backends.postgres.export import PostgresCopySource, count_unmirrored
from backends.protocol import BadgeChange, Community, ScoreUpdate, TenantContext

WRITES = 150
RELAYS = 4


async def test_relays_claiming_at_once_each_get_whole_batches_and_none_fails(
    pool: AsyncConnectionPool[Any], new_guild_id: int
) -> None:
    admin = CommunityWrites(pool)
    await admin.upsert_community(Community(new_guild_id))
    ids = await admin.import_members(
        new_guild_id, [MemberRow(discord_user_id=i + 1, conviction=Decimal(i + 1)) for i in range(20)]
    )
    backend = PostgresBackend(pool, outbox=True)
    ctx = TenantContext(new_guild_id)
    for n in range(WRITES):
        member = ids[n % len(ids)]
        await backend.apply_score_updates(ctx, [ScoreUpdate(member, "conviction", Decimal(1000 + n), "token_hold")])
        if n % 3 == 0:
            action = "award" if n % 2 == 0 else "revoke"
            await backend.apply_badge_changes(ctx, [BadgeChange(member, action, "og")])

    events: Counter[int] = Counter()
    badge_events: Counter[int] = Counter()
    failures: list[BaseException] = []

    async def relay(source: PostgresCopySource) -> None:
        while True:
            try:
                async with source.outbox_batch(3) as batch:
                    mine = [e.event_id for community, e in batch.events if community == new_guild_id]
                    events.update(mine)
                    badge_events.update(batch.badge_event_ids)
                    if not batch.events and not batch.badge_event_ids:
                        return
                    await asyncio.sleep(0)  # the others claim meanwhile
            except Exception as exc:
                failures.append(exc)
                return

    async with AsyncConnectionPool(pool.conninfo, min_size=RELAYS, max_size=RELAYS, open=False) as own:
        await own.open(wait=True)
        await asyncio.gather(*(relay(PostgresCopySource(own)) for _ in range(RELAYS)))

    assert failures == []
    assert len(events) >= WRITES and set(events.values()) == {1}, "every score event claimed exactly once"
    assert set(badge_events.values()) <= {1}, "every badge change claimed exactly once"
    async with pool.connection() as conn:
        assert await count_unmirrored(conn, new_guild_id) == 0
