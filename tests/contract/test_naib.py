"""Naib seats (docs/domain.md, "Naib seats", "/naib") on every backend: the worked examples, seats settled by
each kind of change, and random communities whose councils must be the pure rules applied to their history.

Seats are settled at the moment of the write that moved them. To give the examples their times, each
settling's moment is moved on the source of truth to the example's time (`Clock.settled`), and the
copies are given the council again, as after any change outside the outbox.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from psycopg_pool import AsyncConnectionPool

from backends.members import MemberRow
from backends.postgres.standing import StandingStore
from backends.protocol import BOARDS, FORMER_KEPT, BadgeChange, Council, FormerSeat, ScoreUpdate, Seat, TenantContext
from backends.roles import RoleConfig
from bot.discord.embeds import naib_current_embed, naib_former_embed, naib_overview_embed
from bot.domain.council import Eligible, Held, former_key, settle
from bot.domain.records import NaibCouncil
from tests.contract.conftest import World

D = Decimal
DAY1 = datetime(2026, 1, 1, tzinfo=UTC)
NAMES = ["Ada", "Ben", "Cal", "Dee", "Eve"]


@dataclass
class Clock:
    """Moves the latest settling's moment, on the source of truth, to a chosen time."""

    world: World
    pool: AsyncConnectionPool[Any]
    ctx: TenantContext
    last: datetime = datetime(2000, 1, 1, tzinfo=UTC)

    async def settled(self, at: datetime) -> bool:
        """The change just made happened at `at`: the moment of the seats it moved becomes `at` (and the
        copies get the council again). False when it moved no seat."""
        c = self.ctx.community_id
        async with self.pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "SELECT max(greatest(seated_at, coalesce(unseated_at, seated_at))) AS moment FROM naib_terms"
                " WHERE community_id = %s",
                (c,),
            )
            row = await cur.fetchone()
            moment = row["moment"] if row else None
            if moment is None or moment <= self.last:
                return False
            us = (at - moment) // timedelta(microseconds=1)
            await conn.execute(
                "UPDATE naib_members SET closed_us = closed_us + %s WHERE community_id = %s AND left_at = %s",
                (us, c, moment),
            )
            for table, column in (
                ("naib_terms", "seated_at"),
                ("naib_terms", "unseated_at"),
                ("naib_members", "first_seated_at"),
                ("naib_members", "left_at"),
                ("communities", "first_seated_at"),
            ):
                await conn.execute(
                    f"UPDATE {table} SET {column} = %s WHERE community_id = %s AND {column} = %s", (at, c, moment)
                )
            # The council changed outside the outbox: a new version, and the copies take it from a backfill.
            await conn.execute(
                "UPDATE communities SET score_version = score_version + 1, copy_floor = score_version + 1,"
                " council_version = score_version + 1 WHERE community_id = %s",
                (c,),
            )
        self.last = at
        assert self.ctx.community is not None
        await self.world.sync(self.ctx.community)
        return True


async def members(world: World, ctx: TenantContext, names: list[str], start: int = 0) -> dict[str, UUID]:
    """Members joining one second apart in list order, with no score."""
    rows = [
        MemberRow(discord_user_id=5000 + start + i, nym=n, joined_at=DAY1 - timedelta(days=1) + timedelta(seconds=i))
        for i, n in enumerate(names)
    ]
    return dict(zip(names, await world.seed_rows(ctx, rows), strict=True))


async def write(world: World, ctx: TenantContext, ids: dict[str, UUID], **convictions: int | str) -> None:
    updates = [ScoreUpdate(ids[name], "conviction", D(str(v)), "token_hold") for name, v in convictions.items()]
    await world.writer.apply(ctx, updates)
    for board in BOARDS:
        await world.backend.recalculate(ctx, board)


async def council(world: World, ctx: TenantContext, at: datetime) -> NaibCouncil:
    return await world.service.get_council(replace(ctx, started_at=at))


def field_values(embed: Any) -> dict[str, str]:
    return {f.name: f.value for f in embed.fields}


