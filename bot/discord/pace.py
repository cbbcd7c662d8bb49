"""Every request the bot sends to Discord counts against it: this keeps a process inside its share of
the bot's global rate limit (50 requests a second for all processes together) and counts the requests
Discord calls invalid (401, 403, 429), slowing the process's own work well before the ban Discord
imposes at 10,000 invalid requests in 10 minutes. Interaction responses are never held back: Discord
does not bind them to the global limit, and a member is waiting for them."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

import nextcord

log = logging.getLogger(__name__)

INVALID_STATUSES = (401, 403, 429)
INVALID_WINDOW_SECONDS = 600.0
UNBOUND_PREFIXES = ("/interactions/", "/webhooks/")  # interaction responses and follow-ups


class InvalidRequestObserver(Protocol):
    def invalid_request(self, status: int) -> None: ...


def share_of_global_limit(per_second: float, shard_count: int, shard_ids: list[int]) -> int:
    """This process's requests per second: the bot's limit split by the shards it runs, with a tenth
    kept aside for one-shot commands (`sietch roles sync`), and halved: nextcord counts them in windows of
    a second from its own first request, and two full windows back to back put twice as many into a
    second as Discord may count."""
    return max(1, int(per_second * 0.9 * shard_fraction(shard_count, shard_ids) / 2))


def shard_fraction(shard_count: int, shard_ids: list[int]) -> float:
    """The part of the bot this process runs: its shards of all (every shard when it names none)."""
    return (len(shard_ids) if shard_ids else shard_count) / shard_count


class RequestGuard:
    def __init__(
        self,
        observer: InvalidRequestObserver | None = None,
        *,
        slow_down_after: int = 1000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`slow_down_after`: invalid requests within 10 minutes past which this process's own work (role
        changes, DMs) waits a second before each request, until the window drains."""
        self.observer = observer
        self.slow_down_after = slow_down_after
        self._clock = clock
        self._invalid: deque[float] = deque()

    @property
    def invalid_in_window(self) -> int:
        now = self._clock()
        while self._invalid and now - self._invalid[0] > INVALID_WINDOW_SECONDS:
            self._invalid.popleft()
        return len(self._invalid)

    def install(self, client: Any, per_second: int) -> None:
        """Pace `client`'s requests at `per_second` (nextcord's own global limiter, set to this process's
        share) and watch their answers."""
        http = client.http
        # nextcord paces every authorization at `max_global_requests` a second, but its Client builds the
        # HTTP client at Discord's whole 50: set before the first request, which creates the limiter.
        if not hasattr(http, "_max_global_requests"):
            raise RuntimeError("nextcord's HTTP client no longer has _max_global_requests: pace requests anew")
        http._max_global_requests = per_second
        request = http.request

        async def guarded(route: nextcord.http.Route, **kwargs: Any) -> Any:
            unbound = route.path.startswith(UNBOUND_PREFIXES)
            if not unbound and self.invalid_in_window > self.slow_down_after:
                await asyncio.sleep(1.0)
            try:
                return await request(route, **kwargs)
            except nextcord.HTTPException as exc:
                if exc.status in INVALID_STATUSES:
                    self._invalid.append(self._clock())
                    if self.observer is not None:
                        self.observer.invalid_request(exc.status)
                    if self.invalid_in_window == self.slow_down_after + 1:
                        log.error(
                            "invalid Discord requests past %s in 10 minutes: this process slows its own work",
                            self.slow_down_after,
                        )
                raise

        http.request = guarded
