"""Periodic snapshot rebuilds: each copy rebuilds the boards of the communities whose scores changed."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from backends.copies import Replica
from backends.protocol import BackendError

log = logging.getLogger(__name__)


class SnapshotRebuilds:
    def __init__(self, replicas: Mapping[str, Replica], interval_seconds: float) -> None:
        self.replicas = dict(replicas)
        self.interval = interval_seconds

    async def run_once(self, community_ids: list[int] | None = None, *, force: bool = False) -> int:
        """Rebuild every stale board (or every board with `force`); return how many were rebuilt."""
        rebuilt = 0
        for replica in self.replicas.values():
            for community_id in community_ids if community_ids is not None else await replica.communities():
                rebuilt += await replica.rebuild(community_id, force=force)
        return rebuilt

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.interval)
                return
            except TimeoutError:
                pass
            try:
                rebuilt = await self.run_once()
                if rebuilt:
                    log.info("periodic rebuild boards=%s", rebuilt)
            except BackendError as exc:
                log.warning("periodic rebuild failed; next try in %.0fs error=%s", self.interval, exc)
