"""Synthetic communities (fixed seed, one per shape and size) and the bulk loads: COPY into PostgreSQL,
prepared writes into Scylla.

Shapes of the conviction board:

- `long_tail`: Pareto-tailed holdings (a few whales, most members small), ~6 % zeros, some round-number
  and rounding ties, distinct join times. The default, and the only shape of earlier runs.
- `tied`: a majority (60 %) on one exact score (1 token), ~30 % on the small integers 2..10, the rest
  long-tailed; ~70 % of the members joined in a few large batch imports that stamped the same
  `joined_at` on everyone in the batch, so most ties fall through to the profile id.
- `all_equal`: every ranked member on the same score, and join times in a few large equal groups.

In every shape 8 % of the members hold badges, most one or two, a few up to all twelve.
"""

from __future__ import annotations

import asyncio
import io
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from backends.copies import BackfillState
from backends.postgres.community_writes import CommunityWrites
from backends.postgres.council import read_council as council_of
from backends.postgres.council import settle_seats
from backends.protocol import BADGE_TYPES, BadgeFacts, Community, Council, MemberState, Profile, TenantContext
from backends.scylla.backend import ScyllaBackend

START = datetime(2023, 1, 1, tzinfo=UTC)
NAMES = ("Stilgar", "Chani", "Jamis", "Harah", "Liet", "Otheym", "Korba", "Farok", "Turok", "Alia", "Idaho")
ROUND_SCORES = (100_00, 250_00, 500_00, 1000_00, 5000_00)  # cents: whole-number holdings many members share
VERSION = 1  # the score version of a freshly loaded community (a reload stamps one above any before it)
LOAD_CHUNK = 2000  # members per `put_states` call, as `bot.replication.backfill.backfill` uses
LOAD_PARALLEL = 4  # `put_states` calls in flight at once (each runs 64 statements concurrently)
SEED = 20240601

SHAPES = ("long_tail", "tied", "all_equal")
DEFAULT_SHAPE = "long_tail"
SHAPE_LABELS = {
    "long_tail": "long-tailed",
    "tied": "tied holders",
    "all_equal": "all equal",
}
GUILD_BASE = 900_000_000_000_000_000
SHARD_BIT = 1 << 22  # Discord routes a guild's events to shard (guild_id >> 22) % shard_count


def guild_id(size: int, shape: str = DEFAULT_SHAPE) -> int:
    """One fixed snowflake-sized guild per (shape, size); long_tail keeps the ids of earlier runs.

    Shapes are 2 * 2**22 apart, so every shape of a size sits on the same shard of a two-shard bot.
    """
    return GUILD_BASE + size + SHAPES.index(shape) * 2 * SHARD_BIT


def twin_guild_id(size: int) -> int:
    """A second long-tailed community of the size, on the other shard of a two-shard bot."""
    return guild_id(size) + SHARD_BIT


