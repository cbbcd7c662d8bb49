"""Latency of the hot-path reads through `HotPathService`, and of the legacy query shapes."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from psycopg_pool import AsyncConnectionPool

from backends.protocol import Community, TenantContext
from bench.data import Members
from bot.domain.service import HotPathService

WARMUP = 50
MIN_CALLS = 300  # an op stopped by its time budget still has this many calls (or all of them)


def percentile(sorted_ms: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_ms:
        return float("nan")
    return sorted_ms[max(0, math.ceil(q * len(sorted_ms)) - 1)]


def summary(samples_ms: list[float]) -> dict[str, Any]:
    s = sorted(samples_ms)
    return {
        "calls": len(s),
        "p50": round(percentile(s, 0.50), 3),
        "p95": round(percentile(s, 0.95), 3),
        "p99": round(percentile(s, 0.99), 3),
        "max": round(s[-1], 3) if s else None,
        "mean": round(sum(s) / len(s), 3) if s else None,
    }


@dataclass
class Sample:
    """Members spread evenly over every conviction rank, 1 and the last included, in shuffled order."""

    ranks: list[int]
    profile_ids: list[UUID]
    user_ids: list[int]


def sample_members(m: Members, count: int, seed: int = 7) -> Sample:
    ranked = len(m.ranked)
    spread = count > 1 and ranked > 1
    ranks = [1 + (i * (ranked - 1)) // (count - 1) for i in range(count)] if spread else [1] * count
    random.Random(seed).shuffle(ranks)
    idx = [m.ranked[r - 1] for r in ranks]
    return Sample(ranks, [m.profile_ids[i] for i in idx], [m.user_ids[i] for i in idx])


Call = Callable[[int], Awaitable[Any]]


async def timed(
    call: Call, calls: int, warmup: int = WARMUP, budget_s: float | None = None, min_calls: int = 0
) -> tuple[list[float], bool]:
    """Run `call(i)` sequentially: `warmup` unmeasured calls, then up to `calls` timed ones (ms).

    With a budget the run stops once that many seconds are spent and at least `min_calls` were made;
    the second value says whether it stopped early.
    """
    for i in range(warmup):
        await call(i)
    out: list[float] = []
    started = time.perf_counter()
    for i in range(calls):
        t0 = time.perf_counter_ns()
        await call(i)
        out.append((time.perf_counter_ns() - t0) / 1e6)
        if budget_s is not None and len(out) >= min_calls and time.perf_counter() - started > budget_s:
            return out, True
    return out, False


OPS = (
    *("context", "position", "rank", "threshold", "waitlist", "page1", "mid_page", "deep_page"),
    *("tiers", "badges", "naib"),
)


async def measure_service(
    service: HotPathService,
    c: Community,
    sample: Sample,
    ranked: int,
    calls: int,
    only: Sequence[str] = (),
    budget_s: float | None = None,
    min_calls: int = 0,
) -> tuple[dict[str, Any], dict[str, list[float]]]:
    """Each op with a fresh TenantContext per call (one Discord command = one request = fresh pins).

    With `budget_s` an op stops once that many seconds are spent and it has `min_calls` calls (a slow op
    on a slow shape); the call count and `stopped_by_budget` say so.
    """
    gid = c.community_id
    n = len(sample.ranks)
    pages = max(1, -(-ranked // c.page_size))

    def ctx(i: int) -> TenantContext:
        return TenantContext(gid, user_id=sample.user_ids[i % n]).with_community(c)

    ops: dict[str, Call] = {
        "context": lambda i: service.open_context(gid, sample.user_ids[i % n]),
        "position": lambda i: service.get_position(ctx(i), sample.profile_ids[i % n]),
        "rank": lambda i: service.get_rank(ctx(i), sample.profile_ids[i % n], "conviction"),
        "threshold": lambda i: service.get_threshold(ctx(i)),
        "waitlist": lambda i: service.get_waitlist(ctx(i), 5),
        "page1": lambda i: service.get_leaderboard(ctx(i), "conviction", 1),
        # ten pages around the middle of the board, in turn
        "mid_page": lambda i: service.get_leaderboard(ctx(i), "conviction", max(1, (pages + 1) // 2 - 5 + i % 10)),
        # the last ten pages of the board, in turn
        "deep_page": lambda i: service.get_leaderboard(ctx(i), "conviction", max(1, pages - i % 10)),
        # /leaderboard tiers: the board's first ten and the caller's own entry
        "tiers": lambda i: service.get_tier_board(ctx(i), sample.profile_ids[i % n]),
        # /leaderboard badges: the first ten by badge count and the caller's own rank
        "badges": lambda i: service.get_badge_board(ctx(i), sample.profile_ids[i % n]),
        # /naib: the seats, the former members and the seat holders' ranks
        "naib": lambda i: service.get_council(ctx(i)),
    }
    results: dict[str, Any] = {}
    raw: dict[str, list[float]] = {}
    for name in only or OPS:
        samples, cut = await timed(ops[name], calls, budget_s=budget_s, min_calls=min(calls, min_calls))
        results[name] = summary(samples) | {"stopped_by_budget": cut}
        raw[name] = samples
    return results, raw


def by_rank_decile(samples_ms: list[float], sample: Sample, ranked: int) -> list[dict[str, Any]]:
    """Position latency by where the member stands: deciles of the board, top first."""
    buckets: list[list[float]] = [[] for _ in range(10)]
    n = len(sample.ranks)
    for i, ms in enumerate(samples_ms):
        rank = sample.ranks[i % n]
        buckets[min(9, (rank - 1) * 10 // max(ranked, 1))].append(ms)
    return [
        {
            "decile": d + 1,
            "calls": len(b),
            "p50": summary(b)["p50"] if b else None,
            "p99": summary(b)["p99"] if b else None,
        }
        for d, b in enumerate(buckets)
    ]


# --- the legacy query shapes -------------------------------------------------------------------------

LEGACY_TOP_N = 200  # the original system loaded the top 200 and scanned them in Python
SCAN_FETCH = 200  # rows per round trip when the scan has to go past the top N


async def legacy_top_n(pool: AsyncConnectionPool[Any], gid: int, fedaykin: int) -> tuple[Any, Any]:
    """The original /threshold: load the top N by conviction, scan for positions F and F+1."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT profile_id, conviction FROM scores WHERE community_id = %s ORDER BY conviction DESC LIMIT %s",
            (gid, LEGACY_TOP_N),
        )
        rows = await cur.fetchall()
    entry = first_waiting = None
    for position, row in enumerate(rows, start=1):
        if position == fedaykin:
            entry = row[1]
        elif position == fedaykin + 1:
            first_waiting = row[1]
            break
    return entry, first_waiting


