"""Periodic snapshot rebuilds: each copy rebuilds the boards of the communities whose scores changed.

With several bot processes, a community is rebuilt by whichever process takes its lease first; the others
skip it. The holder rebuilds only what is still older than the copy's scores, so a process that takes the
lease after another's rebuild finds nothing to do: each change is built once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Protocol

from backends.copies import Replica
from backends.protocol import BackendError
from bot.rounds import Rounds, RoundWatch, run_rounds

log = logging.getLogger(__name__)


def lease_name(copy: str, community_id: int) -> str:
    """The lease of one community's boards on one copy."""
    return f"snapshot-rebuild:{copy}:{community_id}"


class Leases(Protocol):
    """Work one bot process at a time may do; a holder that dies frees its lease with it."""

    def hold(self, name: str) -> AbstractAsyncContextManager[bool]:
        """True inside while this process holds `name`; False when another process does."""
        ...


class Unshared:
    """Every lease at once: for a caller with nobody to share the work with (`sietch recalc`)."""

    @asynccontextmanager
    async def hold(self, name: str) -> AsyncIterator[bool]:
        yield True


class SnapshotRebuilds:
    def __init__(
        self,
        replicas: Mapping[str, Replica],
        interval_seconds: float,
        leases: Leases | None = None,
        rebuilt: Callable[[int], None] | None = None,
    ) -> None:
        """`rebuilt(guild)` is told of each community with a new snapshot (the role sync follows them)."""
        self.replicas = dict(replicas)
        self.interval = interval_seconds
        self.leases: Leases = leases or Unshared()
        self.rebuilt = rebuilt

    async def run_once(self, community_ids: list[int] | None = None, *, force: bool = False) -> int:
        """Rebuild every stale board (or every board with `force`) whose lease this process gets; return
        how many were rebuilt."""
        rebuilt = 0
        leases = self.leases
        for name, replica in self.replicas.items():
            for community_id in community_ids if community_ids is not None else await replica.communities():
                async with AsyncExitStack() as lease:
                    try:
                        held = await lease.enter_async_context(leases.hold(lease_name(name, community_id)))
                    except BackendError as exc:
                        # Two processes on one board only waste work (each claims a version of its own);
                        # boards left stale while the lease store is down would be worse. One wait per round.
                        log.warning("rebuild leases unavailable; this round rebuilds without them error=%s", exc)
                        leases, held = Unshared(), True
                    if held:
                        boards = await replica.rebuild(community_id, force=force)
                        rebuilt += boards
                        if boards and self.rebuilt is not None:
                            self.rebuilt(community_id)
                    else:
                        log.debug("rebuild left to the process holding its lease guild=%s copy=%s", community_id, name)
        return rebuilt

    async def run(self, stop: asyncio.Event, watch: RoundWatch | None = None) -> None:
        """A round starts `interval` after the previous one started (at once if that one took longer): a
        change waits for at most one round in progress and the next, and a big board is rebuilt back to
        back while its scores keep changing. A rebuild under way when `stop` is set is abandoned (the next
        rebuild of that board deletes what it wrote), so stopping never waits for a large board."""
        rounds = Rounds("snapshot-rebuilds", self.interval, first_at_once=False, abandon_on_stop=True)
        await run_rounds(self._round, rounds, stop, watch)

    async def _round(self) -> None:
        started = asyncio.get_running_loop().time()
        rebuilt = await self.run_once()
        if rebuilt:
            log.info("periodic rebuild boards=%s seconds=%.1f", rebuilt, asyncio.get_running_loop().time() - started)
