"""A stateful property test of the migration: random sequences of what operators and members do — imports
and re-imports, backfills killed at a random batch, rebuilds, member removals killed half-way, score
updates and badge changes through the outbox or around it (`writes: postgres`), relays that run late, a
copy that stops accepting writes — with the invariant checked after every step:

- whatever the router would serve from the copy equals what PostgreSQL says, unless the copy's snapshot
  is older than the scores (stale, and then its age is known);
- nothing acknowledged is lost: once the outbox is relayed and the copy backfilled, it equals PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from psycopg_pool import AsyncConnectionPool

from backends.copies import Replica
from backends.members import MemberRow
from backends.protocol import BOARDS, BackendUnavailable, BadgeChange, Community, ScoreUpdate, TenantContext
from backends.scylla.session import CqlSession
from bot.app.app import App
from bot.cli.copies import acknowledge
from bot.replication.backfill import backfill
from bot.replication.verify import compare
from bot.routing.readiness import Readiness
from tests.wiring import app


class Killed(Exception):
    """A kill -9 at this point: nothing after it runs."""


class Outage:
    """The copy's writes fail while `down` (the real replica underneath, its calls refused)."""

    def __init__(self, replica: Replica) -> None:
        self.replica = replica
        self.down = False

    def __getattr__(self, name: str) -> Any:
        target = getattr(self.replica, name)
        if name.startswith(("put_", "remove_", "rebuild")):

            async def refused(*args: Any, **kwargs: Any) -> Any:
                if self.down:
                    raise BackendUnavailable("scylla: the copy is down")
                return await target(*args, **kwargs)

            return refused
        return target


