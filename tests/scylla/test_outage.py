"""A CQL node outage: score updates keep landing in PostgreSQL, wait in the outbox, and are replayed.

Runs against a node of its own (another port and data directory), so stopping it disturbs no other test.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

from psycopg_pool import AsyncConnectionPool

from backends.members import MemberRow
from backends.postgres.backend import PostgresBackend
from backends.postgres.community_writes import CommunityWrites
from backends.postgres.export import PostgresCopySource
from backends.protocol import Community, ScoreUpdate, TenantContext
from backends.scylla.backend import ScyllaBackend
from backends.scylla.migrations import migrate
from backends.scylla.session import CqlSession, connect
from bot.replication.backfill import backfill
from bot.replication.relay import OutboxRelay
from bot.replication.writes import ScoreWriter
from tests.conftest import SpareNode
from tests.environ import sietch_environ

ROOT = Path(__file__).parents[2]


async def test_updates_during_an_outage_are_replayed_and_nothing_is_lost(
    spare_cql_node: SpareNode, pool: AsyncConnectionPool[Any], new_guild_id: int, postgres_dsn: str
) -> None:
    spare_node, node = spare_cql_node.settings, spare_cql_node.run
    cluster, session = await asyncio.to_thread(connect, spare_node)
    try:
        cql = CqlSession(session)
        await migrate(cql, spare_node.keyspace, spare_node.replication)
        scylla = ScyllaBackend(cql, spare_node.keyspace)
        source = PostgresBackend(pool, outbox=True)
        mirror = OutboxRelay(
            PostgresCopySource(source.pool), {"scylla": scylla.replica}, interval_seconds=0.2, max_backoff_seconds=1.0
        )
        admin = CommunityWrites(pool)
        await admin.upsert_community(Community(new_guild_id))
        ids = await admin.import_members(
            new_guild_id, [MemberRow(discord_user_id=i + 1, conviction=Decimal(1000 - i)) for i in range(300)]
        )
        await backfill(PostgresCopySource(source.pool), scylla.replica, new_guild_id)
        writer = ScoreWriter(source, mirror)
        ctx = TenantContext(new_guild_id)

        node("stop")
        for i, pid in enumerate(ids[:120]):
            # Every write is accepted by PostgreSQL while Scylla is down; none raises to the caller.
            await writer.apply(
                ctx,
                [
                    ScoreUpdate(pid, "conviction", Decimal(i % 7 + 1), "token_hold", mode="add"),
                    ScoreUpdate(pid, "activity", Decimal(i), "activity_bonus"),
                ],
            )
        assert await mirror.pending(new_guild_id) == 240

        node("start")
        stop = asyncio.Event()
        replay = asyncio.create_task(mirror.run(stop))
        for _ in range(600):
            if await mirror.pending(new_guild_id) == 0:
                break
            await asyncio.sleep(0.1)
        stop.set()
        await replay
        assert await mirror.pending(new_guild_id) == 0

        expected = await source.get_scores(ctx, ids)
        copied = await scylla.get_scores(ctx, ids)
        assert {p: (s.conviction, s.activity) for p, s in copied.items()} == {
            p: (s.conviction, s.activity) for p, s in expected.items()
        }
        env = sietch_environ(postgres_dsn, spare_node, SIETCH_SCYLLA_HOSTS="127.0.0.1")
        for command in (
            ["recalc", "--guild", str(new_guild_id)],
            ["verify", "--guild", str(new_guild_id), "--sample", "0"],
        ):
            result = await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-m", "bot", *command],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert result.returncode == 0, result.stdout + result.stderr
        assert f"guild {new_guild_id}: 0 difference(s)" in result.stdout
    finally:
        await asyncio.to_thread(cluster.shutdown)
