"""Per-community, per-user command rate limit (a sliding window of one minute)."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

WINDOW_SECONDS = 60.0


class RateLimiter:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._calls: dict[tuple[int, int], deque[float]] = {}

    def acquire(self, community_id: int, user_id: int, per_minute: int) -> float:
        """Count one call; return 0 when allowed, else the seconds until the next call is allowed."""
        now = self._clock()
        calls = self._calls.setdefault((community_id, user_id), deque())
        while calls and now - calls[0] >= WINDOW_SECONDS:
            calls.popleft()
        if len(calls) >= per_minute:
            return WINDOW_SECONDS - (now - calls[0])
        calls.append(now)
        return 0.0

    def forget_idle(self) -> None:
        """Drop users with no call inside the window, so memory follows active users only."""
        now = self._clock()
        for key in [k for k, calls in self._calls.items() if not calls or now - calls[-1] >= WINDOW_SECONDS]:
            del self._calls[key]
