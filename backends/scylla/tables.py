"""Table names in the configured keyspace, and the fixed partitioning rules of the Scylla schema."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

# Fixed for the life of a keyspace: changing it would move every profile to another partition.
SCORE_SHARDS = 16
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def score_shard(profile_id: UUID) -> int:
    return profile_id.int % SCORE_SHARDS


def to_micros(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(microseconds=1)


def from_micros(micros: int) -> datetime:
    return EPOCH + timedelta(microseconds=micros)


# The change log is partitioned by windows of this many seconds: a reader reads one or two of them.
CHANGE_SLOT_SECONDS = 600


# The profile id of the row that closes a logged batch of changes.
CLOSED = UUID(int=0)


def change_slot(moment: datetime) -> int:
    return int(moment.timestamp()) // CHANGE_SLOT_SECONDS


@dataclass(frozen=True)
class Tables:
    keyspace: str

    def _t(self, name: str) -> str:
        return f"{self.keyspace}.{name}"

    @property
    def communities(self) -> str:
        return self._t("communities")

    @property
    def community_versions(self) -> str:
        return self._t("community_versions")

    @property
    def scores(self) -> str:
        return self._t("scores_by_profile")

    @property
    def profiles_by_user(self) -> str:
        return self._t("profiles_by_user")

    @property
    def history(self) -> str:
        return self._t("score_history")

    @property
    def eligibility(self) -> str:
        return self._t("eligibility")

    @property
    def pointer(self) -> str:
        return self._t("board_pointer")

    @property
    def versions(self) -> str:
        return self._t("board_versions")

    @property
    def by_rank(self) -> str:
        return self._t("board_by_rank")

    @property
    def by_profile(self) -> str:
        return self._t("board_by_profile")

    @property
    def fences(self) -> str:
        return self._t("board_fences")

    @property
    def changes(self) -> str:
        return self._t("score_changes")

    @property
    def backfill(self) -> str:
        return self._t("backfill_state")

    @property
    def badge_board(self) -> str:
        return self._t("badge_board")

    @property
    def badge_histogram(self) -> str:
        return self._t("badge_histogram")

    @property
    def badge_facts(self) -> str:
        return self._t("badge_facts")

    @property
    def naib_council(self) -> str:
        return self._t("naib_council")
