"""The memory copy's tables and board snapshots, written through `backends.copies.Replica`.

Rows from the source of truth carry the score version they were read at and replace each other as the
Scylla copy's `USING TIMESTAMP <version>` writes do: the higher version wins, an equal one wins too,
except over a deletion (at equal timestamps Cassandra lets the tombstone win). No method awaits, so
each one is atomic for the readers on the event loop.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from types import MappingProxyType
from uuid import UUID

from backends.copies import BackfillState
from backends.protocol import (
    BOARDS,
    BadgeEntry,
    BadgeFacts,
    Board,
    Community,
    Council,
    InvalidInput,
    MemberState,
    RankedEntry,
    ScoreEvent,
    utcnow,
)

HISTORY_TTL_SECONDS = 90 * 24 * 3600  # the Scylla score_history table's default_time_to_live


@dataclass(frozen=True)
class Snapshot:
    """One board built at `built_at` from the copy at `score_version`; `entries[i]` holds rank i + 1.

    Never changed once built: a rebuild swaps in a new one, so a reader holding it sees one whole board.
    """

    entries: tuple[RankedEntry, ...]
    by_profile: Mapping[UUID, RankedEntry]
    built_at: datetime
    score_version: int


@dataclass(frozen=True)
class _Stamped[T]:
    """A row and the version it was written at; `value` None is a deletion (a tombstone) at that version.

    Tombstones are kept, so a replayed older write cannot bring a deleted member back.
    """

    version: int
    value: T | None

    def yields_to(self, version: int, *, deleting: bool) -> bool:
        if version != self.version:
            return version > self.version
        return deleting or self.value is not None


def _write[K, T](table: dict[K, _Stamped[T]], key: K, version: int, value: T | None) -> None:
    """Store `value` (None: delete) at `version` unless the stored row is newer."""
    stored = table.get(key)
    if stored is None or stored.yields_to(version, deleting=value is None):
        table[key] = _Stamped(version, value)


def as_utc(moment: datetime) -> datetime:
    """The moment in UTC; a naive time is taken as UTC, as the CQL driver takes a timestamp."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _stored(community_id: int, state: MemberState) -> MemberState:
    """The state as the copy gives it back: in its community's table, times in UTC."""
    p = state.profile
    if p.joined_at.tzinfo is None:
        # Scylla keeps joined_at as microseconds since the epoch and cannot place a naive time either.
        raise InvalidInput(f"joined_at of profile {p.profile_id} has no time zone")
    profile = replace(p, community_id=community_id, joined_at=p.joined_at.astimezone(UTC))
    return replace(state, profile=profile, updated_at=as_utc(state.updated_at))


def _council_in_utc(council: Council) -> Council:
    """The council as the copy gives it back: every time in UTC."""
    first = None if council.first_seated_at is None else as_utc(council.first_seated_at)
    seats = tuple(
        replace(s, seated_at=as_utc(s.seated_at), first_seated_at=as_utc(s.first_seated_at)) for s in council.seats
    )
    former = tuple(
        replace(f, first_seated_at=as_utc(f.first_seated_at), left_at=as_utc(f.left_at)) for f in council.former
    )
    return replace(council, seats=seats, former=former, first_seated_at=first)


def _score(state: MemberState, board: Board) -> Decimal:
    return state.conviction if board == "conviction" else state.activity


