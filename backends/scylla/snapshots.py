"""Versioned leaderboard snapshots: built from the scores, written in full, then swapped in by a pointer.

A rebuild claims a new version, writes every row of it, marks it live and flips the pointer; readers
pin the pointer once per request, so they see the old snapshot or the new one, never a mix. Versions
older than the previous one are deleted afterwards (the previous one stays for readers still on it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from backends.protocol import Board
from backends.scylla.session import CqlSession
from backends.scylla.tables import SCORE_SHARDS, Tables

log = logging.getLogger(__name__)

RANK_WIDTH = 1000  # ranks per by-rank partition: a page is one bounded partition read
PROFILE_BUCKETS = 64  # by-profile partitions per version
BATCH_ROWS = 100  # rows per single-partition batch
WRITE_CONCURRENCY = 32


@dataclass(frozen=True)
class SnapshotVersion:
    version: int
    ranked: int
    built_at: datetime
    score_version: int
    rank_width: int
    profile_buckets: int

    def profile_bucket(self, profile_id: UUID) -> int:
        return profile_id.int % self.profile_buckets

    def rank_buckets(self, first: int, last: int) -> Iterator[tuple[int, int, int]]:
        """(bucket, first rank, last rank) for each partition the rank range touches."""
        for bucket in range((first - 1) // self.rank_width, (last - 1) // self.rank_width + 1):
            lo = max(first, bucket * self.rank_width + 1)
            hi = min(last, (bucket + 1) * self.rank_width)
            yield bucket, lo, hi


async def current_version(cql: CqlSession, t: Tables, community_id: int, board: Board) -> SnapshotVersion | None:
    pointer = await cql.execute(
        f"SELECT version FROM {t.pointer} WHERE community_id = ? AND board = ?", (community_id, board)
    )
    if not pointer or pointer[0].version is None:
        return None
    return await _version_row(cql, t, community_id, board, pointer[0].version)


async def _version_row(cql: CqlSession, t: Tables, community_id: int, board: Board, version: int) -> SnapshotVersion:
    rows = await cql.execute(
        f"SELECT version, ranked, built_at, score_version, rank_width, profile_buckets FROM {t.versions}"
        f" WHERE community_id = ? AND board = ? AND version = ?",
        (community_id, board, version),
    )
    r = rows[0]
    return SnapshotVersion(
        r.version, r.ranked, r.built_at.replace(tzinfo=UTC), r.score_version, r.rank_width, r.profile_buckets
    )


@dataclass(frozen=True)
class _Row:
    profile_id: UUID
    score: Decimal
    joined_at_us: int
    nym: str | None
    wallet_address: str | None


class SnapshotWriter:
    def __init__(self, cql: CqlSession, t: Tables) -> None:
        self.cql = cql
        self.t = t

    async def rebuild(self, community_id: int, board: Board) -> int:
        """Build and swap in a new snapshot of the board; return the number of ranked entries."""
        started = time.monotonic()
        # The version is read before the scores, so a snapshot never claims to be newer than its data.
        score_version = await self._score_version(community_id)
        ranked = sorted(
            (row for row in await self._scores(community_id, board) if row.score > 0),
            key=lambda r: (-r.score, r.joined_at_us, r.profile_id.int),
        )
        version = await self._claim(community_id, board, score_version, len(ranked))
        await self._write_rows(community_id, board, version, ranked)
        await self.cql.execute(
            f"UPDATE {self.t.versions} SET state = 'live', built_at = ? WHERE community_id = ? AND board = ?"
            f" AND version = ?",
            (datetime.now(UTC), community_id, board, version),
        )
        await self._flip(community_id, board, version)
        await self._retire(community_id, board, version)
        log.info(
            "snapshot built guild=%s board=%s version=%s ranked=%s seconds=%.2f",
            community_id,
            board,
            version,
            len(ranked),
            time.monotonic() - started,
        )
        return len(ranked)

    async def _score_version(self, community_id: int) -> int:
        rows = await self.cql.execute(
            f"SELECT score_version FROM {self.t.community_versions} WHERE community_id = ?", (community_id,)
        )
        return rows[0].score_version if rows else 0

    async def _scores(self, community_id: int, board: Board) -> list[_Row]:
        query = (
            f"SELECT profile_id, {board} AS score, joined_at_us, nym, wallet_address FROM {self.t.scores}"
            f" WHERE community_id = ? AND shard = ?"
        )
        shards = await asyncio.gather(*(self.cql.execute(query, (community_id, s)) for s in range(SCORE_SHARDS)))
        return [
            _Row(r.profile_id, r.score, r.joined_at_us, r.nym, r.wallet_address)
            for rows in shards
            for r in rows
            if r.score is not None
        ]

    async def _claim(self, community_id: int, board: Board, score_version: int, ranked: int) -> int:
        """A version number no other rebuild uses (a lightweight transaction decides races)."""
        rows = await self.cql.execute(
            f"SELECT version FROM {self.t.versions} WHERE community_id = ? AND board = ? ORDER BY version DESC LIMIT 1",
            (community_id, board),
        )
        version = rows[0].version + 1 if rows else 1
        while True:
            claimed = await self.cql.execute(
                f"INSERT INTO {self.t.versions} (community_id, board, version, state, ranked, score_version,"
                f" rank_width, profile_buckets) VALUES (?, ?, ?, 'building', ?, ?, ?, ?) IF NOT EXISTS",
                (community_id, board, version, ranked, score_version, RANK_WIDTH, PROFILE_BUCKETS),
            )
            if claimed[0].applied:
                return version
            version += 1

    async def _write_rows(self, community_id: int, board: Board, version: int, ranked: list[_Row]) -> None:
        by_rank = (
            f"INSERT INTO {self.t.by_rank} (community_id, board, version, bucket, rank, profile_id, score, nym,"
            f" wallet_address) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
        by_profile = (
            f"INSERT INTO {self.t.by_profile} (community_id, board, version, bucket, profile_id, rank, score, nym,"
            f" wallet_address) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
        rank_parts: dict[int, list[tuple[str, tuple[Any, ...]]]] = {}
        profile_parts: dict[int, list[tuple[str, tuple[Any, ...]]]] = {}
        for index, row in enumerate(ranked):
            rank = index + 1
            bucket = index // RANK_WIDTH
            rank_parts.setdefault(bucket, []).append(
                (
                    by_rank,
                    (
                        community_id,
                        board,
                        version,
                        bucket,
                        rank,
                        row.profile_id,
                        row.score,
                        row.nym,
                        row.wallet_address,
                    ),
                )
            )
            pbucket = row.profile_id.int % PROFILE_BUCKETS
            profile_parts.setdefault(pbucket, []).append(
                (
                    by_profile,
                    (
                        community_id,
                        board,
                        version,
                        pbucket,
                        row.profile_id,
                        rank,
                        row.score,
                        row.nym,
                        row.wallet_address,
                    ),
                )
            )
        await self.cql.execute_concurrently(self._batches(rank_parts, profile_parts), WRITE_CONCURRENCY)

    def _batches(self, *partitions: dict[int, list[tuple[str, tuple[Any, ...]]]]) -> Iterator[tuple[Any, tuple[()]]]:
        for parts in partitions:
            for statements in parts.values():
                for start in range(0, len(statements), BATCH_ROWS):
                    yield self.cql.batch(statements[start : start + BATCH_ROWS]), ()

    async def _flip(self, community_id: int, board: Board, version: int) -> None:
        """Point readers at `version`, unless a newer rebuild already did (the pointer never goes back)."""
        created = await self.cql.execute(
            f"INSERT INTO {self.t.pointer} (community_id, board, version) VALUES (?, ?, ?) IF NOT EXISTS",
            (community_id, board, version),
        )
        if not created[0].applied:
            await self.cql.execute(
                f"UPDATE {self.t.pointer} SET version = ? WHERE community_id = ? AND board = ? IF version < ?",
                (version, community_id, board, version),
            )

    async def _retire(self, community_id: int, board: Board, live: int) -> None:
        """Delete every version older than the one before `live`, and abandoned builds."""
        rows = await self.cql.execute(
            f"SELECT version, ranked, rank_width, profile_buckets FROM {self.t.versions}"
            f" WHERE community_id = ? AND board = ? AND version < ?",
            (community_id, board, live - 1),
        )
        for old in rows:
            buckets = range(-(-(old.ranked or 0) // old.rank_width))
            deletes: list[tuple[str, tuple[Any, ...]]] = [
                (
                    f"DELETE FROM {self.t.by_rank} WHERE community_id = ? AND board = ? AND version = ? AND bucket = ?",
                    (community_id, board, old.version, b),
                )
                for b in buckets
            ]
            deletes += [
                (
                    f"DELETE FROM {self.t.by_profile} WHERE community_id = ? AND board = ? AND version = ?"
                    f" AND bucket = ?",
                    (community_id, board, old.version, b),
                )
                for b in range(old.profile_buckets)
            ]
            await self.cql.execute_concurrently(deletes, WRITE_CONCURRENCY)
            await self.cql.execute(
                f"DELETE FROM {self.t.versions} WHERE community_id = ? AND board = ? AND version = ?",
                (community_id, board, old.version),
            )
