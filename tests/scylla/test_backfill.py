"""Backfill resumes after an interruption; the outbox drains when the bot's background work stops."""

from __future__ import annotations

from decimal import Decimal

import pytest

from backends.members import MemberRow
from backends.protocol import Community, ScoreUpdate, TenantContext
from bot.app.background import BackgroundWork
from bot.app.metrics import Metrics
from bot.replication.backfill import backfill
from tests.scylla.conftest import Pair


class Interrupted(Exception):
    pass


async def test_an_interrupted_backfill_continues_where_it_stopped(pair: Pair, new_guild_id: int) -> None:
    await pair.admin.upsert_community(Community(new_guild_id))
    ids = await pair.admin.import_members(
        new_guild_id, [MemberRow(discord_user_id=i + 1, conviction=Decimal(i + 1)) for i in range(350)]
    )
    seen: list[int] = []

    def stop_after_two_batches(done: int, total: int) -> None:
        seen.append(done)
        if len(seen) == 2:
            raise Interrupted

    with pytest.raises(Interrupted):
        await backfill(pair.copy_source, pair.scylla.replica, new_guild_id, progress=stop_after_two_batches, batch=100)
    state = await pair.scylla.replica.backfill_state(new_guild_id)
    assert state is not None and (state.state, state.rows_copied) == ("running", 200)

    progress: list[tuple[int, int]] = []
    copied = await backfill(
        pair.copy_source, pair.scylla.replica, new_guild_id, progress=lambda d, t: progress.append((d, t)), batch=100
    )
    assert copied == 150 and progress[-1] == (350, 350)
    state = await pair.scylla.replica.backfill_state(new_guild_id)
    assert state is not None and state.state == "complete"
    ctx = TenantContext(new_guild_id)
    assert len(await pair.scylla.get_scores(ctx, ids)) == 350
    assert await pair.scylla.count_ranked(TenantContext(new_guild_id), "conviction") == 350


async def test_stopping_the_background_work_drains_the_outbox(pair: Pair, new_guild_id: int) -> None:
    await pair.admin.upsert_community(Community(new_guild_id))
    ids = await pair.admin.import_members(new_guild_id, [MemberRow(discord_user_id=1, conviction=Decimal(5))])
    await backfill(pair.copy_source, pair.scylla.replica, new_guild_id)
    # Written without the mirror's immediate copy, as if the process were stopped right after PostgreSQL.
    await pair.source.apply_score_updates(
        TenantContext(new_guild_id), [ScoreUpdate(ids[0], "conviction", Decimal(9), "token_hold")]
    )
    assert await pair.mirror.pending(new_guild_id) == 1
    work = BackgroundWork(pair.mirror, None, None, Metrics(), drain_seconds=30)
    work.start()
    await work.stop()
    assert await pair.mirror.pending(new_guild_id) == 0
    score = await pair.scylla.get_score(TenantContext(new_guild_id), ids[0])
    assert score is not None and score.conviction == Decimal(9)
