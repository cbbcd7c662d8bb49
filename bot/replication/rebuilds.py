"""Rebuilds Scylla snapshots of the communities whose scores changed since their last snapshot."""

from __future__ import annotations

import asyncio
import logging

from backends.protocol import BOARDS, BackendError, TenantContext
from backends.scylla.backend import ScyllaBackend
from backends.scylla.snapshots import current_version

log = logging.getLogger(__name__)


class Recalculator:
    def __init__(self, scylla: ScyllaBackend, interval_seconds: float) -> None:
        self.scylla = scylla
        self.interval = interval_seconds

    async def run_once(self, community_ids: list[int] | None = None, *, force: bool = False) -> int:
        """Rebuild every stale board (or every board with `force`); return how many were rebuilt."""
        rebuilt = 0
        replica = self.scylla.replica
        for community_id in community_ids if community_ids is not None else await replica.communities():
            latest = await replica.score_version(community_id)
            for board in BOARDS:
                snap = await current_version(self.scylla.cql, self.scylla.t, community_id, board)
                if force or snap is None or (latest is not None and snap.score_version < latest):
                    await self.scylla.recalculate(TenantContext(community_id), board)
                    rebuilt += 1
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
                    log.info("periodic recalculation rebuilt boards=%s", rebuilt)
            except BackendError as exc:
                log.warning("periodic recalculation failed; next try in %.0fs error=%s", self.interval, exc)
