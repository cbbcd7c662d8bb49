"""Flat over time: a soak's per-minute series and the verdict on their growth.

Pure functions (no servers, no bot code), so the verdict can be tested on its own. A series holds one
value per minute of the soak, minute 1 first; a minute with nothing measured holds None.

The verdict compares the median of minutes 5-7 with the median of the last three minutes rather than
minute 5 with the last minute alone: a per-minute p99 of a few thousand commands moves by several per
cent from one minute to the next with no trend at all (a rebuild landing in one minute, a GC pause), and
a median of three minutes is not moved by one such minute.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from typing import Any

LIMIT = 0.05  # growth allowed from the fifth minute to the last
FIRST_MINUTE = 5  # the minutes before are warm-up: pools filling, statements prepared, caches
SPAN = 3  # minutes in each of the two windows compared
JUDGED = ("rss_mib", "connections", "p99_ms")


def by_minute(points: Iterable[tuple[float, float]], minutes: int) -> list[list[float]]:
    """(seconds since the start, value) points, grouped by the minute they fall in; past the end dropped."""
    out: list[list[float]] = [[] for _ in range(minutes)]
    for at, value in points:
        if 0 <= at < minutes * 60:
            out[int(at // 60)].append(value)
    return out


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest rank, as bench/measure.py's summaries."""
    if not values:
        return None
    s = sorted(values)
    return s[max(0, math.ceil(q * len(s)) - 1)]


def median(values: Sequence[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return statistics.median(kept) if kept else None


def windows(minutes: int, first: int = FIRST_MINUTE, span: int = SPAN) -> tuple[list[int], list[int]]:
    """The minutes (1-based) of the two windows compared: `span` minutes from `first`, and the last `span`.

    A soak too short for both (under `first + 2 * span - 1` minutes, e.g. a smoke run) gets shorter
    windows, the earlier one as late as it can start without overlapping the last; one minute alone
    gets none."""
    if minutes < first + 2 * span - 1:
        span = max(1, min(span, minutes // 2))
        first = max(1, min(first, minutes - 2 * span + 1))
    if minutes < 2:
        return [], []
    return list(range(first, first + span)), list(range(minutes - span + 1, minutes + 1))


def growth(series: Sequence[float | None], limit: float = LIMIT) -> dict[str, Any]:
    """Growth of a per-minute series from its early window to its last (see `windows`)."""
    early, late = windows(len(series))
    start = median([series[m - 1] for m in early])
    end = median([series[m - 1] for m in late])
    out: dict[str, Any] = {
        "from_minutes": early,
        "to_minutes": late,
        "from": start,
        "to": end,
        "growth": None,
        "passed": None,
        "shortened": early[:1] != [FIRST_MINUTE] or len(early) != SPAN,
    }
    if start is None or end is None:
        return out
    if start <= 0:  # nothing to grow from: flat only if it stayed at nothing
        out["passed"] = end <= 0
        return out
    out["growth"] = round(end / start - 1, 4)
    out["passed"] = out["growth"] <= limit
    return out


def verdict(minutes: Sequence[dict[str, Any]], judged: Sequence[str] = JUDGED) -> dict[str, Any]:
    """Each judged per-minute key's growth, and whether all stayed within the limit (None: not judged)."""
    out: dict[str, Any] = {k: growth([m.get(k) for m in minutes]) for k in judged}
    passes = [out[k]["passed"] for k in judged]
    out["limit"] = LIMIT
    out["passed"] = None if any(p is None for p in passes) else all(passes)
    return out