async def example_one(world: World, pool: AsyncConnectionPool[Any]) -> tuple[TenantContext, dict[str, UUID]]:
    ctx = await world.community(fedaykin=5, naib=3, at_risk=0)
    ids = await members(world, ctx, NAMES)
    clock = Clock(world, pool, ctx)
    await write(world, ctx, ids, Ada=500, Ben=400)
    assert await clock.settled(DAY1)
    await write(world, ctx, ids, Cal=300)
    assert await clock.settled(DAY1 + timedelta(minutes=30))
    await write(world, ctx, ids, Dee=350)
    assert await clock.settled(DAY1 + timedelta(hours=1))
    await write(world, ctx, ids, Eve=600)
    assert await clock.settled(DAY1 + timedelta(hours=2))
    return ctx, ids


async def test_worked_example_one_seats_challenges_and_founding(world: World, pool: AsyncConnectionPool[Any]) -> None:
    ctx, _ = await example_one(world, pool)
    answer = await council(world, ctx, datetime(2026, 1, 3, 2, tzinfo=UTC))
    assert [(s.seat, s.name, s.rank, s.founding) for s in answer.seats] == [
        (1, "Eve", 1, False),
        (2, "Ada", 2, True),
        (3, "Ben", 3, True),
    ]
    current = naib_current_embed(answer)
    assert field_values(current) == {
        "Active Seats (3/3)": "1️⃣ **Eve**\n   └ Rank #1 • 2d tenure\n\n2️⃣ **Ada** 🏛️\n   └ Rank #2 • 2d tenure\n\n"
        "3️⃣ **Ben** 🏛️\n   └ Rank #3 • 2d tenure"
    }
    assert current.footer.text == "🏛️ = Founding Naib (first 3 members)"
    assert field_values(naib_former_embed(answer)) == {
        "Former Members (2)": "1. **Dee**\n   └ 0d total tenure • 1 term • left 2d ago\n\n"
        "2. **Cal**\n   └ 0d total tenure • 1 term • left 2d ago"
    }
    assert [(f.name, f.tenure) for f in answer.former] == [("Dee", timedelta(hours=1)), ("Cal", timedelta(minutes=30))]
    overview = field_values(naib_overview_embed(answer))
    assert "🪑 Available" not in overview
    assert overview["📜 Former Naib (2)"] == "Dee, Cal"
    assert overview["Current Council (3/3)"] == "1️⃣ **Eve** (Rank #1)\n2️⃣ **Ada** 🏛️ (Rank #2)\n3️⃣ **Ben** 🏛️ (Rank #3)"


async def test_dee_seated_exactly_one_hour_after_the_first_seat_is_founding(
    world: World, pool: AsyncConnectionPool[Any]
) -> None:
    ctx, ids = await example_one(world, pool)
    raw = await world.backend.get_council(ctx)
    assert raw.first_seated_at == DAY1
    # Dee is former now, but founding stays with the first term: she takes a seat back, still founding.
    clock = Clock(world, pool, ctx, DAY1 + timedelta(hours=2))
    await write(world, ctx, ids, Dee=700)
    assert await clock.settled(DAY1 + timedelta(days=1))
    answer = await council(world, ctx, DAY1 + timedelta(days=2))
    assert [(s.name, s.founding) for s in answer.seats] == [("Dee", True), ("Eve", False), ("Ada", True)]
    assert [(f.name, f.terms) for f in answer.former] == [("Ben", 1), ("Cal", 1)]  # 24 h before 30 min


async def test_tenure_wins_ties_and_one_millionth_more_takes_the_seat(
    world: World, pool: AsyncConnectionPool[Any]
) -> None:
    """Worked example 2: Fay joined before everyone."""
    ctx = await world.community(fedaykin=5, naib=3, at_risk=0)
    ids = await members(world, ctx, ["Fay", *NAMES[:3]])  # in joining order: Fay first
    await write(world, ctx, ids, Ada=500, Ben=400, Cal=300)
    await write(world, ctx, ids, Fay=300)
    answer = await council(world, ctx, DAY1)
    assert [(s.name, s.rank) for s in answer.seats] == [("Ada", 1), ("Ben", 2), ("Cal", 4)]
    await write(world, ctx, ids, Fay="300.000001")
    answer = await council(world, ctx, DAY1)
    assert [(s.name, s.rank) for s in answer.seats] == [("Ada", 1), ("Ben", 2), ("Fay", 3)]
    assert [f.name for f in answer.former] == ["Cal"]


