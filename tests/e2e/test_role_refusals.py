"""What Discord refuses is not asked again in a loop (finding: refused removals and unknown roles were
planned again at every sync; Discord bans a bot past 10,000 invalid requests in 10 minutes), and a sync
that fails for another reason is retried until it succeeds, its score version handled only then.
Through the real nextcord client against the emulator, with the production assembly on the test's pool."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import nextcord

from backends.members import MemberRow
from backends.postgres.backend import PostgresBackend
from backends.protocol import Community, ScoreUpdate, TenantContext
from backends.roles import RoleConfig
from bot.discord.members import MemberGatewayError
from bot.roles.sync import ROLE_ITSELF, RoleSync
from tests.emulator import DiscordEmulator
from tests.wiring import app

USERS = [101, 102, 103, 104, 105, 106]  # positions 1..6 by conviction


async def _community(emulator: DiscordEmulator, pool: Any, guild: int, client: Any) -> tuple[RoleSync, dict[str, int]]:
    container = app(pool, discord=client, SIETCH_ROLES_DEBOUNCE_SECONDS="0")
    await container.community_writes().upsert_community(Community(guild, fedaykin=3, naib=1, at_risk=1, waitlist_end=5))
    await container.community_writes().import_members(
        guild, [MemberRow(discord_user_id=u, conviction=Decimal(100 - 10 * i)) for i, u in enumerate(USERS)]
    )
    emulator.add_guild(guild)
    roles = {k: emulator.add_role(guild, k, p) for k, p in (("naib", 5), ("fedaykin", 4), ("waiting", 2))}
    emulator.give_bot_role(guild, emulator.add_role(guild, "Sietch", 10))
    for user in USERS:
        emulator.add_member(guild, user)
    await container.standing_store().put_role_config(
        RoleConfig(guild, naib=roles["naib"], fedaykin=roles["fedaykin"], waiting=roles["waiting"])
    )
    return container.role_sync(), roles


def asked_for(emulator: DiscordEmulator, role: int) -> int:
    """Requests the bot made for `role` (a 404 is not an invalid request to Discord, but still a request)."""
    return sum(1 for _, path in emulator.requests if path.endswith(f"/roles/{role}"))


async def _score(pool: Any, guild: int, user: int, value: int) -> None:
    source = PostgresBackend(pool)
    ctx = TenantContext(guild)
    profile = await source.get_profile_by_user(ctx, user)
    assert profile is not None
    await source.apply_score_updates(ctx, [ScoreUpdate(profile.profile_id, "conviction", Decimal(value), "decay")])


async def test_refused_removals_and_unknown_roles_are_asked_once(
    discord: tuple[DiscordEmulator, nextcord.Client], pool: Any, new_guild_id: int
) -> None:
    emulator, client = discord
    guild = new_guild_id
    sync, roles = await _community(emulator, pool, guild, client)
    assert await sync.sync(guild) is not None
    assert emulator.member_roles(guild, 101) == {roles["naib"], roles["fedaykin"]}

    # The admin drags the bot's role below the ones it hands out; 101 falls out of the eligible set.
    emulator.guilds[guild].roles[next(iter(emulator.guilds[guild].bot_roles))].position = 1
    await _score(pool, guild, 101, 1)
    await sync.sync(guild)
    refused = emulator.invalid_requests
    assert refused >= 1  # the removals were tried, and refused
    for _ in range(5):  # later syncs (a debounce window apart, or the sweep) ask nothing again
        plan = await sync.sync(guild)
        assert plan is not None and plan.changes == []
    assert emulator.invalid_requests == refused
    assert emulator.member_roles(guild, 101) == {roles["naib"], roles["fedaykin"]}  # still, as Discord says

    assert emulator.violations == []


async def test_a_role_discord_does_not_know_is_refused_once_then_not_used(
    discord: tuple[DiscordEmulator, nextcord.Client], pool: Any, new_guild_id: int
) -> None:
    emulator, client = discord
    guild = new_guild_id
    sync, roles = await _community(emulator, pool, guild, client)
    del emulator.guilds[guild].roles[roles["waiting"]]  # deleted in Discord, still configured here
    await sync.sync(guild)
    unknown = asked_for(emulator, roles["waiting"])
    assert unknown == 1  # one request learnt it; the other members' changes of that role were not made
    assert await sync.store.unknown_roles(guild) == {roles["waiting"]}
    problems, _ = await sync.store.problems(guild)
    assert (ROLE_ITSELF, roles["waiting"]) in {(u, r) for u, r, _ in problems}
    assert emulator.member_roles(guild, 101) == {roles["naib"], roles["fedaykin"]}  # the other roles work
    await _score(pool, guild, 106, 95)  # 106 moves up, 103 down into the pool: the waiting role is not used
    for _ in range(3):
        await sync.sync(guild)
    assert asked_for(emulator, roles["waiting"]) == unknown
    assert emulator.member_roles(guild, 103) == set() and emulator.member_roles(guild, 106) == {roles["fedaykin"]}
    await sync.store.put_role_config(RoleConfig(guild, naib=roles["naib"], fedaykin=roles["fedaykin"]))
    assert await sync.store.unknown_roles(guild) == set()  # set again: the admin fixed it
    assert emulator.violations == []


class FailingOnce:
    """The real Discord routes, but the first role change meets a server error (a 503 nextcord gave up on)."""

    def __init__(self, members: Any) -> None:
        self.members = members
        self.failed = False

    async def add_role(self, *args: Any, **kwargs: Any) -> None:
        if not self.failed:
            self.failed = True
            raise MemberGatewayError(503, 0, "Service Unavailable")
        await self.members.add_role(*args, **kwargs)

    async def remove_role(self, *args: Any, **kwargs: Any) -> None:
        await self.members.remove_role(*args, **kwargs)

    async def send_dm(self, user_id: int, content: str) -> None:
        await self.members.send_dm(user_id, content)


async def test_a_failed_sync_is_retried_and_its_version_handled_only_after(
    discord: tuple[DiscordEmulator, nextcord.Client], pool: Any, new_guild_id: int
) -> None:
    emulator, client = discord
    guild = new_guild_id
    sync, roles = await _community(emulator, pool, guild, client)
    sync.gateway = FailingOnce(sync.gateway)
    sync.followed = _Only(guild, sync.followed)
    assert await sync.sweep() == 1
    for _ in range(100):
        if emulator.member_roles(guild, 101) == {roles["naib"], roles["fedaykin"]}:
            break
        await asyncio.sleep(0.1)
    assert emulator.member_roles(guild, 101) == {roles["naib"], roles["fedaykin"]}
    assert sync.gateway.failed
    for _ in range(50):  # handled once the retry succeeded: the next sweep finds nothing new
        if await sync.sweep() == 0:
            break
        await asyncio.sleep(0.1)
    assert await sync.sweep() == 0
    await sync.stop()


class _Only:
    """The sweep's view of followed communities, narrowed to one guild (the test database holds many)."""

    def __init__(self, guild: int, followed: Any) -> None:
        self.guild, self.followed = guild, followed

    async def versions(self) -> dict[int, int]:
        return {g: v for g, v in (await self.followed.versions()).items() if g == self.guild}
