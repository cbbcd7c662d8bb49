"""A circuit breaker per backend: stop sending traffic to a failing store, retry it after a cool-down."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Literal

State = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    """Opens after `failures` errors or timeouts within `window_seconds`; after `cool_down_seconds` one
    trial call is let through (half-open): its success closes the breaker, its failure opens it again."""

    def __init__(
        self,
        name: str,
        *,
        failures: int = 5,
        window_seconds: float = 30.0,
        cool_down_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[str, State], None] | None = None,
    ) -> None:
        self.name = name
        self.failures = failures
        self.window = window_seconds
        self.cool_down = cool_down_seconds
        self._clock = clock
        self._on_change = on_change
        self._recent: deque[float] = deque()
        self._state: State = "closed"
        self._opened_at = 0.0
        self._trial_running = False

    @property
    def state(self) -> State:
        if self._state == "open" and self._clock() - self._opened_at >= self.cool_down:
            self._set("half_open")
        return self._state

    def allow(self) -> bool:
        """May a call go to this backend now? In half-open, only one trial call at a time."""
        state = self.state
        if state == "closed":
            return True
        if state == "half_open" and not self._trial_running:
            self._trial_running = True
            return True
        return False

    def release(self) -> None:
        """A call that ended without saying anything about the backend (the request's own error, a
        cancellation): a half-open trial it held is free again."""
        self._trial_running = False

    def record_success(self) -> None:
        self._trial_running = False
        if self._state != "closed":
            self._recent.clear()
            self._set("closed")

    def record_failure(self) -> None:
        now = self._clock()
        self._trial_running = False
        if self._state == "half_open":
            self._open(now)
            return
        self._recent.append(now)
        while self._recent and now - self._recent[0] > self.window:
            self._recent.popleft()
        if self._state == "closed" and len(self._recent) >= self.failures:
            self._open(now)

    def _open(self, now: float) -> None:
        self._opened_at = now
        self._set("open")

    def _set(self, state: State) -> None:
        if state != self._state:
            self._state = state
            if self._on_change:
                self._on_change(self.name, state)
