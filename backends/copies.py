"""The copy pipeline's two Protocols: what the source of truth exports, and what a copy accepts.

A store that serves reads from a copy of the source of truth (a `Backend` with a `replica`) is kept in
step by `bot.replication` through these methods only, so the pipeline never writes SQL or CQL itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol, runtime_checkable
from uuid import UUID

from backends.protocol import Backend, BadgeFacts, Community, Council, MemberState, ScoreEvent

BackfillPhase = Literal["running", "complete"]


@dataclass(frozen=True)
class BackfillState:
    """How far a backfill of one community into one copy got. `score_version` is the source's version when
    the pass began: the copy holds everything up to it once complete (later changes come through the
    outbox), and a resumed pass is only valid while nothing outside the outbox changed since."""

    community_id: int
    state: BackfillPhase
    after_profile: UUID | None
    rows_copied: int
    score_version: int


class SourceView(Protocol):
    """Reads of the source of truth that all see one moment: each state is the state at `score_version`."""

    async def score_version(self, community_id: int) -> int | None: ...

    async def copy_floor(self, community_id: int) -> int:
        """The score version from which a copy must hold everything to be current: raised by every write
        that did not go through the outbox (imports, member removal, settings changes)."""

    async def member_states(self, community_id: int, profile_ids: Sequence[UUID]) -> list[MemberState]: ...

    async def member_states_after(self, community_id: int, after: UUID | None, limit: int) -> list[MemberState]:
        """The next `limit` members in profile id order: a resumable walk over a community."""

    async def badge_histogram(self, community_id: int) -> dict[int, int]:
        """How many members hold each count of badges (1..12; counts nobody holds are left out)."""

    async def badge_facts(self, community_id: int) -> BadgeFacts: ...

    async def council_version(self, community_id: int) -> int:
        """The score version of the last change that moved the naib seats (0: none ever did)."""

    async def council(self, community_id: int) -> Council:
        """The naib council, its first FORMER_KEPT former members with it."""


@dataclass(frozen=True)
class BadgeMove:
    """A write changed the member's badge count; before it they held `held_before`."""

    community_id: int
    profile_id: UUID
    held_before: int


class OutboxBatch(SourceView, Protocol):
    """Claimed outbox events (oldest first), with the view they were claimed in.

    The events leave the outbox when the batch's context exits without an error, and only then.
    """

    events: Sequence[tuple[int, ScoreEvent]]
    badge_moves: Sequence[BadgeMove]


@dataclass(frozen=True)
class FloorMove:
    """A write that reached the source of truth but not the copies' outbox: the copy floor moved from
    `before` to `after` (the write's score version). A copy that held everything from `before` on, and
    has now been given this change, may acknowledge `after`."""

    before: int
    after: int


@runtime_checkable
class CopySource(Protocol):
    """The source of truth, as the copy pipeline reads it."""

    def consistent_view(self) -> AbstractAsyncContextManager[SourceView]: ...

    def outbox_batch(self, limit: int) -> AbstractAsyncContextManager[OutboxBatch]:
        """The oldest pending events, locked for this batch (other relays skip them)."""

    async def pending(self, community_id: int | None = None) -> int:
        """Events still waiting in the outbox, in one community or in all."""

    async def oldest_pending(self, community_id: int) -> datetime | None: ...

    async def community(self, community_id: int) -> Community | None: ...

    async def community_ids(self) -> list[int]: ...

    async def count_members(self, community_id: int) -> int: ...

    async def score_version(self, community_id: int) -> int | None: ...

    async def copy_floor(self, community_id: int) -> int: ...


@runtime_checkable
class Replica(Protocol):
    """What a copy accepts. States are stamped with their score version, so replays in any order and
    retries leave the newest state."""

    async def put_community(self, community: Community) -> None: ...

    async def put_states(self, community_id: int, states: Sequence[MemberState], version: int) -> None: ...

    async def put_history(self, community_id: int, events: Sequence[ScoreEvent]) -> None: ...

    async def put_changes(self, community_id: int, states: Sequence[MemberState], version: int) -> None:
        """The states of one copied write (after `put_states` stored them), shown whole by readers before
        the next rebuild has them; a copy that answers from its rebuilt boards alone may ignore them."""

    async def forget_members(self, community_id: int, older_than: int) -> None:
        """Drop every member state stored at a version below `older_than`: a fresh backfill pass rewrites
        each member that still exists at `older_than` or later, so what is left of the old copy (members
        removed from the source meanwhile) goes."""

    async def remove_member(self, community_id: int, discord_user_id: int, version: int) -> UUID | None:
        """Remove a member deleted from the source at `version`; return their profile id if the copy had them."""

    async def put_badge_counts(
        self,
        community_id: int,
        histogram: dict[int, int],
        facts: BadgeFacts,
        version: int,
        cleared: Sequence[tuple[MemberState, int]] = (),
    ) -> None:
        """The community's badge histogram (members per count of badges held), member count and launch at
        `version`, from the same view as the states stored with it. A member's own count travels in their
        state (`MemberState.badges`, listed on the board by `put_states`); `cleared` names the board places
        (member, count) members held before this write, which they hold no more."""

    async def put_council(self, community_id: int, council: Council, version: int) -> None:
        """The whole naib council as the source held it at score version `version` (a newer one stays)."""

    async def put_score_version(self, community_id: int, version: int) -> None: ...

    async def score_version(self, community_id: int) -> int | None:
        """The newest score version this copy holds for the community."""

    async def communities(self) -> list[int]: ...

    async def backfill_state(self, community_id: int) -> BackfillState | None: ...

    async def put_backfill_state(self, state: BackfillState) -> None: ...

    async def rebuild(self, community_id: int, *, force: bool = False) -> int:
        """Rebuild what the boards are read from where it is older than the copy's scores (every board with
        `force`); return how many boards were rebuilt."""


@runtime_checkable
class CopyBackend(Backend, Protocol):
    """A backend that serves reads from a copy."""

    @property
    def replica(self) -> Replica: ...


def replica_of(backend: Backend) -> Replica | None:
    """The backend's copy interface, or None for the source of truth itself."""
    return backend.replica if isinstance(backend, CopyBackend) else None
