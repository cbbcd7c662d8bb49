"""Where the time goes: pyinstrument for in-process paths, py-spy for the bot process, EXPLAIN for SQL."""

from __future__ import annotations

import collections
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from uuid import UUID

from psycopg import sql
from psycopg_pool import AsyncConnectionPool
from pyinstrument import Profiler

from backends.protocol import Board


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
    assert session is not None
    root = session.root_frame()
    return {
        "file": str(out),
        "wall_s": round(elapsed, 2),
        "top": _top_frames(root, elapsed),
        "own": _own_frames(root, elapsed),
    }


def _own_frames(root: Any, wall: float, limit: int = 12) -> list[dict[str, Any]]:
    """Inclusive time of our own functions (bot/, backends/, cogs/), outermost occurrence only."""
    totals: dict[str, float] = collections.defaultdict(float)

    def walk(frame: Any, seen: frozenset[str]) -> None:
        if frame is None:
            return
        path = frame.file_path or ""
        key = ""
        if not frame.is_synthetic and ("/bot/" in path or "/backends/" in path or "/cogs/" in path):
            key = _frame_name(frame)
            if key not in seen:
                totals[key] += frame.time
        for child in frame.children:
            walk(child, seen | {key} if key else seen)

    walk(root, frozenset())
    ranked = sorted(totals.items(), key=lambda kv: -kv[1])[:limit]
    return [{"frame": k, "seconds": round(v, 3), "share": round(v / wall, 3) if wall else None} for k, v in ranked]


def _top_frames(root: Any, wall: float, limit: int = 12) -> list[dict[str, Any]]:
    """Self time summed per function over the whole tree: the leaves where the time is actually spent.

    pyinstrument's synthetic `[self]` and `[await]` frames are folded into the function they belong to
    (`total_self_time` already counts them); the `[await]` part is kept apart as time spent waiting.
    """
    totals: dict[str, float] = collections.defaultdict(float)
    awaited: dict[str, float] = collections.defaultdict(float)

    def walk(frame: Any) -> None:
        if frame is None:
            return
        if not frame.is_synthetic:
            key = _frame_name(frame)
            totals[key] += frame.total_self_time
            awaited[key] += sum(c.time for c in frame.children if c.is_synthetic and c.function == "[await]")
        for child in frame.children:
            walk(child)

    walk(root)
    ranked = sorted(totals.items(), key=lambda kv: -kv[1])[:limit]
    return [
        {
            "frame": k,
            "seconds": round(v, 3),
            "share": round(v / wall, 3) if wall else None,
            "await_share": round(awaited[k] / wall, 3) if wall else None,
        }
        for k, v in ranked
    ]


def _frame_name(frame: Any) -> str:
    """`Class.function (package/file.py:line)`."""
    path = frame.file_path_short or frame.file_path or "?"
    where = "/".join(Path(path).parts[-2:])
    name = f"{frame.class_name}.{frame.function}" if getattr(frame, "class_name", None) else frame.function
    return f"{name} ({where}:{frame.line_no})" if frame.line_no else f"{name} ({where})"


def py_spy_summary(raw: Path, limit: int = 15) -> dict[str, Any]:
    """Collapsed stacks from `py-spy record --format raw`: share of samples per leaf function, per package
    ("own code" = bot/, backends/, cogs/), and inclusive per function of our own code."""
    if not raw.exists():
        return {"error": f"{raw} missing"}
    leaf: collections.Counter[str] = collections.Counter()
    area: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
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
        for name in {_short(f, line=False) for f in frames if _is_own(f)}:
            own[name] += count
    if not total:
        return {"error": f"{raw} holds no samples"}
    return {
        "samples": total,
        "leaf": [{"frame": f, "share": round(n / total, 3)} for f, n in leaf.most_common(limit)],
        "area": [{"area": a, "share": round(n / total, 3)} for a, n in area.most_common()],
        "own": [{"frame": f, "share": round(n / total, 3)} for f, n in own.most_common(limit)],
    }


def _is_own(frame: str) -> bool:
    return "site-packages/" not in frame and any(d in frame for d in ("/bot/", "/backends/", "/cogs/"))


def _short(frame: str, line: bool = True) -> str:
    # py-spy raw frames look like "function (path/to/file.py:123)"
    name, _, where = frame.partition(" (")
    path = where.rstrip(")")
    if not line:
        path = path.rsplit(":", 1)[0]
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


async def explain(pool: AsyncConnectionPool[Any], query: str | sql.Composable, params: dict[str, Any]) -> str:
    """`EXPLAIN (ANALYZE, BUFFERS)` of one statement with these parameters (the statement is run)."""
    statement = sql.SQL("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING ON) ") + (
        sql.SQL(query) if isinstance(query, str) else query
    )
    async with pool.connection() as conn:
        cur = await conn.execute(statement, params)
        rows = await cur.fetchall()
    return "\n".join(r[0] if isinstance(r, tuple) else next(iter(r.values())) for r in rows)


async def explain_position(
    pool: AsyncConnectionPool[Any], gid: int, profile_id: UUID, ranked: int, page_size: int, board: Board = "conviction"
) -> dict[str, str]:
    """The PostgreSQL backend's own statements, formatted and bound as it sends them: its member-and-neighbours
    read for `profile_id` (the last-ranked member) and its range read of the board's last page.

    Where the backend's statements changed shape (other names or parameters), the plan says so instead."""
    from backends.postgres import backend as pg_backend

    s = sql.Identifier(board)
    last_first = (max(1, -(-ranked // page_size)) - 1) * page_size + 1
    wanted: dict[str, tuple[str, dict[str, Any]]] = {
        "get_neighbours for the last-ranked member (`_NEIGHBOURS`)": (
            "_NEIGHBOURS",
            {"community": gid, "profile_id": profile_id, "board": board},
        ),
        f"get_range of the last page, ranks {last_first:,}-{ranked:,} (`_RANGE`)": (
            "_RANGE",
            {"community": gid, "board": board, "first": last_first, "limit": page_size},
        ),
    }
    plans: dict[str, str] = {}
    for title, (constant, params) in wanted.items():
        statement = getattr(pg_backend, constant, None)
        if not isinstance(statement, str):
            plans[title] = f"(not explained: backends/postgres/backend.py has no {constant} statement)"
            continue
        try:
            plans[title] = await explain(pool, sql.SQL(statement).format(s=s), params)
        except Exception as exc:  # the statement's parameters changed: say so, keep the run going
            plans[title] = f"(not explained: {type(exc).__name__}: {exc})"
    return plans