async def test_holding_nothing_unseats_and_an_empty_seat_is_taken(world: World) -> None:
    """Worked example 3."""
    ctx = await world.community(fedaykin=5, naib=3, at_risk=0)
    ids = await members(world, ctx, NAMES[:4])
    await write(world, ctx, ids, Ada=500, Ben=400, Cal=300)
    await write(world, ctx, ids, Cal=0)
    answer = await council(world, ctx, DAY1)
    assert [s.name for s in answer.seats] == ["Ada", "Ben"]
    current = field_values(naib_current_embed(answer))
    assert current["🪑 Empty Seats"] == "1 seat available. Complete onboarding as a top 5 BGT holder to claim!"
    assert field_values(naib_overview_embed(answer))["🪑 Available"] == "1 seat open"
    await write(world, ctx, ids, Dee=10)
    answer = await council(world, ctx, DAY1)
    assert [(s.name, s.rank) for s in answer.seats] == [("Ada", 1), ("Ben", 2), ("Dee", 3)]


async def test_minimum_balance_and_n_raised_and_lowered(world: World, pool: AsyncConnectionPool[Any]) -> None:
    """Worked example 4."""
    ctx = await world.community(fedaykin=5, naib=3, at_risk=0)
    ids = await members(world, ctx, NAMES)
    await write(world, ctx, ids, Ada=500, Ben=400, Cal=300, Dee=250, Eve=200)
    assert await StandingStore(pool).put_role_config(RoleConfig(ctx.community_id, minimum_balance=D(350)))
    assert ctx.community is not None
    await world.sync(ctx.community)
    answer = await council(world, ctx, DAY1)
    assert [s.name for s in answer.seats] == ["Ada", "Ben"]
    assert "Active Seats (2/3)" in field_values(naib_current_embed(answer))
    ctx = await world.community(fedaykin=5, naib=4, at_risk=0)
    answer = await council(world, ctx, DAY1)
    assert [s.name for s in answer.seats] == ["Ada", "Ben"]
    assert field_values(naib_overview_embed(answer))["🪑 Available"] == "2 seats open"
    ctx = await world.community(fedaykin=5, naib=1, at_risk=0)
    answer = await council(world, ctx, DAY1)
    assert [s.name for s in answer.seats] == ["Ada"]
    assert [f.name for f in answer.former] == ["Ben", "Cal"]  # Ben sat longer


async def test_tenure_of_two_terms_and_the_former_text(world: World, pool: AsyncConnectionPool[Any]) -> None:
    """Worked example 5: Cal held [01-01 00:30, 01:00) and [01-10 00:00, 03-01 12:00)."""
    ctx = await world.community(fedaykin=5, naib=1, at_risk=0)
    ids = await members(world, ctx, ["Ada", "Cal"])
    clock = Clock(world, pool, ctx)
    await write(world, ctx, ids, Cal=300)
    assert await clock.settled(DAY1 + timedelta(minutes=30))
    await write(world, ctx, ids, Ada=500)
    assert await clock.settled(DAY1 + timedelta(hours=1))
    await write(world, ctx, ids, Cal=600)
    assert await clock.settled(datetime(2026, 1, 10, tzinfo=UTC))
    await write(world, ctx, ids, Ada=700)
    assert await clock.settled(datetime(2026, 3, 1, 12, tzinfo=UTC))
    answer = await council(world, ctx, datetime(2026, 3, 4, 11, 59, tzinfo=UTC))
    cal = next(f for f in answer.former if f.name == "Cal")
    assert cal.tenure == timedelta(days=50, hours=12, minutes=30) and cal.terms == 2
    assert field_values(naib_former_embed(answer)) == {
        "Former Members (1)": "1. **Cal**\n   └ 1mo 20d total tenure • 2 terms • left 2d ago"
    }


