"""Rate limits as Discord announces them (discord-api-docs `developers/topics/rate-limits.mdx`).

Per route: a bucket counts requests per major parameter (guild_id, channel_id or webhook_id) in fixed
windows. Every response of a limited route carries the X-RateLimit-* headers; over the limit the answer is a
429 with `retry_after` (and the `Retry-After` header, whole seconds rounded up). Wall-clock time throughout,
because `X-RateLimit-Reset` is an epoch time and nextcord sleeps until it.

Global: 50 requests per second per bot token across all routes (interaction routes excepted), read
literally: no 1-second span may hold more than 50 accepted requests (a sliding window), since Discord does
not say where its seconds start. Over it: 429 `{"global": true}` with `X-RateLimit-Global: true` and
`X-RateLimit-Scope: global`, no bucket headers.

Invalid requests: every 401, 403 and 429 (but a 429 of scope `shared`) counts; past 10,000 in 10 minutes
Cloudflare bans the client for a while (about an hour) and answers every request with a plain-text 429.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

# Clients sleep until the announced reset; a request this close to it is the clock's rounding, not a retry
# that ignored the 429.
GRACE = 0.01


def _ceil_ms(seconds: float) -> float:
    return math.ceil(seconds * 1000) / 1000


@dataclass
class _Window:
    ends: float = 0.0
    used: int = 0
    blocked_until: float = 0.0  # the reset announced by this window's last 429


@dataclass
class Verdict:
    headers: dict[str, str]
    retry_after: float | None = None  # set: answer 429
    early_by: float | None = None  # set: the client came back this long before a 429's retry_after
    is_global: bool = False

    def too_many(self, **extra: Any) -> dict[str, Any]:
        body = {"message": "You are being rate limited.", "retry_after": self.retry_after, "global": self.is_global}
        return body | extra


@dataclass
class RouteLimit:
    """One bucket (a route, or routes sharing a limit); its windows are kept per major parameter."""

    route: str
    _windows: dict[int, _Window] = field(default_factory=dict)

    @property
    def bucket(self) -> str:
        # the same opaque id for every major parameter: Discord's bucket excludes the top-level resource
        return hashlib.sha256(self.route.encode()).hexdigest()[:32]

    def take(self, major: int, limit: int, period: float, now: float | None = None) -> Verdict:
        now = time.time() if now is None else now
        window = self._windows.setdefault(major, _Window())
        early_by = window.blocked_until - now if now < window.blocked_until - GRACE else None
        if now >= window.ends:
            window.ends, window.used = now + period, 0
        # both rounded up to Discord's millisecond precision, so a client sleeping until either is not early
        reset_after = _ceil_ms(window.ends - now)
        limited = window.used >= limit
        if not limited:
            window.used += 1
        headers = {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": str(max(0, limit - window.used)),
            "X-RateLimit-Reset": f"{_ceil_ms(window.ends):.3f}",
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Bucket": self.bucket,
            # Discord's responses come through Google's front end; nextcord takes a 429 without `Via`
            # for a Cloudflare ban and raises instead of retrying (http.py _handle_http_response_errors)
            "Via": "1.1 google",
        }
        if not limited:
            return Verdict(headers, early_by=early_by)
        window.blocked_until = window.ends
        headers |= {"Retry-After": str(math.ceil(reset_after)), "X-RateLimit-Scope": "user"}
        return Verdict(headers, retry_after=reset_after, early_by=early_by)


@dataclass
class GlobalLimit:
    """The bot-wide limit, kept per Authorization header: at most `limit` accepted requests in any `period`.

    A request is an early retry when it repeats (same method and path) one answered with the global 429
    before that 429's retry_after has passed; other requests in flight at the time are not told apart
    from new ones, so only repeats count.
    """

    limit: int = 50
    period: float = 1.0
    _accepted: dict[str, deque[float]] = field(default_factory=dict)
    _blocked_until: dict[str, float] = field(default_factory=dict)
    _refused: dict[str, set[tuple[str, str]]] = field(default_factory=dict)  # requests 429'd in the block

    def take(self, key: str, request: tuple[str, str], now: float | None = None) -> Verdict | None:
        """None: accepted (no headers to add); else the 429's verdict. `early_by` may be set either way."""
        now = time.time() if now is None else now
        until = self._blocked_until.get(key, 0.0)
        refused = self._refused.setdefault(key, set())
        if now >= until:
            refused.clear()
        early_by = until - now if now < until - GRACE and request in refused else None
        accepted = self._accepted.setdefault(key, deque())
        while accepted and accepted[0] <= now - self.period:
            accepted.popleft()
        if len(accepted) < self.limit:
            accepted.append(now)
            return Verdict({}, early_by=early_by) if early_by is not None else None
        retry_after = max(_ceil_ms(accepted[0] + self.period - now), 0.001)
        self._blocked_until[key] = max(until, now + retry_after)
        refused.add(request)
        headers = {
            "X-RateLimit-Global": "true",
            "X-RateLimit-Scope": "global",
            "Retry-After": str(math.ceil(retry_after)),
            "Via": "1.1 google",
        }
        return Verdict(headers, retry_after=retry_after, early_by=early_by, is_global=True)


@dataclass
class InvalidRequests:
    """401, 403 and non-shared 429 answers in a sliding `window`; past `limit` of them, a ban."""

    limit: int = 10_000
    window: float = 600.0
    ban_duration: float = 3600.0
    banned_until: float = 0.0
    bans: int = 0
    _times: deque[float] = field(default_factory=deque)

    @staticmethod
    def counts(status: int, scope: str | None) -> bool:
        return status in (401, 403) or (status == 429 and scope != "shared")

    def count(self, now: float | None = None) -> int:
        now = time.monotonic() if now is None else now
        while self._times and self._times[0] <= now - self.window:
            self._times.popleft()
        return len(self._times)

    def record(self, now: float | None = None) -> bool:
        """Count one invalid request; True when it starts a ban."""
        now = time.monotonic() if now is None else now
        self._times.append(now)
        if self.count(now) > self.limit and not self.banned(now):
            self.banned_until = now + self.ban_duration
            self.bans += 1
            return True
        return False

    def banned(self, now: float | None = None) -> bool:
        return (time.monotonic() if now is None else now) < self.banned_until

    def remaining(self, now: float | None = None) -> float:
        return max(0.0, self.banned_until - (time.monotonic() if now is None else now))
