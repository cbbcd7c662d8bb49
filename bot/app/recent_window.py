"""The last few minutes of command latencies and shadow results, per (command, backend), in a form that adds
up across processes: latencies as counts per fixed bucket, so the page's p50/p99 over every process come
from the merged counts (a percentile of percentiles would mean nothing)."""

from __future__ import annotations

import bisect
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

WINDOW_SECONDS = 300.0
SLOT_SECONDS = 10.0
# Upper bounds of the latency buckets, in milliseconds; a figure is reported as its bucket's bound.
BOUNDS_MS = (1, 2, 3, 5, 7, 10, 15, 20, 30, 50, 75, 100, 150, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 5000, 10000)


class RecentWindow:
    """Counts in slots of SLOT_SECONDS; what is older than WINDOW_SECONDS is dropped as time passes."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        # slot number -> (command, backend) -> [count per bucket..., over the last bound]
        self._latency: dict[int, dict[tuple[str, str], list[int]]] = {}
        # slot number -> (command, backend, outcome or shadow result) -> count
        self._outcomes: dict[int, Counter[tuple[str, str, str]]] = {}
        self._shadow: dict[int, Counter[tuple[str, str, str]]] = {}

    def call(self, command: str, backend: str, outcome: str, seconds: float) -> None:
        slot = self._slot()
        self._outcomes.setdefault(slot, Counter())[(command, backend, outcome)] += 1
        if outcome == "ok":
            buckets = self._latency.setdefault(slot, {}).setdefault((command, backend), [0] * (len(BOUNDS_MS) + 1))
            buckets[bisect.bisect_left(BOUNDS_MS, seconds * 1000)] += 1

    def shadow(self, command: str, backend: str, result: str) -> None:
        self._shadow.setdefault(self._slot(), Counter())[(command, backend, result)] += 1

    def summary(self) -> dict[str, Any]:
        """What a process reports, as JSON: {"latency": {command: {backend: buckets}}, "outcomes":
        {command: {backend: {outcome: n}}}, "shadow": {command: {backend: {result: n}}}}."""
        self._slot()
        latency: dict[str, dict[str, list[int]]] = {}
        for per_key in self._latency.values():
            for (command, backend), buckets in per_key.items():
                total = latency.setdefault(command, {}).setdefault(backend, [0] * len(buckets))
                for i, n in enumerate(buckets):
                    total[i] += n
        return {
            "window_seconds": WINDOW_SECONDS,
            "latency": latency,
            "outcomes": _nest(self._outcomes.values()),
            "shadow": _nest(self._shadow.values()),
        }

    def _slot(self) -> int:
        """The current slot, after dropping the slots that left the window."""
        now = int(self._clock() // SLOT_SECONDS)
        oldest = now - int(WINDOW_SECONDS // SLOT_SECONDS) + 1
        for table in (self._latency, self._outcomes, self._shadow):
            for slot in [s for s in table if s < oldest]:
                del table[slot]
        return now


def _nest(counters: Iterable[Counter[tuple[str, str, str]]]) -> dict[str, dict[str, dict[str, int]]]:
    nested: dict[str, dict[str, dict[str, int]]] = {}
    for counter in counters:
        for (command, backend, what), n in counter.items():
            per = nested.setdefault(command, {}).setdefault(backend, {})
            per[what] = per.get(what, 0) + n
    return nested


def merge_buckets(many: Iterable[list[int]]) -> list[int]:
    total = [0] * (len(BOUNDS_MS) + 1)
    for buckets in many:
        for i, n in enumerate(buckets[: len(total)]):
            total[i] += n
    return total


def percentile_ms(buckets: list[int], q: float) -> float | None:
    """The upper bound (ms) of the bucket holding the q-th quantile; None without samples; past the last
    bound, infinity."""
    count = sum(buckets)
    if count == 0:
        return None
    rank = q * count
    seen = 0
    for i, n in enumerate(buckets):
        seen += n
        if seen >= rank and n:
            return float(BOUNDS_MS[i]) if i < len(BOUNDS_MS) else float("inf")
    return float("inf")