@dataclass
class Members:
    """A community as columns; scores in cents (2 decimals) so ties are exact."""

    size: int
    seed: int
    shape: str = DEFAULT_SHAPE
    profile_ids: list[uuid.UUID] = field(default_factory=list)
    user_ids: list[int] = field(default_factory=list)
    wallets: list[str] = field(default_factory=list)
    nyms: list[str | None] = field(default_factory=list)
    joined_s: list[int] = field(default_factory=list)  # seconds after START (distinct for long_tail)
    conviction: list[int] = field(default_factory=list)  # cents
    activity: list[int] = field(default_factory=list)  # whole points
    ranked: list[int] = field(default_factory=list)  # member indexes in conviction board order
    badges: list[int] = field(default_factory=list)  # badges held: the first k of BADGE_TYPES

    def joined_at(self, i: int) -> datetime:
        return START + timedelta(seconds=self.joined_s[i])

    def conviction_decimal(self, i: int) -> Decimal:
        return Decimal(self.conviction[i]).scaleb(-2)

    def state(self, i: int, community_id: int) -> MemberState:
        profile = Profile(
            self.profile_ids[i], community_id, self.joined_at(i), self.user_ids[i], self.wallets[i], self.nyms[i]
        )
        return MemberState(profile, self.conviction_decimal(i), Decimal(self.activity[i]), START, self.badges[i])

    def badge_histogram(self) -> dict[int, int]:
        return dict(Counter(k for k in self.badges if k > 0))

    def badge_facts(self) -> BadgeFacts:
        return BadgeFacts(self.size, self.joined_at(min(range(self.size), key=self.joined_s.__getitem__)))

    def stats(self) -> dict[str, Any]:
        ranked = len(self.ranked)
        scores = Counter(self.conviction[i] for i in self.ranked)
        top_score, top_count = scores.most_common(1)[0] if scores else (0, 0)
        return {
            "shape": self.shape,
            "members": self.size,
            "ranked_conviction": ranked,
            "zero_conviction": self.size - ranked,
            "distinct_conviction_scores": len(scores),
            "largest_tie": top_count,
            "largest_tie_score": str(Decimal(top_score).scaleb(-2)),
            "distinct_joined_at": len(set(self.joined_s)),
            "ranked_activity": sum(1 for a in self.activity if a > 0),
            "badge_holders": sum(1 for k in self.badges if k > 0),
            "top_conviction": str(self.conviction_decimal(self.ranked[0])) if ranked else "0",
            "median_conviction": str(self.conviction_decimal(self.ranked[ranked // 2])) if ranked else "0",
        }


def generate(size: int, shape: str = DEFAULT_SHAPE, seed: int = SEED) -> Members:
    """A community of the shape (see the module's docstring); the same seed, shape and size give the same data."""
    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}; known: {', '.join(SHAPES)}")
    m = _long_tail(size, seed) if shape == "long_tail" else _tied(size, seed, everyone_equal=shape == "all_equal")
    _award(m)
    return m


BADGE_HOLDERS = 0.08  # the share of members holding at least one badge


def _award(m: Members) -> None:
    """Badges for a few members, most holding one or two and a few many (a generator of its own, so the
    scores and join times of a seed stay what earlier runs measured)."""
    rng = random.Random(m.seed * 7_919 + m.size + SHAPES.index(m.shape))
    m.badges = [
        min(len(BADGE_TYPES), 1 + int(rng.expovariate(0.6))) if rng.random() < BADGE_HOLDERS else 0
        for _ in range(m.size)
    ]


def _long_tail(size: int, seed: int) -> Members:
    """Long-tailed scores (Pareto, a few whales), ~6 % zeros, round-number and rounding ties, distinct joins."""
    rng = random.Random(seed * 1_000_003 + size)
    m = Members(size, seed, "long_tail")
    m.joined_s = rng.sample(range(size * 30), size)
    for i in range(size):
        m.profile_ids.append(uuid.UUID(int=rng.getrandbits(128), version=4))
        m.user_ids.append(710_000_000_000_000_000 + i)
        m.wallets.append(f"0x{rng.getrandbits(160):040x}")
        m.nyms.append(f"{NAMES[i % len(NAMES)]}{i}" if rng.random() > 0.1 else None)
        r = rng.random()
        if r < 0.06:
            cents = 0
        elif r < 0.10:
            cents = rng.choice(ROUND_SCORES)
        else:
            cents = max(1, int((rng.paretovariate(1.16) - 1.0) * 100_000))  # median ~ 8 tokens, whales ~ 10^7
        m.conviction.append(cents)
        m.activity.append(0 if rng.random() < 0.12 else int(rng.expovariate(1 / 40)) + 1)
    _rank(m)
    return m


IMPORT_BATCHES = 12  # `tied`: batch imports, each stamping one joined_at on all of its members
EQUAL_JOIN_GROUPS = 4  # `all_equal`: every member joined at one of these few instants


def _tied(size: int, seed: int, *, everyone_equal: bool) -> Members:
    """`tied`, or `all_equal` with `everyone_equal`: see the module's docstring."""
    shape = "all_equal" if everyone_equal else "tied"
    rng = random.Random(seed * 1_000_003 + size + (2 if everyone_equal else 1) * 7_919_000_000)
    m = Members(size, seed, shape)
    distinct = rng.sample(range(size * 30), size)
    groups = EQUAL_JOIN_GROUPS if everyone_equal else IMPORT_BATCHES
    stamps = sorted(rng.sample(range(size * 30), groups))
    for i in range(size):
        m.profile_ids.append(uuid.UUID(int=rng.getrandbits(128), version=4))
        m.user_ids.append(710_000_000_000_000_000 + i)
        m.wallets.append(f"0x{rng.getrandbits(160):040x}")
        m.nyms.append(f"{NAMES[i % len(NAMES)]}{i}" if rng.random() > 0.1 else None)
        r = rng.random()
        if r < 0.04:
            cents = 0
        elif everyone_equal or r < 0.64:
            cents = 1_00  # one whole token: the majority, all on exactly the same score
        elif r < 0.94:
            cents = rng.randint(2, 10) * 100
        else:
            cents = 10_00 + max(1, int((rng.paretovariate(1.16) - 1.0) * 100_000))
        m.conviction.append(cents)
        m.joined_s.append(stamps[rng.randrange(groups)] if everyone_equal or rng.random() < 0.7 else distinct[i])
        m.activity.append(0 if rng.random() < 0.12 else int(rng.expovariate(1 / 40)) + 1)
    _rank(m)
    return m


def _rank(m: Members) -> None:
    """The conviction board's order: score descending, then join time, then profile id (as every backend ranks)."""
    pid_int = [p.int for p in m.profile_ids]
    m.ranked = sorted(
        (i for i in range(m.size) if m.conviction[i] > 0),
        key=lambda i: (-m.conviction[i], m.joined_s[i], pid_int[i]),
    )


def community(size: int, members: Members, guild: int | None = None) -> Community:
    """The community of a generated member set (its own guild per shape and size, or `guild`)."""
    gid = guild if guild is not None else guild_id(size, members.shape)
    shape = "" if members.shape == DEFAULT_SHAPE else f"{members.shape}-"
    # The rate limit is raised so the throughput run is never throttled.
    return Community(gid, name=f"bench-{shape}{size}-seed{members.seed}", rate_limit_per_minute=1_000_000)


# --- PostgreSQL ----------------------------------------------------------------------------------


def _text(value: str | None) -> str:
    if value is None:
        return "\\N"
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


async def load_postgres(
    pool: AsyncConnectionPool[Any], m: Members, c: Community, version: int = VERSION
) -> dict[str, Any]:
    """COPY straight into profiles and scores, one transaction; the statement-level triggers count ranks.

    `CommunityWrites.import_members` (staging table, matching, score history) is the onboarding path; a
    benchmark load has no existing members to match, so it writes the two tables directly.
    """
    await CommunityWrites(pool).upsert_community(c)
    gid = c.community_id
    started = time.perf_counter()
    async with pool.connection() as conn, conn.transaction():
        await conn.execute("DELETE FROM profiles WHERE community_id = %s", (gid,))
        await conn.execute(
            "UPDATE communities SET score_version = %s, ranked_conviction = 0, ranked_activity = 0,"
            " first_seated_at = NULL, council_version = 0 WHERE community_id = %s",
            (version, gid),
        )
        step = 50_000
        async with conn.cursor().copy(
            "COPY profiles (profile_id, community_id, discord_user_id, wallet_address, nym, joined_at) FROM STDIN"
        ) as copy:
            for lo in range(0, m.size, step):
                buf = io.StringIO()
                for i in range(lo, min(lo + step, m.size)):
                    buf.write(
                        f"{m.profile_ids[i]}\t{gid}\t{m.user_ids[i]}\t{m.wallets[i]}\t{_text(m.nyms[i])}\t"
                        f"{m.joined_at(i).isoformat()}\n"
                    )
                await copy.write(buf.getvalue())
        profiles_done = time.perf_counter()
        async with conn.cursor().copy(
            "COPY scores (community_id, profile_id, joined_at, conviction, activity, updated_at) FROM STDIN"
        ) as copy:
            for lo in range(0, m.size, step):
                buf = io.StringIO()
                for i in range(lo, min(lo + step, m.size)):
                    cents = m.conviction[i]
                    buf.write(
                        f"{gid}\t{m.profile_ids[i]}\t{m.joined_at(i).isoformat()}\t{cents // 100}.{cents % 100:02d}\t"
                        f"{m.activity[i]}\t{START.isoformat()}\n"
                    )
                await copy.write(buf.getvalue())
        await _copy_badges(conn, m, gid, step)
        # The seats as the first write after an import would settle them (the load writes no history).
        conn.row_factory = dict_row
        await settle_seats(conn, gid)
    copied = time.perf_counter()
    # What autovacuum would do soon after a bulk load: statistics, and the visibility map that lets
    # count(*) over the board index skip heap pages where it can.
    async with pool.connection() as conn:
        await conn.set_autocommit(True)
        await conn.execute("VACUUM (ANALYZE) profiles")
        await conn.execute("VACUUM (ANALYZE) scores")
        cur = await conn.execute(
            "SELECT ranked_conviction, ranked_activity, score_version FROM communities WHERE community_id = %s", (gid,)
        )
        counts = await cur.fetchone()
        await conn.set_autocommit(False)
    vacuumed = time.perf_counter()
    assert counts is not None
    expected_conviction = len(m.ranked)
    expected_activity = sum(1 for a in m.activity if a > 0)
    trigger_ok = counts[0] == expected_conviction and counts[1] == expected_activity
    if not trigger_ok:
        raise AssertionError(
            f"ranked counts kept by the triggers are wrong: {counts[:2]} != {(expected_conviction, expected_activity)}"
        )
    total = copied - started
    return {
        "rows": m.size,
        "copy_profiles_s": round(profiles_done - started, 2),
        "copy_scores_s": round(copied - profiles_done, 2),
        "copy_s": round(total, 2),
        "rows_per_s": round(m.size / total),
        "vacuum_analyze_s": round(vacuumed - copied, 2),
        "trigger_counts_ok": trigger_ok,
        "ranked_counts": [counts[0], counts[1]],
    }


async def _copy_badges(conn: Any, m: Members, gid: int, step: int) -> None:
    """Each holder's badges (the first k types) and their count on the badge board, as awards leave them."""
    awarded = START.isoformat()
    async with conn.cursor().copy("COPY badges (community_id, profile_id, badge_type, awarded_at) FROM STDIN") as copy:
        for lo in range(0, m.size, step):
            buf = io.StringIO()
            for i in range(lo, min(lo + step, m.size)):
                for kind in BADGE_TYPES[: m.badges[i]]:
                    buf.write(f"{gid}\t{m.profile_ids[i]}\t{kind}\t{awarded}\n")
            await copy.write(buf.getvalue())
    async with conn.cursor().copy("COPY badge_counts (community_id, profile_id, joined_at, held) FROM STDIN") as copy:
        for lo in range(0, m.size, step):
            buf = io.StringIO()
            for i in range(lo, min(lo + step, m.size)):
                if m.badges[i]:
                    buf.write(f"{gid}\t{m.profile_ids[i]}\t{m.joined_at(i).isoformat()}\t{m.badges[i]}\n")
            await copy.write(buf.getvalue())


# --- Scylla --------------------------------------------------------------------------------------


async def read_council(pool: AsyncConnectionPool[Any], gid: int) -> Council:
    """The council the load settled, as the copies are given it."""
    async with pool.connection() as conn, conn.transaction():
        conn.row_factory = dict_row
        return await council_of(conn, gid)


async def load_scylla(
    scylla: ScyllaBackend, m: Members, c: Community, version: int = VERSION, council: Council | None = None
) -> dict[str, Any]:
    """Concurrent prepared writes through `ScyllaReplica.put_states`, then the backfill marked complete.

    States are written at `version` (their write timestamp): reloading a community that score updates
    changed since (the freshness phase) needs a version above theirs, or the updated rows would win."""
    replica = scylla.replica
    gid = c.community_id
    await replica.put_community(c)
    await replica.put_backfill_state(BackfillState(gid, "running", None, 0, version))
    started = time.perf_counter()
    gate = asyncio.Semaphore(LOAD_PARALLEL)

    async def chunk(lo: int) -> None:
        async with gate:
            states = [m.state(i, gid) for i in range(lo, min(lo + LOAD_CHUNK, m.size))]
            await replica.put_states(gid, states, version)

    await asyncio.gather(*(chunk(lo) for lo in range(0, m.size, LOAD_CHUNK)))
    await replica.put_badge_counts(gid, m.badge_histogram(), m.badge_facts(), version)
    if council is not None:
        await replica.put_council(gid, council, version)
    elapsed = time.perf_counter() - started
    await replica.put_score_version(gid, version)
    await replica.put_backfill_state(BackfillState(gid, "complete", None, m.size, version))
    return {"rows": m.size, "load_s": round(elapsed, 2), "rows_per_s": round(m.size / elapsed)}


async def recalculate(scylla: ScyllaBackend, gid: int) -> dict[str, Any]:
    """`ScyllaBackend.recalculate` for both boards, timed each."""
    out: dict[str, Any] = {}
    total = 0.0
    for board in ("conviction", "activity"):
        started = time.perf_counter()
        ranked = await scylla.recalculate(TenantContext(gid), board)
        elapsed = time.perf_counter() - started
        total += elapsed
        out[board] = {"ranked": ranked, "seconds": round(elapsed, 2), "rows_per_s": round(ranked / elapsed)}
    out["both_seconds"] = round(total, 2)
    return out
