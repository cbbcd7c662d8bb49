"""The HTTP connections to Discord: a pool that shrinks back after a burst."""

from __future__ import annotations

from typing import Any

import aiohttp


class RecentFirstConnector(aiohttp.TCPConnector):
    """Hands out the connection released last.

    aiohttp's pool is first in, first out: under steady traffic every connection a burst opened is used
    again before its keep-alive runs out, so the pool stays at its largest burst for good. Taking the most
    recent one keeps steady traffic on the fewest connections; the ones a burst added sit idle and are
    closed after `keepalive_timeout` (15 s by default)."""

    async def _get(self, key: Any, traces: list[Any]) -> Any:
        idle = self._conns.get(key)
        if idle:
            idle.rotate(1)  # the last released first: the rest keep their order, oldest at the front
        return await super()._get(key, traces)
