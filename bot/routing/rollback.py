"""Latched auto-rollback: a command whose error or shadow-mismatch rate on a backend is too high stops
being routed there, and stays so (above the flag file, across reloads) until an admin clears it."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from bot.routing.flags import AutoRollbackPolicy

log = logging.getLogger(__name__)

REFRESH_SECONDS = 2.0


class LatchStore(Protocol):
    """Where latches are kept so every process and the CLI see and clear the same ones."""

    async def all(self) -> dict[tuple[str, str], str]: ...

    async def trip(self, command: str, backend: str, reason: str) -> None: ...

    async def clear(self, command: str | None = None, backend: str | None = None) -> int: ...


@dataclass
class _Window:
    events: deque[tuple[float, bool]]

    def add(self, now: float, bad: bool, window: float) -> tuple[int, int]:
        self.events.append((now, bad))
        while self.events and now - self.events[0][0] > window:
            self.events.popleft()
        return len(self.events), sum(1 for _, b in self.events if b)


class RollbackMonitor:
    """Counts call outcomes and shadow results per (command, backend); trips and reads the latches."""

    def __init__(
        self, latches: LatchStore, policy: Callable[[], AutoRollbackPolicy], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._table = latches
        self._policy = policy
        self._clock = clock
        self._errors: dict[tuple[str, str], _Window] = {}
        self._shadows: dict[tuple[str, str], _Window] = {}
        self._latched: dict[tuple[str, str], str] = {}
        self._unsaved: dict[tuple[str, str], str] = {}  # tripped here, not yet in the table
        self._refreshed_at = float("-inf")
        self._tasks: set[asyncio.Task[None]] = set()

    def latched(self, command: str, backend: str) -> str | None:
        return self._latched.get((command, backend))

    @property
    def latches(self) -> dict[tuple[str, str], str]:
        return dict(self._latched)

    async def refresh(self, force: bool = False) -> None:
        """Re-read the latches (set or cleared by another process or the CLI) every few seconds."""
        now = self._clock()
        if not force and now - self._refreshed_at < REFRESH_SECONDS:
            return
        self._refreshed_at = now
        try:
            self._latched = {**await self._table.all(), **self._unsaved}
        except Exception as exc:  # the router must keep routing on what it knew
            log.warning("could not refresh auto-rollback latches; keeping the last known error=%s", exc)

    def record_call(self, command: str, backend: str, ok: bool) -> None:
        policy = self._policy()
        total, bad = self._window(self._errors, command, backend).add(self._clock(), not ok, policy.window_seconds)
        if total >= policy.min_volume and bad / total > policy.error_rate:
            self._trip(command, backend, f"error rate {bad}/{total} over {policy.window_seconds}s")

    def record_shadow(self, command: str, backend: str, result: str) -> None:
        if result == "stale":
            return  # an old snapshot is expected between rebuilds; it says nothing about correctness
        policy = self._policy()
        total, bad = self._window(self._shadows, command, backend).add(
            self._clock(), result == "mismatch", policy.window_seconds
        )
        if total >= policy.min_volume and bad / total > policy.mismatch_rate:
            self._trip(command, backend, f"shadow mismatch rate {bad}/{total} over {policy.window_seconds}s")

    async def clear(self, command: str | None = None, backend: str | None = None) -> int:
        cleared = await self._table.clear(command, backend)
        for key in [k for k in self._latched if command in (None, k[0]) and backend in (None, k[1])]:
            del self._latched[key]
            self._unsaved.pop(key, None)
            self._errors.pop(key, None)
            self._shadows.pop(key, None)
        await self.refresh(force=True)
        log.warning("auto-rollback cleared command=%s backend=%s latches=%s", command, backend, cleared)
        return cleared

    def _window(self, table: dict[tuple[str, str], _Window], command: str, backend: str) -> _Window:
        return table.setdefault((command, backend), _Window(deque()))

    def _trip(self, command: str, backend: str, reason: str) -> None:
        if (command, backend) in self._latched:
            return
        self._latched[(command, backend)] = self._unsaved[(command, backend)] = reason
        log.error("auto-rollback tripped command=%s backend=%s reason=%s", command, backend, reason)
        task = asyncio.get_running_loop().create_task(self._persist(command, backend, reason))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _persist(self, command: str, backend: str, reason: str) -> None:
        try:
            await self._table.trip(command, backend, reason)
            self._unsaved.pop((command, backend), None)
        except Exception as exc:
            log.error("auto-rollback latch not saved; held in this process only error=%s", exc)
