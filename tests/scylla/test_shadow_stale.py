"""A shadow comparison judges each answer by the snapshot it was read from: an answer from a snapshot
replaced a moment later (a rebuild, `sietch member remove`) is stale, not a mismatch."""

from __future__ import annotations

from decimal import Decimal

from backends.members import MemberRow
from backends.protocol import Community, TenantContext
from bot.domain.queries import Query
from bot.domain.records import PositionData
from bot.domain.service import HotPathService
from bot.replication.backfill import backfill
from bot.routing.router import RoutingDecision
from bot.routing.serving import Served, answer
from tests.scylla.conftest import Pair


async def test_an_answer_from_a_replaced_snapshot_is_stale_not_a_mismatch(pair: Pair, new_guild_id: int) -> None:
    await pair.admin.upsert_community(Community(new_guild_id))
    rows = [MemberRow(discord_user_id=100 + i, conviction=Decimal(50 - i)) for i in range(5)]
    await pair.admin.import_members(new_guild_id, rows)
    await backfill(pair.copy_source, pair.scylla.replica, new_guild_id)
    scylla_service = pair.scylla_service()
    member = await pair.source.get_profile_by_user(TenantContext(new_guild_id), 104)
    assert member is not None

    async def read(service: HotPathService, ctx: TenantContext) -> PositionData | None:
        return await service.get_position(ctx, member.profile_id)

    position = Query("conviction", read)
    # The member's answer read from Scylla's snapshot of the moment...
    served = Served("scylla", await answer(scylla_service, new_guild_id, 104, position, note_snapshot=True))
    # ...and then member 100 is removed everywhere and the boards rebuilt, as `sietch member remove` does.
    removed = await pair.admin.remove_member(new_guild_id, 100)
    assert removed is not None
    await pair.scylla.replica.remove_member(new_guild_id, 100, removed[1].after)
    await pair.scylla.replica.rebuild(new_guild_id, force=True)

    shadow = pair.container.shadow()
    metrics = pair.container.metrics()
    decision = RoutingDecision("position", "scylla", "test", ("postgres",), "postgres")
    shadow.submit(decision, served, new_guild_id, 104, position)
    await shadow.idle()
    assert metrics.shadow_results == {("position", "postgres", "stale"): 1}