async def test_nobody_seated_and_nobody_former(world: World) -> None:
    ctx = await world.community(fedaykin=5, naib=3, at_risk=0)
    await members(world, ctx, NAMES[:2])
    answer = await council(world, ctx, DAY1)
    assert answer.seats == [] and answer.former == [] and answer.former_count == 0
    assert field_values(naib_current_embed(answer)) == {
        "No Current Naib": "All 3 seats are open. Complete onboarding to claim a seat!"
    }
    assert naib_current_embed(answer).footer.text is None
    assert field_values(naib_former_embed(answer)) == {
        "No Former Naib Yet": "No members have been bumped from Naib seats yet."
    }
    assert field_values(naib_overview_embed(answer)) == {
        "Current Council (0/3)": "_All seats empty_",
        "🪑 Available": "3 seats open",
    }


async def test_a_removed_member_is_unseated_and_not_listed_as_former(world: World) -> None:
    ctx = await world.community(fedaykin=5, naib=2, at_risk=0)
    ids = await members(world, ctx, NAMES[:4])
    await write(world, ctx, ids, Ada=500, Ben=400, Cal=300)
    await write(world, ctx, ids, Dee=450)  # Ben keeps 400 < 450: Ben leaves, Dee takes his seat
    first = (await world.backend.get_council(ctx)).first_seated_at
    removed = await world.admin.remove_member(ctx.community_id, 5000)  # Ada
    assert removed is not None
    assert ctx.community is not None
    await world.sync(ctx.community)
    await world.backend.recalculate(ctx, "conviction")
    answer = await council(world, ctx, DAY1)
    assert [s.name for s in answer.seats] == ["Dee", "Ben"]
    raw = await world.backend.get_council(ctx)
    assert [f.profile_id for f in raw.former] == [] and raw.first_seated_at == first


# --- random communities against the pure rules ------------------------------------------------------------


@dataclass
class Oracle:
    """The council computed in Python from the history of writes: the pure rules applied after each."""

    fedaykin: int
    naib: int
    joined: dict[UUID, int]
    nyms: dict[UUID, str]
    conviction: dict[UUID, Decimal] = field(default_factory=dict)
    minimum: Decimal | None = None
    terms: dict[UUID, list[list[datetime | None]]] = field(default_factory=dict)
    first_seat: datetime | None = None

    def eligible(self) -> list[Eligible]:
        ranked = sorted(
            (pid for pid, c in self.conviction.items() if c > 0),
            key=lambda pid: (self.conviction[pid].copy_negate(), self.joined[pid], pid.int),
        )[: self.fedaykin]
        return [
            Eligible(pid, self.conviction[pid])
            for pid in ranked
            if self.minimum is None or self.conviction[pid] >= self.minimum
        ]

    def settle(self, at: datetime) -> bool:
        held = [Held(pid, t[-1][0]) for pid, t in self.terms.items() if t[-1][1] is None]  # type: ignore[arg-type]
        changes = settle(held, self.eligible(), self.naib, at)
        for pid in changes.unseated:
            self.terms[pid][-1][1] = at
        for pid in changes.seated:
            self.terms.setdefault(pid, []).append([at, None])
            self.first_seat = self.first_seat or at
        return bool(changes)

    def remove(self, pid: UUID) -> None:
        self.conviction.pop(pid, None)
        self.terms.pop(pid, None)
        self.joined.pop(pid)

    def council(self) -> Council:
        seats, former = [], []
        for pid, terms in self.terms.items():
            first = terms[0][0]
            assert first is not None
            if terms[-1][1] is None:
                seats.append(Seat(pid, terms[-1][0], first, self.nyms[pid]))  # type: ignore[arg-type]
            else:
                tenure = sum((t[1] - t[0] for t in terms), timedelta())  # type: ignore[operator]
                former.append(FormerSeat(pid, first, tenure, len(terms), terms[-1][1], self.nyms[pid]))  # type: ignore[arg-type]
        former.sort(key=lambda f: former_key(f.tenure, f.left_at, f.profile_id))
        return Council(
            tuple(sorted(seats, key=lambda s: s.profile_id.int)),
            tuple(former[:FORMER_KEPT]),
            len(former),
            self.first_seat,
        )


