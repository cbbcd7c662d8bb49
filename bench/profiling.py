"""Where the time goes: pyinstrument for in-process paths, py-spy for the bot process, EXPLAIN for SQL."""

from __future__ import annotations

import collections
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from uuid import UUID

from psycopg_pool import AsyncConnectionPool
from pyinstrument import Profiler


async def pyinstrument(run: Callable[[], Awaitable[Any]], out: Path, title: str) -> dict[str, Any]:
    """Profile one coroutine (async-aware: time awaiting the database shows as `[await]`)."""
    profiler = Profiler(interval=0.0005, async_mode="enabled")
    started = time.perf_counter()
    profiler.start()
    try:
        await run()
    finally:
        profiler.stop()
    elapsed = time.perf_counter() - started
    text = profiler.output_text(unicode=False, color=False, show_all=False, short_mode=False)
    out.write_text(f"# {title}\n# wall {elapsed:.2f}s\n\n{text}")
    session = profiler.last_session
    root = session.root_frame()
    return {
        "file": str(out),
        "wall_s": round(elapsed, 2),
        "top": _top_frames(root, elapsed),
        "own": _own_frames(root, elapsed),
    }


def _own_frames(root: Any, wall: float, limit: int = 12) -> list[dict[str, Any]]:
    """Inclusive time of our own functions (bot/, backends/), outermost occurrence only."""
    totals: dict[str, float] = collections.defaultdict(float)

    def walk(frame: Any, seen: frozenset[str]) -> None:
        if frame is None:
            return
        path = frame.file_path or ""
        key = ""
        if "/bot/" in path or "/backends/" in path:
            key = f"{frame.function} ({'/'.join(path.split('/')[-2:])}:{frame.line_no})"
            if key not in seen:
                totals[key] += frame.time
        for child in frame.children:
            walk(child, seen | {key} if key else seen)

    walk(root, frozenset())
    ranked = sorted(totals.items(), key=lambda kv: -kv[1])[:limit]
    return [{"frame": k, "seconds": round(v, 3), "share": round(v / wall, 3) if wall else None} for k, v in ranked]


def _top_frames(root: Any, wall: float, limit: int = 12) -> list[dict[str, Any]]:
    """Self time summed per function over the whole tree: the leaves where the time is actually spent."""
    totals: dict[str, float] = collections.defaultdict(float)

    def walk(frame: Any) -> None:
        if frame is None:
            return
        key = f"{frame.function} ({Path(frame.file_path_short or frame.file_path or '?').name}:{frame.line_no})"
        totals[key] += frame.total_self_time
        for child in frame.children:
            walk(child)

    walk(root)
    ranked = sorted(totals.items(), key=lambda kv: -kv[1])[:limit]
    return [{"frame": k, "seconds": round(v, 3), "share": round(v / wall, 3) if wall else None} for k, v in ranked]


def py_spy_summary(raw: Path, limit: int = 15) -> dict[str, Any]:
    """Collapsed stacks from `py-spy record --format raw`: share of samples per leaf function and per
    package ("own code" = bot/, backends/, cogs/)."""
    if not raw.exists():
        return {"error": f"{raw} missing"}
    leaf: collections.Counter[str] = collections.Counter()
    area: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        leaf[_short(frames[-1])] += count
        area[_area(frames)] += count
    return {
        "samples": total,
        "leaf": [{"frame": f, "share": round(n / total, 3)} for f, n in leaf.most_common(limit)],
        "area": [{"area": a, "share": round(n / total, 3)} for a, n in area.most_common()],
    }


def _short(frame: str) -> str:
    # py-spy raw frames look like "function (path/to/file.py:123)"
    name, _, where = frame.partition(" (")
    path = where.rstrip(")")
    parts = path.split("/")
    short = "/".join(parts[-2:]) if len(parts) > 1 else path
    return f"{name} ({short})"


def _area(frames: list[str]) -> str:
    """The innermost frame that says whose code the sample is in."""
    for frame in reversed(frames):
        if "site-packages/" in frame:
            pkg = frame.split("site-packages/", 1)[1].split("/", 1)[0]
            return f"library: {pkg}"
        for own in ("/bot/", "/backends/", "/cogs/"):
            if own in frame:
                return f"own: {own.strip('/')}"
        if "/lib/python3" in frame:
            tail = frame.split("/lib/python3", 1)[1].split("/", 1)[1]  # "asyncio/events.py:84)" or "selectors.py:468)"
            return "stdlib: " + tail.split("/", 1)[0].split(".py", 1)[0]
    return "other"


async def explain(pool: AsyncConnectionPool[Any], query: str, params: dict[str, Any]) -> str:
    async with pool.connection() as conn:
        cur = await conn.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING ON) " + query, params)
        rows = await cur.fetchall()
    return "\n".join(r[0] if isinstance(r, tuple) else next(iter(r.values())) for r in rows)


def rank_queries(board: str = "conviction") -> tuple[str, str, str]:
    """The PostgreSQL backend's get_rank and get_range statements, as it sends them."""
    me = (
        f"SELECT s.profile_id, s.{board} AS score, s.joined_at, p.nym, p.wallet_address"
        " FROM scores s JOIN profiles p USING (profile_id)"
        f" WHERE s.community_id = %(community)s AND s.profile_id = %(profile_id)s AND s.{board} > 0"
    )
    ahead = (
        f"SELECT count(*) AS ahead FROM scores WHERE community_id = %(community)s AND {board} > 0 AND"
        f" (-{board}, joined_at, profile_id) < (-%(score)s::numeric, %(joined_at)s, %(profile_id)s)"
    )
    around = (
        "SELECT s.profile_id, s.score, p.nym, p.wallet_address FROM ("
        f"  SELECT profile_id, {board} AS score, joined_at FROM scores"
        f"   WHERE community_id = %(community)s AND {board} > 0"
        f"   ORDER BY -{board}, joined_at, profile_id OFFSET %(offset)s LIMIT %(limit)s"
        ") s JOIN profiles p USING (profile_id) ORDER BY -s.score, s.joined_at, s.profile_id"
    )
    return me, ahead, around


async def explain_position(pool: AsyncConnectionPool[Any], gid: int, profile_id: UUID, rank: int) -> dict[str, str]:
    me_q, ahead_q, around_q = rank_queries()
    async with pool.connection() as conn:
        cur = await conn.execute(me_q, {"community": gid, "profile_id": profile_id})
        row = await cur.fetchone()
    assert row is not None
    score, joined = row[1], row[2]
    return {
        "the count of members ahead (get_rank)": await explain(
            pool, ahead_q, {"community": gid, "score": score, "joined_at": joined, "profile_id": profile_id}
        ),
        "get_range at the last ranks (OFFSET; what a deep page does)": await explain(
            pool, around_q, {"community": gid, "offset": max(0, rank - 2), "limit": 3}
        ),
    }
