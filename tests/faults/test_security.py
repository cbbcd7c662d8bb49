"""Admin commands refused at run time, no token in logs, and no answer in one guild about another."""

from __future__ import annotations

import asyncio
import logging
import random
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
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
from bot.replication.writes import ScoreWriter
from cogs.backends import NOT_ALLOWED
from tests.cogs.conftest import BotHarness


async def test_backends_refuses_a_member_the_server_opened_it_to(both: BotHarness) -> None:
    """A server may grant /backends to everyone in its settings; the bot still wants Manage Server."""
    member = both.user(31337, "member", permissions=0)
    for sub in ("status", "reload", "clear"):
        interaction = both.emulator.invoke(
            "backends", sub, guild_id=both.guild_id, user=member, opened_to_everyone=True
        )
        message = await interaction.done()
        assert message.ephemeral and message.embeds[0]["description"] == NOT_ALLOWED


async def test_the_token_never_reaches_logs_or_replies(both: BotHarness, caplog: Any) -> None:
    caplog.set_level(logging.DEBUG)
    await both.configure()
    users = await both.seed([3, 2, 1])
    pool = both.container.pool()
    for command, path in [("position", ()), ("threshold", ()), ("leaderboard", ("conviction",))]:
        await both.call(command, *path, user=both.user(users[0]))
    await pool.close()  # and through failures too
    message = await both.call("threshold", user=both.user(users[0]))
    texts = [r.getMessage() for r in caplog.records] + [str(message.embeds)]
    assert not [t for t in texts if both.emulator.token in t]
    # Interaction tokens are reply credentials for 15 minutes: not even DEBUG logs may show them.
    tokens = [i.token for i in both.emulator.interactions.values()]
    assert len(tokens) >= 4 and any("/interactions/" in t for t in texts)
    assert not [t for t in texts if any(token in t for token in tokens)]


@st.composite
def operations(draw: st.DrawFn) -> list[tuple[str, int, int]]:
    return draw(
        st.lists(
            st.tuples(
                st.sampled_from(["update", "position", "page", "threshold", "rank", "waitlist"]),
                st.integers(0, 2),
                st.integers(0, 39),
            ),
            min_size=5,
            max_size=40,
        )
    )


def test_random_operations_over_several_guilds_never_leak(
    postgres_dsn: str, cql_session: CqlSession, cql_keyspace: str
) -> None:
    loop = asyncio.new_event_loop()
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(postgres_dsn, min_size=1, max_size=4, open=False)
    loop.run_until_complete(pool.open(wait=True))
    source = PostgresBackend(pool, outbox=True)
    scylla = ScyllaBackend(cql_session, cql_keyspace)
    writer = ScoreWriter(source, OutboxRelay(PostgresCopySource(source.pool), {"scylla": scylla.replica}))
    services = [HotPathService(source, writer=writer), HotPathService(scylla, writer=writer)]
    rng = random.Random(3)
    guilds = [rng.getrandbits(60) | (1 << 61) for _ in range(3)]
    members: dict[int, list[Any]] = {}

    async def setup() -> None:
        admin = CommunityWrites(pool)
        for gid in guilds:
            await admin.upsert_community(Community(gid, fedaykin=10, naib=2, at_risk=8, waitlist_end=20))
            rows = [MemberRow(discord_user_id=1 + i, conviction=Decimal(rng.randrange(0, 100))) for i in range(40)]
            members[gid] = await admin.import_members(gid, rows)
            await backfill(PostgresCopySource(source.pool), scylla.replica, gid)

    loop.run_until_complete(setup())

    @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(operations())
    def check(ops: list[tuple[str, int, int]]) -> None:
        loop.run_until_complete(run(ops))

    async def run(ops: list[tuple[str, int, int]]) -> None:
        for op, g, m in ops:
            gid = guilds[g]
            mine = set(members[gid])
            pid = members[guilds[(g + m) % 3]][m]  # sometimes another guild's member, on purpose
            for service in services:
                ctx = await service.open_context(gid)
                seen: set[Any] = set()
                if op == "update":
                    if pid in mine:
                        await service.apply_score_updates(ctx, [ScoreUpdate(pid, "conviction", Decimal(m), "decay")])
                        await scylla.recalculate(TenantContext(gid), "conviction")
                    continue
                if op == "position":
                    answer = await service.get_position(ctx, pid)
                    assert answer is None or pid in mine
                elif op == "rank":
                    answer = await service.get_rank(ctx, pid, "conviction")
                    assert answer is None or pid in mine
                elif op == "page":
                    seen = {e.profile_id for e in (await service.get_leaderboard(ctx, "conviction", m % 5 + 1)).entries}
                elif op == "waitlist":
                    seen = {w.profile_id for w in await service.get_waitlist(ctx, 10)}
                else:
                    assert (await service.get_threshold(ctx)).ranked <= len(mine)
                assert seen <= mine

    try:
        check()
    finally:
        loop.run_until_complete(pool.close())
        loop.close()
