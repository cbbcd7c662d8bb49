"""Per-route rate limits as Discord announces them (discord-api-docs `developers/topics/rate-limits.mdx`).

A bucket counts requests per major parameter (guild_id, channel_id or webhook_id) in fixed windows. Every
response of a limited route carries the X-RateLimit-* headers; over the limit the answer is a 429 with
`retry_after` (and the `Retry-After` header, whole seconds rounded up). Wall-clock time throughout, because
`X-RateLimit-Reset` is an epoch time and nextcord sleeps until it.
"""

from __future__ import annotations

import hashlib
import math
import time
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

    def too_many(self) -> dict[str, Any]:
        return {"message": "You are being rate limited.", "retry_after": self.retry_after, "global": False}


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
