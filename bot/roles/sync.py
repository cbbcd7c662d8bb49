"""Keeps each member at exactly the roles their position (and naib seat) gives, from the source of truth.

A sync reads the first W positions and the naib seat holders from PostgreSQL, works out every member's
standing (their parts of naib / fedaykin / at risk / waiting pool, and the head of the pool), compares it
with the standing and the roles recorded at the last sync, and makes only the differences through Discord's member-role
routes, each with an audit-log reason. A member whose roles or standing changed less than one debounce
window ago is left alone until the window has passed (a follow-up sync is scheduled), so nobody flaps.
What Discord refuses (a role above the bot's own, an unknown role, a member who left) is logged and kept
for `/roles status`, and not tried again for an hour, additions and removals alike; a role Discord does not
know is not used at all until the community's roles are set again. Standings are recorded before any
alert is sent, so a DM is sent at most once per change.

Syncs run after score changes (debounced), after each snapshot, and on a sweep of communities whose score
version moved; one process at a time per community (a lease that holds no connection), at most
`concurrency` at once in a process, each reading the source of truth one statement at a time. A sync
that fails is tried again with a growing backoff, and a score version counts as handled only once a sync
that began after it succeeded.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Protocol

from backends.protocol import BackendError, Community, NotConfigured, TenantContext, utcnow
from backends.roles import Ranked, RoleConfig, Standing
from bot.discord.members import MISSING_PERMISSIONS, UNKNOWN_MEMBER, UNKNOWN_ROLE, MemberGatewayError
from bot.domain.records import EligibilityRule
from bot.domain.service import HotPathService
from bot.replication.rebuilds import Leases, Unshared
from bot.roles.alerts import AlertSender
from bot.roles.standing import Alert, decode, encode, events_between, roles_for, standing_of
from bot.roles.stores import FollowedCommunities, StandingStore
from bot.rounds import Rounds, RoundWatch, backoff, run_rounds

log = logging.getLogger(__name__)

PROBLEM_RETRY = timedelta(hours=1)
ROLE_ITSELF = 0  # the user id a problem of the role itself (Discord does not know it) is kept under
REFUSALS = (UNKNOWN_MEMBER, UNKNOWN_ROLE, MISSING_PERMISSIONS)  # what Discord will refuse again if asked
STOP_SECONDS = 5.0  # how long the syncs under way get to finish when the process stops
UNKNOWN_ROLE_PROBLEM = "the role does not exist (any more): not used until the community's roles are set again"


class SyncFailed(Exception):
    """Discord could not take a change now (not a refusal): the sync is tried again later."""


class MemberGateway(Protocol):
    async def add_role(self, guild_id: int, user_id: int, role_id: int, reason: str) -> None: ...
    async def remove_role(self, guild_id: int, user_id: int, role_id: int, reason: str) -> None: ...
    async def send_dm(self, user_id: int, content: str) -> None: ...


@dataclass(frozen=True)
class RoleChange:
    discord_user_id: int
    role_id: int
    add: bool
    reason: str

    def __str__(self) -> str:
        return f"{'+' if self.add else '-'} role {self.role_id} for user {self.discord_user_id} ({self.reason})"


@dataclass
class Plan:
    """What a sync of one community would do."""

    community: Community
    config: RoleConfig
    changes: list[RoleChange] = field(default_factory=list)
    standings: dict[int, Standing] = field(default_factory=dict)  # the members whose record moves
    gone: list[int] = field(default_factory=list)  # members who no longer stand anywhere
    alerts: list[Alert] = field(default_factory=list)
    waiting: dict[int, float] = field(default_factory=dict)  # members left alone: seconds until they may move
    skipped: list[RoleChange] = field(default_factory=list)  # refused within the last hour: not tried

    def describe(self) -> str:
        lines = [f"guild {self.community.community_id}: {len(self.changes)} role change(s)"]
        lines += [f"  {c}" for c in self.changes]
        if self.skipped:
            lines.append(f"  ({len(self.skipped)} change(s) Discord refused within the hour are not retried yet)")
        if self.waiting:
            lines.append(f"  ({len(self.waiting)} member(s) changed less than a debounce window ago wait)")
        if not self.config.role_ids:
            lines.append("  (no roles are configured: see `sietch community GUILD --naib-role ID ...`)")
        return "\n".join(lines)


class RoleSync:
    def __init__(
        self,
        store: StandingStore,
        service: HotPathService,
        gateway: MemberGateway | None = None,
        alerts: AlertSender | None = None,
        *,
        debounce_seconds: float = 5.0,
        interval_seconds: float = 30.0,
        leases: Leases | None = None,
        followed: FollowedCommunities | None = None,
        concurrency: int = 4,
        max_retry_seconds: float = 300.0,
    ) -> None:
        """`service`: the source of truth's service (settings, eligibility checks with their cache).
        `concurrency`: syncs running at once in this process (each holds at most one pooled connection
        at a time, so the pool always keeps room for the commands)."""
        self.store = store
        self.service = service
        self.gateway = gateway
        self.alerts = alerts
        self.debounce = debounce_seconds
        self.interval = interval_seconds
        self.leases: Leases = leases or Unshared()
        self.followed = followed
        self._timers: dict[int, asyncio.TimerHandle] = {}
        self._locks: dict[int, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._seen_versions: dict[int, int] = {}  # the versions a successful sync covered
        self._moved_to: dict[int, int] = {}  # versions the sweep saw, waiting for their sync
        self._failures: dict[int, int] = {}
        self._slots = asyncio.Semaphore(concurrency)
        self._queued: set[int] = set()  # communities whose sync task waits for a slot
        self.max_retry = max_retry_seconds
        self._stopping = False

    async def plan(self, guild: int, now: datetime | None = None) -> Plan:
        now = now or utcnow()
        ctx = await self.service.open_context(guild)
        assert ctx.community is not None
        community = ctx.community
        config = await self.store.role_config(guild)
        ranked = {r.discord_user_id: r for r in await self.store.first_positions(guild, community.waitlist_end)}
        seated = await self.store.seated(guild)
        recorded = await self.store.standings(guild)
        refused = await self.store.recent_problems(guild, now - PROBLEM_RETRY)
        unknown_roles = await self.store.unknown_roles(guild)
        plan = Plan(community, config)
        rule = EligibilityRule(config.rule_id, config.minimum_balance) if config.minimum_balance is not None else None
        first_sync = not recorded
        for user in sorted(ranked.keys() | recorded.keys()):
            member = ranked.get(user)
            position = member.position if member else None
            eligible = True
            if rule is not None and member is not None and position is not None and position <= community.waitlist_end:
                eligible = await self._eligible(ctx, member, rule)
            parts = standing_of(position, community, eligible, user in seated)
            before = recorded.get(user)
            held = (before.roles if before else frozenset()) - unknown_roles  # nor taken away if unknown
            had = decode(before.status) if before else frozenset()
            wanted = roles_for(parts, config) - unknown_roles
            # Discord refused these within the hour: not asked again yet, and recorded as they stand.
            blocked_adds = {r for r in wanted - held if (user, r) in refused}
            blocked_removals = {r for r in held - wanted if (user, r) in refused}
            target = (wanted - blocked_adds) | blocked_removals
            if before is None and not parts and not target:
                continue  # stands nowhere and never did: nothing to record
            if before is not None and parts == had and target == held and before.position == position:
                continue
            moved = parts != had or target != held
            if moved and before is not None and before.changed_at is not None:
                left = (before.changed_at + timedelta(seconds=self.debounce) - now).total_seconds()
                if left > 0:
                    plan.waiting[user] = left
                    continue
            reason = f"Sietch: position {position} ({encode(parts)})" if position else "Sietch: no longer ranked"
            plan.changes += [RoleChange(user, role, True, reason) for role in sorted(target - held)]
            plan.changes += [RoleChange(user, role, False, reason) for role in sorted(held - target)]
            plan.skipped += [RoleChange(user, role, True, reason) for role in sorted(blocked_adds)]
            plan.skipped += [RoleChange(user, role, False, reason) for role in sorted(blocked_removals)]
            if not parts and not target:
                plan.gone.append(user)
            plan.standings[user] = Standing(
                user, encode(parts), position, target, now if moved else (before.changed_at if before else now)
            )
            events = events_between(had, parts)
            if events and not first_sync:
                plan.alerts.append(Alert(user, events, position))
        return plan

    async def _eligible(self, ctx: TenantContext, member: Ranked, rule: EligibilityRule) -> bool:
        """Through the service's cache; a cached result checked against another balance than the one just
        read from the source of truth (a score changed in another process) is dropped and checked again."""
        result = await self.service.check_eligibility(ctx, member.profile_id, rule)
        if result.from_cache and result.balance != member.conviction:
            await self.service.invalidate_eligibility(ctx, member.profile_id, rule.rule_id)
            result = await self.service.check_eligibility(ctx, member.profile_id, rule)
        return result.eligible

    async def sync(self, guild: int) -> Plan | None:
        """Plan and carry out one sync; None when another process holds the community's lease."""
        lock = self._locks.setdefault(guild, asyncio.Lock())
        async with lock, self.leases.hold(f"roles:{guild}") as held:
            if not held:
                return None
            plan = await self.plan(guild)
            await self._apply(guild, plan)
            if plan.waiting:
                self.schedule(guild, delay=max(plan.waiting.values()) + 0.05)
            return plan

    async def _apply(self, guild: int, plan: Plan) -> None:
        failed_adds: set[tuple[int, int]] = set()
        kept: set[tuple[int, int]] = set()
        problems: list[tuple[int, int, str]] = []
        done: list[tuple[int, int]] = []
        unknown: set[int] = set()
        for change in plan.changes:
            if change.role_id in unknown:
                continue  # Discord just said this role does not exist: no more requests for it
            problem = await self._change(guild, change)
            if problem is None:
                done.append((change.discord_user_id, change.role_id))
                continue
            log.warning(
                "role change refused guild=%s user=%s role=%s add=%s problem=%s",
                guild,
                change.discord_user_id,
                change.role_id,
                change.add,
                problem,
            )
            if problem == UNKNOWN_ROLE_PROBLEM:
                unknown.add(change.role_id)
                problems.append((ROLE_ITSELF, change.role_id, problem))
            else:
                problems.append((change.discord_user_id, change.role_id, problem))
            (failed_adds if change.add else kept).add((change.discord_user_id, change.role_id))
        standings = []
        for user, standing in plan.standings.items():
            roles = {r for r in standing.roles if (user, r) not in failed_adds and r not in unknown}
            roles |= {r for (u, r) in kept if u == user and r not in unknown}
            standings.append(replace(standing, roles=frozenset(roles)))
        gone = [u for u in plan.gone if not any(k[0] == u for k in kept)]
        await self.store.note_problems(guild, problems)
        await self.store.clear_problems(guild, done)
        await self.store.put_standings(guild, [s for s in standings if s.discord_user_id not in set(gone)], gone)
        if plan.changes:
            log.info("roles synced guild=%s changes=%s refused=%s", guild, len(plan.changes), len(problems))
        if self.alerts is not None and plan.alerts:
            await self.alerts.send(plan.community, plan.alerts)

    async def _change(self, guild: int, change: RoleChange) -> str | None:
        """None when done; else what Discord refused, in words for an admin. Anything else Discord answers
        (a server error, a rate limit nextcord gave up waiting on) raises `SyncFailed`: the sync is tried
        again later, never recorded as a refusal."""
        if self.gateway is None:
            return "the bot is not connected to Discord"
        route = self.gateway.add_role if change.add else self.gateway.remove_role
        try:
            await route(guild, change.discord_user_id, change.role_id, change.reason)
        except MemberGatewayError as exc:
            if exc.code == UNKNOWN_MEMBER:
                return None if not change.add else "the member is not in the server"
            if exc.code == MISSING_PERMISSIONS:
                return "the role is above the bot's highest role, or the bot lacks Manage Roles"
            if exc.code == UNKNOWN_ROLE:
                return UNKNOWN_ROLE_PROBLEM
            raise SyncFailed(f"Discord could not take a role change now: {exc}") from exc
        return None

    def schedule(self, guild: int, delay: float | None = None) -> None:
        """Sync `guild` once after `delay` (the debounce window by default); calls meanwhile join it.

        Without a Discord connection (a one-shot command) nothing is scheduled: the running bot's sweep
        finds the community's new score version."""
        if guild in self._timers or guild in self._queued or self.gateway is None or self._stopping:
            return  # one sync waiting per community: a later change joins it
        loop = asyncio.get_running_loop()
        self._timers[guild] = loop.call_later(self.debounce if delay is None else delay, self._start, guild)

    def _start(self, guild: int) -> None:
        self._timers.pop(guild, None)
        self._queued.add(guild)
        task = asyncio.get_running_loop().create_task(self._sync_retried(guild), name=f"role-sync-{guild}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _sync_retried(self, guild: int) -> None:
        """One sync, in its turn among `concurrency`; a failure schedules the next try with a backoff."""
        try:
            await self._slots.acquire()
        finally:
            self._queued.discard(guild)  # from now on a change schedules the next sync
        try:
            if self._stopping:
                return
            version = self._moved_to.get(guild)
            try:
                plan = await self.sync(guild)
            except Exception as exc:  # any failure: a sync task that dies silently would stop roles for good
                failures = self._failures[guild] = self._failures.get(guild, 0) + 1
                delay = backoff(self.debounce, failures, self.max_retry)
                known = isinstance(exc, BackendError | NotConfigured | SyncFailed)
                log.warning(
                    "role sync failed guild=%s failures=%s retry_in=%.1fs error=%r",
                    guild,
                    failures,
                    delay,
                    exc,
                    exc_info=None if known else exc,
                )
                self.schedule(guild, delay)
                return
        finally:
            self._slots.release()
        self._failures.pop(guild, None)
        if plan is None:  # another process is syncing it: look again once its sync had time
            self.schedule(guild)
        elif version is not None:
            self._seen_versions[guild] = max(version, self._seen_versions.get(guild, version))
            if self._moved_to.get(guild) == version:
                del self._moved_to[guild]

    async def sweep(self) -> int:
        """Schedule a sync of every followed community whose scores moved past what a successful sync
        covered in this process (a version counts as handled only after its sync succeeded)."""
        if self.followed is None:
            return 0
        versions: Mapping[int, int] = await self.followed.versions()
        moved = [g for g, v in versions.items() if self._seen_versions.get(g) != v]
        for guild in moved:
            self._moved_to[guild] = versions[guild]
            if guild not in self._failures:  # a failing community keeps its own backoff
                self.schedule(guild, delay=0.0)
        return len(moved)

    async def run(self, stop: asyncio.Event, watch: RoundWatch | None = None) -> None:
        """Sweep every interval until `stop`; then the syncs under way get `STOP_SECONDS` to finish and
        the ones not started are dropped (the next start's sweep finds their communities)."""
        try:
            await run_rounds(self.sweep, Rounds("role-sync", self.interval), stop, watch)
        finally:
            await self.stop()

    async def stop(self) -> None:
        self._stopping = True
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        if self._tasks:
            _, late = await asyncio.wait(list(self._tasks), timeout=STOP_SECONDS)
            for task in late:
                task.cancel()
            if late:
                log.warning("role syncs cut short at shutdown count=%s", len(late))
                await asyncio.wait(late, timeout=1.0)