async def test_random_histories_match_the_pure_rules(world: World, pool: AsyncConnectionPool[Any]) -> None:
    rng = random.Random(world.guild_id)
    for round_ in range(3):
        fedaykin = rng.randint(2, 6)
        ctx = await world.community(
            world.guild_id + round_, fedaykin=fedaykin, naib=rng.randint(1, fedaykin), at_risk=0
        )
        assert ctx.community is not None
        names = [f"m{i}" for i in range(rng.randint(4, 9))]
        ids = await members(world, ctx, names)
        oracle = Oracle(
            ctx.community.fedaykin,
            ctx.community.naib,
            {pid: i for i, pid in enumerate(ids.values())},
            {pid: name for name, pid in ids.items()},
        )
        clock = Clock(world, pool, ctx)
        at = DAY1
        for step in range(14):
            at += timedelta(minutes=rng.choice([1, 20, 61, 600]))
            kind = rng.random()
            if kind < 0.7:
                chosen = rng.sample(
                    sorted(oracle.joined, key=lambda p: p.int), rng.randint(1, min(3, len(oracle.joined)))
                )
                values = {pid: D(rng.choice(["0", "1", "2", "2", "3", "3.000001", "5"])) for pid in chosen}
                await world.writer.apply(
                    ctx, [ScoreUpdate(p, "conviction", v, "token_hold") for p, v in values.items()]
                )
                oracle.conviction |= values
            elif kind < 0.8:
                n = rng.randint(1, oracle.fedaykin)
                ctx = await world.community(ctx.community_id, fedaykin=oracle.fedaykin, naib=n, at_risk=0)
                oracle.naib = n
            elif kind < 0.9:
                minimum = rng.choice([None, D(2), D(3)])
                await StandingStore(pool).put_role_config(RoleConfig(ctx.community_id, minimum_balance=minimum))
                assert ctx.community is not None
                await world.sync(ctx.community)
                oracle.minimum = minimum
            elif len(oracle.joined) > 2:
                pid = rng.choice(sorted(oracle.joined, key=lambda p: p.int))
                user = 5000 + names.index(oracle.nyms[pid])
                await world.admin.remove_member(ctx.community_id, user)
                assert ctx.community is not None
                await world.sync(ctx.community)
                oracle.remove(pid)
            moved = oracle.settle(at)
            clock.ctx = ctx
            assert await clock.settled(at) == moved, f"round {round_} step {step}"
            for board in BOARDS:
                await world.backend.recalculate(ctx, board)
            got = await world.backend.get_council(ctx)
            assert replace(got, version=0) == oracle.council(), f"round {round_} step {step}"
            answer = await council(world, ctx, at)
            eligible = oracle.eligible()
            order = {e.profile_id: (e.conviction.copy_negate(), i) for i, e in enumerate(eligible)}
            expected = sorted(
                oracle.council().seats, key=lambda s: (order[s.profile_id][0], s.seated_at, order[s.profile_id][1])
            )
            assert [s.profile_id for s in answer.seats] == [s.profile_id for s in expected]


async def test_the_naib_progression_tier_follows_the_seat_not_the_position(world: World) -> None:
    """A tie at position N: Fay, who joined first, is at position 1 with the seat holder's conviction; the
    seat and the `naib` tier stay with Ada."""
    ctx = await world.community(fedaykin=3, naib=1, at_risk=0)
    ids = await members(world, ctx, ["Fay", "Ada"])
    await write(world, ctx, ids, Ada=300)
    await write(world, ctx, ids, Fay=300)
    await world.badges(ctx, [BadgeChange(ids["Fay"], "award", "og"), BadgeChange(ids["Ada"], "award", "og")])
    board = await world.service.get_badge_board(ctx, None)
    assert [(e.name, e.tier) for e in board.entries] == [("Fay", "fedaykin"), ("Ada", "naib")]
    assert [(s.name, s.rank) for s in (await council(world, ctx, DAY1)).seats] == [("Ada", 2)]