async def legacy_scan(pool: AsyncConnectionPool[Any], gid: int, profile_id: UUID) -> int | None:
    """The original /position, made to work below the top N: stream the whole board in order through a
    server-side cursor and scan in Python until the member is found (plus the member below)."""
    async with pool.connection() as conn, conn.transaction():
        cur = conn.cursor(name="legacy_scan")
        await cur.execute(
            "SELECT profile_id, conviction FROM scores WHERE community_id = %s AND conviction > 0"
            " ORDER BY conviction DESC, joined_at, profile_id",
            (gid,),
        )
        position = 0
        found: int | None = None
        while True:
            rows = await cur.fetchmany(SCAN_FETCH)
            if not rows:
                return found
            for row in rows:
                position += 1
                if found is not None:  # the member below: the distance to them
                    return found
                if row[0] == profile_id:
                    found = position


async def legacy_window(pool: AsyncConnectionPool[Any], gid: int, profile_id: UUID) -> int | None:
    """A `RANK() OVER` window query over the community, filtered to one member."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT rank FROM (SELECT profile_id, RANK() OVER (ORDER BY conviction DESC, joined_at, profile_id) AS rank"
            "  FROM scores WHERE community_id = %s AND conviction > 0) ranked WHERE profile_id = %s",
            (gid, profile_id),
        )
        row = await cur.fetchone()
    return row[0] if row else None


async def measure_legacy(
    pool: AsyncConnectionPool[Any], c: Community, sample: Sample, calls: int, budget_s: float
) -> dict[str, Any]:
    gid, n = c.community_id, len(sample.ranks)
    ops: dict[str, Call] = {
        "top_n_threshold": lambda i: legacy_top_n(pool, gid, c.fedaykin),
        "scan_position": lambda i: legacy_scan(pool, gid, sample.profile_ids[i % n]),
        "window_rank": lambda i: legacy_window(pool, gid, sample.profile_ids[i % n]),
    }
    out: dict[str, Any] = {}
    for name, call in ops.items():
        samples, cut = await timed(call, calls, warmup=5, budget_s=budget_s, min_calls=min(calls, 100))
        out[name] = summary(samples) | {"stopped_by_budget": cut}
    return out
