"""Versioned leaderboard snapshots: built from the scores, written in full, then swapped in by a pointer.

A rebuild claims a new version, writes every row of it, marks it live and flips the pointer; readers
pin the pointer once per request, so they see the old snapshot or the new one, never a mix. Versions
older than the previous one are deleted afterwards (the previous one stays for readers still on it).

A rebuild never holds the board: the scores are read a few shards at a time into an external sort
(board_sort.py), and the sorted board streams past once, written as it goes; the by-profile rows, which
are written by partition, not by rank, take a second external sort. Its files go in the temporary
directory (TMPDIR), about 370 bytes a ranked member at the most (350 MB at 1M), removed as they are read
and in any case when the rebuild ends.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from itertools import chain
from pathlib import Path
from typing import Any, NamedTuple
from uuid import UUID

from cassandra.query import UNSET_VALUE, BatchStatement, BatchType, PreparedStatement

from backends.protocol import Board, RankedEntry
from backends.scylla.board_sort import Record, SpillSort
from backends.scylla.overlay import Overlay
from backends.scylla.session import CqlSession
from backends.scylla.tables import SCORE_SHARDS, Tables

log = logging.getLogger(__name__)

RANK_WIDTH = 1000  # ranks per by-rank partition: a page is one bounded partition read
# Members per by-profile partition: the number of partitions grows with the board, so a member's row is
# found in a partition of the same size at 10k and at 1M.
PROFILE_ROWS = 1000
# Rows per single-partition batch (a whole by-rank partition): the driver's cost per request is a large
# part of a rebuild's CPU (100-row batches: ~3.4 s for the writes of 188k members, 1000-row: ~2.6 s),
# and Cassandra and ScyllaDB exempt single-partition batches from their batch size limits.
BATCH_ROWS = 1000
# A superseded version stays this long for readers still on it: bot processes reuse the pointer for a
# second, and two rebuilds in a row (an import, then `sietch recalc`) must not delete what they read.
KEEP_SUPERSEDED_SECONDS = 60.0
# Ranks every reader keeps with the version it pins (refreshed with the pointer, once a second): the entry
# position and the waiting pool (F and F + 1 .. waitlist_end + 1) and a first page of up to 100 fall in it
# for any community that keeps the bounds of docs/domain.md.
HEAD_RANKS = 200
# Per request of a rebuild (a page of scores, a batch of rows): a rebuild is background work of minutes
# that a timeout throws away whole, so it waits out a busy node longer than a member's command would.
BULK_TIMEOUT_SECONDS = 10.0
WRITE_CONCURRENCY = 8  # as fast as 16 with 1000-row batches, and half the rows waiting on the request timeout
# Every FENCE_RANKS-th key is kept in the version's fences: a changed member's place in the snapshot is
# found in memory to within this many rows, then read (31k fences for 1M members, loaded once a version).
FENCE_RANKS = 32
# Shards of the scores read at once, and rows per page of each: what a rebuild holds of the scores it reads
# (two pages a shard: the one handled and the next one on its way), at any community size.
READ_CONCURRENCY = 4
READ_PAGE_ROWS = 2000


@dataclass(frozen=True)
class SnapshotVersion:
    version: int
    ranked: int
    built_at: datetime
    score_version: int
    rank_width: int
    profile_buckets: int
    # The first ranks of the board, read with the version: thresholds, waiting pools, first pages and
    # every position's entry score are answered from them without another read.
    head: tuple[RankedEntry, ...] = ()
    # When the rebuild read the scores, and its fence step: None for versions built before changes were
    # laid over snapshots.
    changes_from: datetime | None = None
    fence_ranks: int | None = None
    # The changes since `changes_from`, as a reader last read them (backends/scylla/live.py).
    overlay: Overlay | None = None

    def head_range(self, first: int, last: int) -> list[RankedEntry] | None:
        """Ranks first..last from the head, or None when the head does not hold all of them."""
        last = min(last, self.ranked)
        if last > len(self.head):
            return None
        return list(self.head[first - 1 : last])

    def profile_bucket(self, profile_id: UUID) -> int:
        return profile_id.int % self.profile_buckets

    def rank_buckets(self, first: int, last: int) -> Iterator[tuple[int, int, int]]:
        """(bucket, first rank, last rank) for each partition the rank range touches."""
        for bucket in range((first - 1) // self.rank_width, (last - 1) // self.rank_width + 1):
            lo = max(first, bucket * self.rank_width + 1)
            hi = min(last, (bucket + 1) * self.rank_width)
            yield bucket, lo, hi


async def current_version(
    cql: CqlSession, t: Tables, community_id: int, board: Board, *, with_head: bool = False
) -> SnapshotVersion | None:
    """The live version; `with_head` reads its first HEAD_RANKS ranks too (readers keep them with it)."""
    pointer = await cql.execute(
        f"SELECT version FROM {t.pointer} WHERE community_id = ? AND board = ?", (community_id, board)
    )
    if not pointer or pointer[0].version is None:
        return None
    live = await _version_row(cql, t, community_id, board, pointer[0].version)
    if not with_head:
        return live
    rows = await cql.execute(
        f"SELECT rank, profile_id, score, nym, wallet_address FROM {t.by_rank}"
        f" WHERE community_id = ? AND board = ? AND version = ? AND bucket = 0 AND rank <= ?",
        (community_id, board, live.version, min(HEAD_RANKS, live.rank_width)),
    )
    head = tuple(RankedEntry(r.rank, r.profile_id, r.score, r.nym, r.wallet_address) for r in rows)
    return replace(live, head=head)


async def _version_row(cql: CqlSession, t: Tables, community_id: int, board: Board, version: int) -> SnapshotVersion:
    rows = await cql.execute(
        f"SELECT version, ranked, built_at, score_version, rank_width, profile_buckets, changes_from, fence_ranks"
        f" FROM {t.versions} WHERE community_id = ? AND board = ? AND version = ?",
        (community_id, board, version),
    )
    r = rows[0]
    return SnapshotVersion(
        r.version,
        r.ranked,
        r.built_at.replace(tzinfo=UTC),
        r.score_version,
        r.rank_width,
        r.profile_buckets,
        changes_from=r.changes_from.replace(tzinfo=UTC) if r.changes_from is not None else None,
        fence_ranks=r.fence_ranks,
    )


class _Row(NamedTuple):  # not a frozen dataclass: one is built per member, and a tuple is 3x cheaper to build
    profile_id: UUID
    score: Decimal
    joined_at_us: int
    nym: str | None
    wallet_address: str | None


# The columns each snapshot table is written with: the partition key, then the row.
_ROW_COLUMNS = "community_id, board, version, bucket, rank, profile_id, score, nym, wallet_address, joined_at_us"
_FENCE_COLUMNS = "community_id, board, version, rank, score, joined_at_us, profile_id"
# A member's row carries the members either side of it, so a position is one read.
_PROFILE_COLUMNS = (
    "community_id, board, version, bucket, profile_id, rank, score, nym, wallet_address,"
    " above_id, above_score, above_nym, above_wallet, below_id, below_score, below_nym, below_wallet"
)

_Values = tuple[Any, ...]  # serialised bytes, or UNSET_VALUE
_NO_NEIGHBOUR: tuple[None, ...] = (None, None, None, None)  # above rank 1, below the last


class _PartitionBatches:
    """Unlogged single-partition batches of one prepared INSERT (partition key columns first), from
    serialised values.

    `BatchStatement.add` binds every value of every row, the constant partition key included, which
    was most of a rebuild's CPU. Here the key is serialised once per batch and the other values once
    per row, by the column serialisers `BoundStatement.bind` uses. None is sent unset, not null: the rows
    are new, so it reads back as None, without a tombstone per absent value for every range read to step
    over.
    """

    def __init__(self, prepared: PreparedStatement, head: tuple[int, str, int]) -> None:
        """`head`: the community_id, board and version every row of the rebuild shares; a partition key
        longer than that ends with a bucket, given per batch."""
        # Encryption is the one step of bind skipped here; no session of ours configures it.
        if prepared.column_encryption_policy is not None:
            raise ValueError("snapshot rows are serialised without the column encryption policy")
        self.query_id = prepared.query_id
        self.routing_key_indexes: list[int] = prepared.routing_key_indexes
        self.keyspace: str = prepared.column_metadata[0].keyspace_name
        self.protocol_version: int = prepared.protocol_version
        self.serializers = [column.type.serialize for column in prepared.column_metadata]
        self.head = tuple(
            serialize(v, self.protocol_version) for serialize, v in zip(self.serializers[:3], head, strict=True)
        )
        self.key_columns = len(self.routing_key_indexes)

    def row_encoder(self) -> Callable[[tuple[Any, ...]], _Values]:
        """Serialises the values after the partition key, in the prepared statement's column order."""
        proto = self.protocol_version
        serializers = self.serializers[self.key_columns :]

        def encode(values: tuple[Any, ...]) -> _Values:
            return tuple(
                UNSET_VALUE if v is None else serialize(v, proto)
                for serialize, v in zip(serializers, values, strict=True)
            )

        return encode

    def batch(self, bucket: int | None, rows: list[_Values]) -> BatchStatement:
        key = self.head if bucket is None else (*self.head, self.serializers[3](bucket, self.protocol_version))
        batch = BatchStatement(batch_type=BatchType.UNLOGGED)
        # What `add` takes from a bound statement: token-aware routing needs both to send the batch
        # straight to a replica of its partition.
        batch.keyspace = self.keyspace
        batch.routing_key = [key[i] for i in self.routing_key_indexes]
        add = batch._add_statement_and_params
        for values in rows:
            add(True, self.query_id, key + values)
        return batch


