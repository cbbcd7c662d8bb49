"""What /healthz reports: each background loop's last success, and whether every loop has succeeded
recently enough (a loop that keeps failing, or is stuck, turns the process unhealthy)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, Protocol


class LoopObserver(Protocol):
    def loop_failed(self, name: str) -> None: ...

    def loop_succeeded(self, name: str, at: float) -> None: ...


class Heartbeats:
    """Implements `bot.rounds.RoundWatch` for the app's background loops."""

    def __init__(
        self,
        loops: Iterable[str],
        observer: LoopObserver,
        *,
        stale_after_seconds: float = 600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`loops`: the loops this process runs; each has `stale_after_seconds` from the start to succeed."""
        self._clock = clock
        self._observer = observer
        self.stale_after = stale_after_seconds
        self._since = clock()
        self._last: dict[str, float | None] = dict.fromkeys(loops)
        self._failures: dict[str, int] = dict.fromkeys(self._last, 0)
        self._errors: dict[str, str] = {}

    def succeeded(self, name: str) -> None:
        at = self._clock()
        self._last[name] = at
        self._failures[name] = 0
        self._errors.pop(name, None)
        self._observer.loop_succeeded(name, at)

    def failed(self, name: str, error: BaseException) -> None:
        self._last.setdefault(name, None)
        self._failures[name] = self._failures.get(name, 0) + 1
        self._errors[name] = f"{type(error).__name__}: {error}"[:300]
        self._observer.loop_failed(name)

    def report(self) -> tuple[bool, dict[str, Any]]:
        """(healthy, each loop's last success, seconds since, failures in a row and last error)."""
        now = self._clock()
        loops: dict[str, Any] = {}
        healthy = True
        for name, last in sorted(self._last.items()):
            age = now - (last if last is not None else self._since)
            fresh = age <= self.stale_after
            healthy &= fresh
            loops[name] = {
                "last_success": datetime.fromtimestamp(last, UTC).isoformat() if last is not None else None,
                "seconds_since_success": round(age, 1),
                "healthy": fresh,
                "failures_in_a_row": self._failures.get(name, 0),
                **({"last_error": self._errors[name]} if name in self._errors else {}),
            }
        return healthy, loops
