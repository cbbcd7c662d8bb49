"""When a stale board is rebuilt. No answer waits for a rebuild: each reader lays the changes since a
snapshot over it (live.py). So a board whose rebuild is dear (a million members: the CQL node's cores for
a minute or two) can be rebuilt when its changes call for it, not at every round:

- a board whose last build took under CHEAP_SECONDS: at every round;
- any other: once the time since its build read the scores is 1 / share times what that build took (a
  board spends at most that share of the time being rebuilt; with a share of 1, at every round too);
- sooner when CHANGES_DUE members changed since (half of what a reader lays over a snapshot at most), or
  when the change log would stop reaching back to the snapshot before a next build could land.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from uuid import UUID

from backends.protocol import Board
from backends.scylla.live import LOG_KEEP, MARGIN, MAX_CHANGES, changed_since
from backends.scylla.session import CqlSession
from backends.scylla.snapshots import SnapshotVersion
from backends.scylla.tables import Tables

log = logging.getLogger(__name__)

CHEAP_SECONDS = 5.0
# The shipped share: every round (recalculation.max_busy_share). 0.1 was measured at 50 updates/s on a 1M
# board (bench/notes.md): readers then placed a new snapshot's changes under a saturated node, and some
# updates went unseen for minutes.
SHARE = 1.0
CHANGES_DUE = MAX_CHANGES // 2


@dataclass
class _Counted:
    """The members changed since one snapshot version, as far as the change log was read."""

    cursor: datetime
    members: set[UUID] = field(default_factory=set)
    seen: set[tuple[datetime, UUID]] = field(default_factory=set)  # batches read once, met again past cursor
    told: bool = False


class RebuildPace:
    def __init__(
        self,
        cql: CqlSession,
        t: Tables,
        *,
        cheap_seconds: float = CHEAP_SECONDS,
        share: float = SHARE,
        changes_due: int = CHANGES_DUE,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.cql = cql
        self.t = t
        self.cheap_seconds = cheap_seconds
        self.share = share
        self.changes_due = changes_due
        self.clock = clock
        self._counted: dict[tuple[int, Board], tuple[int, _Counted]] = {}

    async def due(self, community_id: int, board: Board, snap: SnapshotVersion) -> bool:
        """Whether the stale board `snap` serves is to be rebuilt now."""
        if snap.changes_from is None:  # built before changes were laid over snapshots
            return True
        took = (snap.built_at - snap.changes_from).total_seconds()
        if self.share >= 1 or took < self.cheap_seconds:  # at every round: no clock of another process asked
            return True
        age = (self.clock() - snap.changes_from).total_seconds()
        if age >= took / self.share or age + 2 * took >= (LOG_KEEP - MARGIN).total_seconds():
            return self._due(community_id, board, snap, f"{age:.0f} s since it read the scores")
        changed = await self._changed(community_id, board, snap)
        if changed >= self.changes_due:
            return self._due(community_id, board, snap, f"{changed} members changed")
        counted = self._counted[(community_id, board)][1]
        if not counted.told:
            counted.told = True
            log.info(
                "rebuild deferred: its changes are laid over the snapshot guild=%s board=%s version=%s"
                " build_seconds=%.0f changed=%s due_in_seconds=%.0f or at %s changed members",
                community_id,
                board,
                snap.version,
                took,
                changed,
                took / self.share - age,
                self.changes_due,
            )
        return False

    def _due(self, community_id: int, board: Board, snap: SnapshotVersion, why: str) -> bool:
        held = self._counted.get((community_id, board))
        if held is not None and held[0] == snap.version and held[1].told:  # it was deferred: say when it ends
            log.info("rebuild due guild=%s board=%s version=%s: %s", community_id, board, snap.version, why)
        return True

    async def _changed(self, community_id: int, board: Board, snap: SnapshotVersion) -> int:
        """The members changed since the snapshot read its scores (on either board: at most one more read
        of the log each round, from where the last one ended)."""
        assert snap.changes_from is not None
        held = self._counted.get((community_id, board))
        if held is None or held[0] != snap.version:
            held = self._counted[(community_id, board)] = (snap.version, _Counted(snap.changes_from - MARGIN))
        counted = held[1]
        now = self.clock()
        batches = await changed_since(self.cql, self.t, community_id, counted.cursor, now)
        for batch in batches.keys() - counted.seen:
            counted.members.update(r.profile_id for r in batches[batch] if r.score_version > snap.score_version)
        counted.cursor = now - MARGIN
        counted.seen = {batch for batch in counted.seen | batches.keys() if batch[0] >= counted.cursor}
        return len(counted.members)

    def forget(self, community_id: int, board: Board) -> None:
        """Drop the count of a board just rebuilt: its next snapshot counts from scratch."""
        self._counted.pop((community_id, board), None)