def _marks(columns: str) -> str:
    return ", ".join("?" for _ in columns.split(","))


def _side(r: _Row | None) -> tuple[Any, ...]:
    return (r.profile_id, r.score, r.nym, r.wallet_address) if r is not None else _NO_NEIGHBOUR


def _rank_pass(
    by_rank: _PartitionBatches,
    fences: _PartitionBatches,
    by_profile: _PartitionBatches,
    board: Iterator[Record],
    buckets: int,
    profiles: SpillSort,
) -> Iterator[tuple[BatchStatement, tuple[()]]]:
    """The by-rank batches (one per (part of a) rank partition) and the fences (the key of every
    FENCE_RANKS-th rank, in one partition), generated as the board streams past in rank order. Each
    member's by-profile row goes to `profiles` once the member below it is known: only three members wait.
    """
    encode_rank, encode_fence, encode_profile = by_rank.row_encoder(), fences.row_encoder(), by_profile.row_encoder()
    rank_rows: list[_Values] = []
    fence_rows: list[_Values] = []
    above: _Row | None = None
    held: _Row | None = None  # the member at `rank - 1`, waiting for the one below it

    def to_profiles(rank: int, r: _Row, below: _Row | None) -> None:
        values = encode_profile((r.profile_id, rank, r.score, r.nym, r.wallet_address, *_side(above), *_side(below)))
        # Unset is a driver singleton a pickle would copy; no serialised value is None.
        profiles.add((r.profile_id.int % buckets, rank, *(None if v is UNSET_VALUE else v for v in values)))

    rank = 0
    for neg_score, joined_at_us, profile_int, nym, wallet_address in board:
        rank += 1
        r = _Row(UUID(int=profile_int), neg_score.copy_negate(), joined_at_us, nym, wallet_address)
        rank_rows.append(encode_rank((rank, r.profile_id, r.score, r.nym, r.wallet_address, r.joined_at_us)))
        if len(rank_rows) == BATCH_ROWS or rank % RANK_WIDTH == 0:
            yield by_rank.batch((rank - 1) // RANK_WIDTH, rank_rows), ()
            rank_rows = []
        if (rank - 1) % FENCE_RANKS == 0:
            fence_rows.append(encode_fence((rank, r.score, r.joined_at_us, r.profile_id)))
            if len(fence_rows) == BATCH_ROWS:
                yield fences.batch(None, fence_rows), ()
                fence_rows = []
        if held is not None:
            to_profiles(rank - 1, held, r)
        above, held = held, r
    if held is not None:
        to_profiles(rank, held, None)
    if rank_rows:
        yield by_rank.batch((rank - 1) // RANK_WIDTH, rank_rows), ()
    if fence_rows:
        yield fences.batch(None, fence_rows), ()


def _by_profile_batches(
    by_profile: _PartitionBatches, profiles: SpillSort
) -> Iterator[tuple[BatchStatement, tuple[()]]]:
    """Each member's row with its neighbours, partition by partition, in rank order within one; sorted only
    once the rank pass has given every row."""
    bucket = -1
    rows: list[_Values] = []
    for row_bucket, _rank, *values in profiles.sorted():
        if row_bucket != bucket or len(rows) == BATCH_ROWS:
            if rows:
                yield by_profile.batch(bucket, rows), ()
            bucket, rows = row_bucket, []
        rows.append(tuple(UNSET_VALUE if v is None else v for v in values))
    if rows:
        yield by_profile.batch(bucket, rows), ()


class SnapshotWriter:
    def __init__(self, cql: CqlSession, t: Tables, *, keep_seconds: float = KEEP_SUPERSEDED_SECONDS) -> None:
        """`keep_seconds`: how long a superseded version stays readable (see KEEP_SUPERSEDED_SECONDS)."""
        self.cql = cql
        self.t = t
        self.keep_seconds = keep_seconds

    async def _run(self, query: str, params: tuple[Any, ...]) -> list[Any]:
        return await self.cql.execute(query, params, timeout=BULK_TIMEOUT_SECONDS)

    async def rebuild(self, community_id: int, board: Board) -> int:
        """Build and swap in a new snapshot of the board; return the number of ranked entries."""
        started = time.monotonic()
        # Both are read before the scores, so a snapshot never claims to be newer than its data, and every
        # change it may have missed was logged after `changes_from`.
        changes_from = datetime.now(UTC)
        score_version = await self._score_version(community_id)
        # Removed however the rebuild ends, cancelled included.
        with tempfile.TemporaryDirectory(prefix="sietch-rebuild-") as tmp:
            order = SpillSort(Path(tmp), "board")
            profiles = SpillSort(Path(tmp), "profiles")
            try:
                await self._scores(community_id, board, order)
                ranked = order.count
                version = await self._claim(community_id, board, score_version, ranked, changes_from)
                await self._write_rows(community_id, board, version, ranked, order.sorted(), profiles)
            finally:
                order.close()
                profiles.close()
        await self._run(
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
            ranked,
            time.monotonic() - started,
        )
        return ranked

    async def _read_scores(self, query: str, params: tuple[Any, ...]) -> list[Any]:
        """A read of what the snapshot is built from, at a quorum at least: at LOCAL_ONE it could come from
        a replica an update has not reached yet (a node back from an outage, a hint on the way), and the
        snapshot would go without that update until the next rebuild. A quorum costs no availability here:
        the version claim and the pointer move are lightweight transactions, which need one anyway."""
        return await self.cql.execute(
            query, params, timeout=BULK_TIMEOUT_SECONDS, consistency=self.cql.quorum_at_least()
        )

    async def _score_version(self, community_id: int) -> int:
        rows = await self._read_scores(
            f"SELECT score_version FROM {self.t.community_versions} WHERE community_id = ?", (community_id,)
        )
        return rows[0].score_version if rows else 0

    async def _scores(self, community_id: int, board: Board, order: SpillSort) -> None:
        """Every ranked member's board key and row into `order`, READ_CONCURRENCY shards at a time (at a
        quorum at least, as `_read_scores`)."""
        query = (
            f"SELECT profile_id, {board} AS score, joined_at_us, nym, wallet_address FROM {self.t.scores}"
            f" WHERE community_id = ? AND shard = ?"
        )
        shards = iter(range(SCORE_SHARDS))
        consistency = self.cql.quorum_at_least()

        async def read() -> None:
            for shard in shards:  # shared: each reader takes the next shard left
                pages = self.cql.pages(
                    query,
                    (community_id, shard),
                    fetch_size=READ_PAGE_ROWS,
                    timeout=BULK_TIMEOUT_SECONDS,
                    consistency=consistency,
                )
                async for page in pages:
                    for r in page:
                        score = r.score
                        if score is not None and score > 0:
                            # The board order ascending; unary minus would round the score.
                            order.add((score.copy_negate(), r.joined_at_us, r.profile_id.int, r.nym, r.wallet_address))

        readers = [asyncio.ensure_future(read()) for _ in range(READ_CONCURRENCY)]
        try:
            await asyncio.gather(*readers)
        except BaseException:
            # The others stop before the sort's files go.
            for reader in readers:
                reader.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
            raise

    async def _claim(
        self, community_id: int, board: Board, score_version: int, ranked: int, changes_from: datetime
    ) -> int:
        """A version number no other rebuild uses (a lightweight transaction decides races)."""
        rows = await self._run(
            f"SELECT version FROM {self.t.versions} WHERE community_id = ? AND board = ? ORDER BY version DESC LIMIT 1",
            (community_id, board),
        )
        version = rows[0].version + 1 if rows else 1
        while True:
            claimed = await self._run(
                f"INSERT INTO {self.t.versions} (community_id, board, version, state, ranked, score_version,"
                f" rank_width, profile_buckets, changes_from, fence_ranks)"
                f" VALUES (?, ?, ?, 'building', ?, ?, ?, ?, ?, ?) IF NOT EXISTS",
                (
                    community_id,
                    board,
                    version,
                    ranked,
                    score_version,
                    RANK_WIDTH,
                    max(1, -(-ranked // PROFILE_ROWS)),
                    changes_from,
                    FENCE_RANKS,
                ),
            )
            if claimed[0].applied:
                return version
            version += 1

    async def _write_rows(
        self,
        community_id: int,
        board: Board,
        version: int,
        ranked: int,
        order: Iterator[Record],
        profiles: SpillSort,
    ) -> None:
        """Every row of the snapshot from `order`, the board in rank order of `ranked` members; `profiles`
        is the (empty) sort the by-profile rows go through."""
        by_rank = _PartitionBatches(
            self.cql.prepare(f"INSERT INTO {self.t.by_rank} ({_ROW_COLUMNS}) VALUES ({_marks(_ROW_COLUMNS)})"),
            (community_id, board, version),
        )
        by_profile = _PartitionBatches(
            self.cql.prepare(
                f"INSERT INTO {self.t.by_profile} ({_PROFILE_COLUMNS}) VALUES ({_marks(_PROFILE_COLUMNS)})"
            ),
            (community_id, board, version),
        )
        fences = _PartitionBatches(
            self.cql.prepare(f"INSERT INTO {self.t.fences} ({_FENCE_COLUMNS}) VALUES ({_marks(_FENCE_COLUMNS)})"),
            (community_id, board, version),
        )
        buckets = max(1, -(-ranked // PROFILE_ROWS))
        await self.cql.execute_concurrently(
            chain(
                _rank_pass(by_rank, fences, by_profile, order, buckets, profiles),
                _by_profile_batches(by_profile, profiles),
            ),
            WRITE_CONCURRENCY,
            timeout=BULK_TIMEOUT_SECONDS,
            clear_batches=True,
        )

    async def _flip(self, community_id: int, board: Board, version: int) -> None:
        """Point readers at `version`, unless a newer rebuild already did (the pointer never goes back)."""
        created = await self._run(
            f"INSERT INTO {self.t.pointer} (community_id, board, version) VALUES (?, ?, ?) IF NOT EXISTS",
            (community_id, board, version),
        )
        if not created[0].applied:
            await self._run(
                f"UPDATE {self.t.pointer} SET version = ? WHERE community_id = ? AND board = ? IF version < ?",
                (version, community_id, board, version),
            )

    async def _retire(self, community_id: int, board: Board, live: int) -> None:
        """Delete the versions superseded more than `keep_seconds` ago, and abandoned builds.

        The one before `live` always stays. A version was superseded when the next newer live one was built.
        """
        rows = await self._run(
            f"SELECT version, state, built_at, ranked, rank_width, profile_buckets FROM {self.t.versions}"
            f" WHERE community_id = ? AND board = ? AND version < ?",
            (community_id, board, live),
        )
        now = datetime.now(UTC)
        superseded_at = now
        retired = []
        for old in sorted(rows, key=lambda r: r.version, reverse=True):
            if old.state == "live":
                since = (now - superseded_at).total_seconds()
                if old.built_at is not None:
                    superseded_at = old.built_at.replace(tzinfo=UTC)
                if old.version == live - 1 or since < self.keep_seconds:
                    continue
            elif old.version == live - 1:
                continue  # possibly still being written by a slower concurrent rebuild
            retired.append(old)
        for old in retired:
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
            deletes.append(
                (
                    f"DELETE FROM {self.t.fences} WHERE community_id = ? AND board = ? AND version = ?",
                    (community_id, board, old.version),
                )
            )
            await self.cql.execute_concurrently(deletes, WRITE_CONCURRENCY, timeout=BULK_TIMEOUT_SECONDS)
            await self._run(
                f"DELETE FROM {self.t.versions} WHERE community_id = ? AND board = ? AND version = ?",
                (community_id, board, old.version),
            )
