"""The role sync's plan, from the source of truth: who holds which role, nobody flapping within a debounce
window, eligibility through the cache (a stale layer found by the balance), and what is recorded."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from psycopg_pool import AsyncConnectionPool

from backends.members import MemberRow
from backends.postgres.backend import PostgresBackend
from backends.protocol import Community, ScoreUpdate, TenantContext, utcnow
from backends.roles import RoleConfig
from bot.roles.sync import Plan, RoleSync
from tests.wiring import app

NAIB, FEDAYKIN, AT_RISK, WAITING = 11, 22, 33, 44


async def _setup(pool: AsyncConnectionPool[Any], guild: int, convictions: list[int], **roles: Any) -> RoleSync:
    container = app(pool, SIETCH_ROLES_DEBOUNCE_SECONDS="5")
    admin = container.community_writes()
    await admin.upsert_community(Community(guild, fedaykin=4, naib=1, at_risk=2, waitlist_end=6))
    await admin.import_members(
        guild, [MemberRow(discord_user_id=100 + i, conviction=Decimal(c)) for i, c in enumerate(convictions)]
    )
    store = container.standing_store()
    await store.put_role_config(RoleConfig(guild, NAIB, FEDAYKIN, AT_RISK, WAITING, **roles))
    sync: RoleSync = container.role_sync()
    return sync


async def _record(sync: RoleSync, guild: int, plan: Plan) -> None:
    """What a sync whose every change Discord accepted records."""
    await sync.store.put_standings(guild, [s for u, s in plan.standings.items() if u not in plan.gone], plan.gone)


async def _set_elsewhere(pool: AsyncConnectionPool[Any], guild: int, user: int, value: Decimal, event: Any) -> None:
    """A score change written by another process, straight to the source of truth."""
    source = PostgresBackend(pool)
    ctx = TenantContext(guild)
    profile = await source.get_profile_by_user(ctx, user)
    assert profile is not None
    await source.apply_score_updates(ctx, [ScoreUpdate(profile.profile_id, "conviction", value, event)])


def _held(plan: Plan) -> dict[int, set[int]]:
    return {u: set(s.roles) for u, s in plan.standings.items()}


async def test_roles_follow_positions_and_never_flap_within_the_window(
    pool: AsyncConnectionPool[Any], new_guild_id: int
) -> None:
    guild = new_guild_id
    sync = await _setup(pool, guild, [80, 70, 60, 50, 40, 30, 20])
    t0 = utcnow()
    first = await sync.plan(guild, now=t0)
    assert _held(first) == {
        100: {NAIB, FEDAYKIN},
        101: {FEDAYKIN},
        102: {FEDAYKIN, AT_RISK},
        103: {FEDAYKIN, AT_RISK},
        104: {WAITING},
        105: {WAITING},
    }
    assert first.alerts == []  # a community's first sync tells nobody anything
    await _record(sync, guild, first)

    # 104 jumps to the top a second later: 104, and everyone it passes, changed roles a moment ago.
    await _set_elsewhere(pool, guild, 104, Decimal(90), "token_hold")
    soon = await sync.plan(guild, now=t0 + timedelta(seconds=1))
    assert soon.changes == [] and set(soon.waiting) == {100, 101, 103, 104}  # 102 only moved within its band
    assert all(0 < left <= 4 for left in soon.waiting.values())

    later = await sync.plan(guild, now=t0 + timedelta(seconds=6))
    assert later.waiting == {}
    assert _held(later) == {
        104: {NAIB, FEDAYKIN},
        100: {FEDAYKIN},
        101: {FEDAYKIN, AT_RISK},
        102: {FEDAYKIN, AT_RISK},
        103: {WAITING},
    }
    assert {(c.discord_user_id, c.role_id, c.add) for c in later.changes} == {
        (104, WAITING, False), (104, NAIB, True), (104, FEDAYKIN, True), (100, NAIB, False),
        (101, AT_RISK, True), (103, FEDAYKIN, False), (103, AT_RISK, False), (103, WAITING, True),
    }  # fmt: skip
    events = {a.discord_user_id: a.events for a in later.alerts}
    assert events == {
        104: ("entered", "gained_naib"), 100: ("lost_naib",), 101: ("at_risk",),
        103: ("lost_eligibility", "head_of_waiting_pool"),
    }  # fmt: skip
    assert all(c.reason.startswith("Sietch: position ") for c in later.changes)


async def test_eligibility_gates_the_roles_and_a_stale_cache_is_found(
    pool: AsyncConnectionPool[Any], new_guild_id: int
) -> None:
    guild = new_guild_id
    sync = await _setup(pool, guild, [100, 60, 40, 30], minimum_balance=Decimal(50))
    plan = await sync.plan(guild)
    assert _held(plan) == {100: {NAIB, FEDAYKIN}, 101: {FEDAYKIN}}  # 40 and 30 are below the minimum
    # Another process raises 102 above the minimum: this process's cached "not eligible" is stale.
    await _set_elsewhere(pool, guild, 102, Decimal(55), "token_hold")
    again = await sync.plan(guild)
    assert _held(again)[102] == {FEDAYKIN, AT_RISK}


async def test_members_who_stand_nowhere_are_forgotten(pool: AsyncConnectionPool[Any], new_guild_id: int) -> None:
    guild = new_guild_id
    sync = await _setup(pool, guild, [80, 70, 60, 50, 40, 30, 20])
    t0 = utcnow()
    await _record(sync, guild, await sync.plan(guild, now=t0))
    await _set_elsewhere(pool, guild, 105, Decimal(0), "decay")
    plan = await sync.plan(guild, now=t0 + timedelta(seconds=10))
    assert plan.gone == [105] and [
        (c.discord_user_id, c.role_id, c.add) for c in plan.changes if c.discord_user_id == 105
    ] == [(105, WAITING, False)]
    await _record(sync, guild, plan)
    assert 105 not in await sync.store.standings(guild)


async def test_the_naib_role_follows_the_seat_on_a_tie_and_under_a_minimum_balance(
    pool: AsyncConnectionPool[Any], new_guild_id: int
) -> None:
    """Members 100 and 101 join in that order; 101 holds the one seat. 100 rising to 101's conviction takes
    position 1 but not the seat (tenure wins); a minimum balance above both unseats 101 in its transaction."""
    guild = new_guild_id
    sync = await _setup(pool, guild, [0, 80, 20])
    first = await sync.plan(guild)
    assert _held(first) == {101: {NAIB, FEDAYKIN}, 102: {FEDAYKIN}}  # 100 holds nothing: not ranked
    await _record(sync, guild, first)
    await _set_elsewhere(pool, guild, 100, Decimal(80), "token_hold")
    tie = await sync.plan(guild, now=utcnow() + timedelta(seconds=10))
    assert tie.standings[100].position == 1 and tie.standings[100].roles == {FEDAYKIN}
    assert tie.standings[101].position == 2 and tie.standings[101].roles == {NAIB, FEDAYKIN}
    assert not any("naib" in a.events for a in tie.alerts)
    await _record(sync, guild, tie)
    store = app(pool).standing_store()
    assert await store.put_role_config(RoleConfig(guild, NAIB, FEDAYKIN, AT_RISK, WAITING, minimum_balance=Decimal(81)))
    assert await store.seated(guild) == set()
    moved = await sync.plan(guild, now=utcnow() + timedelta(seconds=20))
    assert _held(moved)[100] == set() and _held(moved)[101] == set()
    assert {a.discord_user_id: a.events for a in moved.alerts}[101] == ("lost_eligibility", "lost_naib")