class MemoryReplica:
    """Implements `backends.copies.Replica` in dicts.

    `clock` (seconds, monotonic) ages score history out; `now` stamps the snapshots' build time.
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, now: Callable[[], datetime] = utcnow) -> None:
        self._clock = clock
        self._now = now
        self._communities: dict[int, Community] = {}
        self._versions: dict[int, int] = {}
        self._states: dict[int, dict[UUID, _Stamped[MemberState]]] = {}
        self._users: dict[int, dict[int, _Stamped[UUID]]] = {}
        self._history: dict[tuple[int, UUID], dict[int, tuple[float, ScoreEvent]]] = {}
        self._backfill: dict[int, BackfillState] = {}
        self._snapshots: dict[tuple[int, Board], Snapshot] = {}
        self._badge_counts: dict[int, _Stamped[tuple[dict[int, int], BadgeFacts]]] = {}
        self._councils: dict[int, _Stamped[Council]] = {}

    # --- reads of the copy (MemoryBackend's) --------------------------------------------------------

    def community(self, community_id: int) -> Community | None:
        return self._communities.get(community_id)

    def state(self, community_id: int, profile_id: UUID) -> MemberState | None:
        stamped = self._states.get(community_id, {}).get(profile_id)
        return stamped.value if stamped else None

    def profile_id_of(self, community_id: int, discord_user_id: int) -> UUID | None:
        """Who the user was last written as; the caller checks the member's state still says so."""
        stamped = self._users.get(community_id, {}).get(discord_user_id)
        return stamped.value if stamped else None

    def snapshot(self, community_id: int, board: Board) -> Snapshot | None:
        return self._snapshots.get((community_id, board))

    def badge_holders(self, community_id: int) -> list[BadgeEntry]:
        """Every member holding a badge, in badge board order (as the Scylla copy's board partition)."""
        held = [s.value for s in self._states.get(community_id, {}).values() if s.value is not None and s.value.badges]
        return [
            BadgeEntry(s.profile.profile_id, s.profile.joined_at, s.badges, s.profile.nym, s.profile.wallet_address)
            for s in sorted(held, key=lambda s: (-s.badges, s.profile.joined_at, s.profile.profile_id.int))
        ]

    def badge_counts(self, community_id: int) -> tuple[dict[int, int], BadgeFacts]:
        stamped = self._badge_counts.get(community_id)
        if stamped is None or stamped.value is None:
            return {}, BadgeFacts(0, None)
        return stamped.value

    def council(self, community_id: int) -> Council:
        stamped = self._councils.get(community_id)
        return Council() if stamped is None or stamped.value is None else stamped.value

    # --- Replica ------------------------------------------------------------------------------------

    async def put_community(self, community: Community) -> None:
        self._communities[community.community_id] = community

    async def put_states(self, community_id: int, states: Sequence[MemberState], version: int) -> None:
        stored = [_stored(community_id, s) for s in states]  # all checked before any is written
        table = self._states.setdefault(community_id, {})
        users = self._users.setdefault(community_id, {})
        for state in stored:
            p = state.profile
            _write(table, p.profile_id, version, state)
            if p.discord_user_id is not None:
                _write(users, p.discord_user_id, version, p.profile_id)

    async def put_history(self, community_id: int, events: Sequence[ScoreEvent]) -> None:
        expires = self._clock() + HISTORY_TTL_SECONDS
        for event in events:
            self._history.setdefault((community_id, event.profile_id), {})[event.event_id] = (expires, event)

    async def put_changes(self, community_id: int, states: Sequence[MemberState], version: int) -> None:
        """Answers here come from the rebuilt boards alone."""

    async def forget_members(self, community_id: int, older_than: int) -> None:
        # As a Scylla partition tombstone at older_than - 1: newer states survive, older ones go.
        states = self._states.get(community_id, {})
        for profile_id in list(states):
            _write(states, profile_id, older_than - 1, None)
        users = self._users.get(community_id, {})
        for user_id in list(users):
            _write(users, user_id, older_than - 1, None)

    async def remove_member(self, community_id: int, discord_user_id: int, version: int) -> UUID | None:
        """As the Scylla copy does: the deletion reaches whichever profile the user maps to, and a newer
        state (a later re-import) survives it; no score version is claimed."""
        profile_id = self.profile_id_of(community_id, discord_user_id)
        if profile_id is None:
            return None
        _write(self._states.setdefault(community_id, {}), profile_id, version, None)
        _write(self._users.setdefault(community_id, {}), discord_user_id, version, None)
        return profile_id

    async def put_badge_counts(
        self,
        community_id: int,
        histogram: dict[int, int],
        facts: BadgeFacts,
        version: int,
        cleared: Sequence[tuple[MemberState, int]] = (),
    ) -> None:
        """The board is read from the members' states here, so nothing is left to clear."""
        launched = None if facts.launched_at is None else as_utc(facts.launched_at)
        _write(self._badge_counts, community_id, version, (dict(histogram), BadgeFacts(facts.members, launched)))

    async def put_council(self, community_id: int, council: Council, version: int) -> None:
        _write(self._councils, community_id, version, _council_in_utc(council))

    async def put_score_version(self, community_id: int, version: int) -> None:
        self._versions[community_id] = max(version, self._versions.get(community_id, version))

    async def score_version(self, community_id: int) -> int | None:
        return self._versions.get(community_id)

    async def communities(self) -> list[int]:
        return sorted(self._communities)

    async def backfill_state(self, community_id: int) -> BackfillState | None:
        return self._backfill.get(community_id)

    async def put_backfill_state(self, state: BackfillState) -> None:
        self._backfill[state.community_id] = state

    async def rebuild(self, community_id: int, *, force: bool = False) -> int:
        latest = self._versions.get(community_id)
        rebuilt = 0
        for board in BOARDS:
            snap = self._snapshots.get((community_id, board))
            if force or snap is None or (latest is not None and snap.score_version < latest):
                self.rebuild_board(community_id, board)
                rebuilt += 1
        return rebuilt

    def rebuild_board(self, community_id: int, board: Board) -> int:
        """Build the board from the copy's states and swap it in; return the number of ranked entries."""
        if board not in BOARDS:
            raise InvalidInput(f"unknown board {board!r}")
        # The version is read before the states, so a snapshot never claims to be newer than its data
        # (kept in this order although nothing can run in between here).
        score_version = self._versions.get(community_id, 0)
        states = [s.value for s in self._states.get(community_id, {}).values() if s.value is not None]
        # copy_negate, not unary minus: minus rounds to the context's 28 digits, and scores need up to 78.
        ranked = sorted(
            (s for s in states if _score(s, board) > 0),
            key=lambda s: (_score(s, board).copy_negate(), s.profile.joined_at, s.profile.profile_id.int),
        )
        entries = tuple(
            RankedEntry(rank, s.profile.profile_id, _score(s, board), s.profile.nym, s.profile.wallet_address)
            for rank, s in enumerate(ranked, start=1)
        )
        by_profile = MappingProxyType({e.profile_id: e for e in entries})
        self._snapshots[(community_id, board)] = Snapshot(entries, by_profile, self._now(), score_version)
        return len(entries)
