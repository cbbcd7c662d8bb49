"""Per-community, per-user command rate limit (a sliding window of one minute).

Memory follows active users only: a user's window is forgotten a minute after their last call, and at
most `max_users` windows are kept (the least recently used go first).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from cachetools import TTLCache

WINDOW_SECONDS = 60.0
MAX_USERS = 1_000_000


class RateLimiter:
    def __init__(self, clock: Callable[[], float] = time.monotonic, max_users: int = MAX_USERS) -> None:
        self._clock = clock
        self._calls: TTLCache[tuple[int, int], deque[float]] = TTLCache(max_users, WINDOW_SECONDS, timer=clock)

    def acquire(self, community_id: int, user_id: int, per_minute: int) -> float:
        """Count one call; return 0 when allowed, else the seconds until the next call is allowed."""
        now = self._clock()
        key = (community_id, user_id)
        calls = self._calls.get(key) or deque()
        while calls and now - calls[0] >= WINDOW_SECONDS:
            calls.popleft()
        if len(calls) >= per_minute:
            return WINDOW_SECONDS - (now - calls[0])
        calls.append(now)
        self._calls[key] = calls  # set again: the window lives a minute past this call
        return 0.0

    def forget_idle(self) -> None:
        """Drop the windows of users with no call inside the last minute now (they also go on their own)."""
        self._calls.expire()

    def __len__(self) -> int:
        return len(self._calls)