def test_the_copy_is_never_served_ready_and_wrong(
    postgres_dsn: str, cql_session: CqlSession, cql_keyspace: str
) -> None:
    loop = asyncio.new_event_loop()
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(postgres_dsn, min_size=1, max_size=4, open=False)
    loop.run_until_complete(pool.open(wait=True))
    container = app(pool, cql=cql_session, keyspace=cql_keyspace)

    class Migration(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.guild = random.getrandbits(60) | (1 << 61)
            self.replica = Outage(container.scylla_backend().replica)
            self.source = container.copy_source()
            self.writes = container.community_writes()
            self.relay = container.relay()
            self.postgres = container.services()["postgres"]
            self.scylla = container.services()["scylla"]
            self.members: list[int] = []
            self.next_user = 1
            run(self.writes.upsert_community(Community(self.guild, fedaykin=5, naib=2, at_risk=4, waitlist_end=8)))

        # --- what operators do -----------------------------------------------------------------------

        @rule(scores=st.lists(st.integers(0, 60), min_size=1, max_size=12), fresh=st.booleans())
        def import_members(self, scores: list[int], fresh: bool) -> None:
            """An import (new members, or new scores for the first ones), without the backfill after it."""
            users = (
                list(range(self.next_user, self.next_user + len(scores)))
                if fresh or not self.members
                else self.members[: len(scores)]
            )
            rows = [
                MemberRow(discord_user_id=u, conviction=Decimal(s), activity=Decimal(s % 7))
                for u, s in zip(users, scores, strict=False)  # a re-import may name fewer members
            ]
            run(self.writes.import_members(self.guild, rows))
            self.members = sorted(set(self.members) | set(users))
            self.next_user = max(self.next_user, max(users) + 1)

        @rule(kill_after=st.one_of(st.none(), st.integers(1, 3)))
        def backfill(self, kill_after: int | None) -> None:
            batches: list[int] = []

            def progress(done: int, total: int) -> None:
                batches.append(done)
                if kill_after is not None and len(batches) == kill_after:
                    raise Killed

            with contextlib.suppress(Killed, BackendUnavailable):
                run(backfill(self.source, self.replica, self.guild, progress=progress, batch=4))

        @rule()
        def rebuild(self) -> None:
            with contextlib.suppress(BackendUnavailable):
                run(self.replica.rebuild(self.guild))

        @precondition(lambda self: self.members)
        @rule(index=st.integers(0, 50), finish=st.booleans())
        def remove_member(self, index: int, finish: bool) -> None:
            """`sietch member remove`, killed after PostgreSQL unless `finish`."""
            user = self.members.pop(index % len(self.members))
            removed = run(self.writes.remove_member(self.guild, user))
            if removed is None or not finish:
                return
            with contextlib.suppress(BackendUnavailable):
                run(self.replica.remove_member(self.guild, user, removed[1].after))
                run(self.replica.rebuild(self.guild, force=True))
                run(acknowledge(App(container), self.replica, self.guild, removed[1]))

        @rule(down=st.booleans())
        def copy_outage(self, down: bool) -> None:
            self.replica.down = down

        # --- what members' scores do -----------------------------------------------------------------

        @precondition(lambda self: self.members)
        @rule(
            changes=st.lists(st.tuples(st.integers(0, 50), st.integers(-20, 40)), min_size=1, max_size=5),
            through_outbox=st.booleans(),
            relay_now=st.booleans(),
        )
        def update_scores(self, changes: list[tuple[int, int]], through_outbox: bool, relay_now: bool) -> None:
            ctx = TenantContext(self.guild)
            updates = []
            for index, delta in changes:
                profile = run(self.postgres.get_profile_for_user(ctx, self.members[index % len(self.members)]))
                assert profile is not None
                updates.append(ScoreUpdate(profile.profile_id, "conviction", Decimal(delta), "token_hold", mode="add"))
            # through_outbox=False is `writes: postgres` in the flag file: the copies are not told
            run(container.postgres_backend().apply_score_updates(ctx, updates, enqueue=through_outbox))
            if relay_now:
                self.relay_outbox()

        @precondition(lambda self: self.members)
        @rule(
            changes=st.lists(
                st.tuples(st.integers(0, 50), st.sampled_from(["award", "revoke"]), st.sampled_from(["og", "elder"])),
                min_size=1,
                max_size=5,
            ),
            through_outbox=st.booleans(),
            relay_now=st.booleans(),
        )
        def change_badges(self, changes: list[tuple[int, str, str]], through_outbox: bool, relay_now: bool) -> None:
            ctx = TenantContext(self.guild)
            badges = []
            for index, action, kind in changes:
                profile = run(self.postgres.get_profile_for_user(ctx, self.members[index % len(self.members)]))
                assert profile is not None
                badges.append(BadgeChange(profile.profile_id, action, kind))  # type: ignore[arg-type]
            run(container.postgres_backend().apply_badge_changes(ctx, badges, enqueue=through_outbox))
            if relay_now:
                self.relay_outbox()

        @rule()
        def relay_outbox(self) -> None:
            relay = type(self.relay)(self.source, {"scylla": self.replica})
            with contextlib.suppress(BackendUnavailable):
                run(relay.flush())

        # --- the invariant -----------------------------------------------------------------------------

        @invariant()
        def a_ready_copy_answers_as_postgres_or_is_stale(self) -> None:
            readiness = Readiness(self.source, {"scylla": self.replica.replica}, cache_seconds=0)
            if run(readiness.check("scylla", self.guild)) is not None:
                return  # routed to PostgreSQL
            source_version = run(self.source.score_version(self.guild)) or 0
            snapshots = [run(self.scylla.backend.snapshot_info(TenantContext(self.guild), b)) for b in BOARDS]
            if any(s.score_version < source_version for s in snapshots):
                return  # stale, with its age: what shadow reads count as stale, not as wrong
            diffs = self._differences()
            assert diffs == [], (
                f"the copy is served as ready and answers differently: source at {source_version}, floor"
                f" {run(self.source.copy_floor(self.guild))}, copy at {run(self.replica.score_version(self.guild))},"
                f" backfill {run(self.replica.backfill_state(self.guild))}, snapshots {snapshots}: {diffs[:3]}"
            )

        def _differences(self) -> list[Any]:
            ids = run(_profile_ids(self.source, self.guild))
            return list(run(compare(self.postgres, self.scylla, self.guild, ids, sample=0)))

        def teardown(self) -> None:
            """Nothing acknowledged is lost: the outbox relayed and the copy backfilled, it equals PostgreSQL."""
            self.replica.down = False
            self.relay_outbox()
            run(backfill(self.source, self.replica, self.guild, batch=4))
            readiness = Readiness(self.source, {"scylla": self.replica.replica}, cache_seconds=0)
            assert run(readiness.check("scylla", self.guild)) is None
            assert self._differences() == []

    def run(work: Any) -> Any:
        return loop.run_until_complete(work)

    Migration.TestCase.settings = settings(
        max_examples=int(os.environ.get("SIETCH_MIGRATION_EXAMPLES", "25")),
        stateful_step_count=12,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=os.environ.get("CI") == "true",
    )
    try:
        Migration.TestCase().runTest()
    finally:
        loop.run_until_complete(pool.close())
        loop.close()


async def _profile_ids(source: Any, guild: int) -> list[Any]:
    async with source.consistent_view() as view:
        return [s.profile.profile_id for s in await view.member_states_after(guild, None, 10**6)]
