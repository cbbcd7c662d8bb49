"""The CQL session bridged to asyncio: driver futures complete on the event loop, which never blocks."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cassandra import ConsistencyLevel, DriverException, OperationTimedOut, ReadTimeout, Unavailable, WriteTimeout
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, NoHostAvailable, ResponseFuture, Session
from cassandra.policies import DCAwareRoundRobinPolicy, ExponentialReconnectionPolicy, TokenAwarePolicy
from cassandra.query import BatchStatement, BatchType, PreparedStatement, SimpleStatement, named_tuple_factory

from backends.protocol import BackendTimeout, BackendUnavailable

log = logging.getLogger(__name__)

# Protocol v4 behaves the same on ScyllaDB and Cassandra.
PROTOCOL_VERSION = 4


@dataclass(frozen=True)
class CqlSettings:
    hosts: Sequence[str]
    port: int = 9042
    keyspace: str = "sietch"
    replication: dict[str, Any] = field(default_factory=lambda: {"class": "SimpleStrategy", "replication_factor": 1})
    consistency: str = "LOCAL_ONE"
    request_timeout_seconds: float = 2.0
    local_dc: str = ""
    connect_timeout_seconds: float = 10.0


_row_classes: dict[tuple[str, ...], Any] = {}


def cached_row_factory(colnames: list[str], rows: list[Any]) -> list[Any]:
    """The driver's named-tuple rows, with the row class built once per column list.

    The default factory calls `collections.namedtuple` for every result set, which profiled as the
    largest single cost of a keyed read.
    """
    key = tuple(colnames)
    cls = _row_classes.get(key)
    if cls is None:
        cls = type(named_tuple_factory(colnames, [(None,) * len(colnames)])[0])
        if not issubclass(cls, tuple):  # the driver's fallback for names a namedtuple refuses
            return named_tuple_factory(colnames, rows)  # type: ignore[no-any-return]  # the driver is untyped
        _row_classes[key] = cls
    return [cls(*row) for row in rows]


class _DeliberateBatches(logging.Filter):
    """Drops the server's warning about unlogged batches over several partitions. Ours are deliberate (a
    member's user row is a partition of its own: batches of 50 are far fewer round trips, and no reader
    needs them atomic), and a backfill would print one warning per 50 members."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Unlogged batch covering" not in record.getMessage()


_deliberate_batches = _DeliberateBatches()


def connect(settings: CqlSettings) -> tuple[Cluster, Session]:
    """Blocking: connect to the cluster (no keyspace yet). Raises BackendUnavailable."""
    logging.getLogger("cassandra.protocol").addFilter(_deliberate_batches)
    profile = ExecutionProfile(
        load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy(local_dc=settings.local_dc or None)),
        consistency_level=ConsistencyLevel.name_to_value[settings.consistency],
        request_timeout=settings.request_timeout_seconds,
        row_factory=cached_row_factory,
    )
    cluster = Cluster(
        list(settings.hosts),
        port=settings.port,
        protocol_version=PROTOCOL_VERSION,
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
        connect_timeout=settings.connect_timeout_seconds,
        control_connection_timeout=settings.connect_timeout_seconds,
        # A node back from an outage is used again within seconds, not the driver's default minutes.
        reconnection_policy=ExponentialReconnectionPolicy(base_delay=0.5, max_delay=5.0),
    )
    try:
        session = cluster.connect()
    except (NoHostAvailable, DriverException, OSError) as exc:
        cluster.shutdown()
        raise BackendUnavailable(f"scylla: cannot connect to {list(settings.hosts)}:{settings.port}: {exc}") from exc
    return cluster, session


def translate(exc: BaseException) -> BaseException:
    if isinstance(exc, OperationTimedOut | ReadTimeout | WriteTimeout):
        return BackendTimeout(f"scylla: {exc}")
    if isinstance(exc, NoHostAvailable | Unavailable | DriverException | OSError):
        return BackendUnavailable(f"scylla: {exc}")
    return exc


# Levels one replica can satisfy: a read at one of them may come from a replica a write has not reached.
_ONE_REPLICA = frozenset({ConsistencyLevel.ANY, ConsistencyLevel.ONE, ConsistencyLevel.LOCAL_ONE})


class CqlSession:
    """Async execution over one driver session, with prepared statements cached by text."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._prepared: dict[str, PreparedStatement] = {}

    def prepare(self, query: str) -> PreparedStatement:
        """The prepared statement (blocking on a first use: for batch builders off the request path)."""
        statement = self._prepared.get(query)
        if statement is None:
            try:
                statement = self.session.prepare(query)
            except Exception as exc:
                raise translate(exc) from exc
            self._prepared[query] = statement
        return statement

    async def prepare_async(self, query: str) -> PreparedStatement:
        """The prepared statement; a first use prepares on a worker thread, never on the event loop."""
        statement = self._prepared.get(query)
        if statement is None:
            try:
                statement = await asyncio.to_thread(self.session.prepare, query)
            except Exception as exc:  # a cold start with the cluster down: NoHostAvailable
                raise translate(exc) from exc
            self._prepared[query] = statement
        return statement

    def quorum_at_least(self) -> int:
        """The session's consistency, raised to LOCAL_QUORUM when it may be answered by one replica alone."""
        configured: int = self.session.get_execution_profile(EXEC_PROFILE_DEFAULT).consistency_level
        return ConsistencyLevel.LOCAL_QUORUM if configured in _ONE_REPLICA else configured

    async def execute(
        self,
        query: str | PreparedStatement | BatchStatement,
        params: Sequence[Any] = (),
        *,
        prepare: bool = True,
        timeout: float | None = None,
        consistency: int | None = None,
    ) -> list[Any]:
        """Run one statement and return every row of every page; `prepare=False` for DDL and one-offs;
        `timeout` (seconds per page) instead of the session's request timeout; `consistency` (a
        `ConsistencyLevel`) instead of the session's."""
        future = await self._start(query, params, prepare=prepare, timeout=timeout, consistency=consistency)
        return await _all_pages(future)

    async def pages(
        self,
        query: str,
        params: Sequence[Any],
        *,
        fetch_size: int,
        timeout: float | None = None,
        consistency: int | None = None,
    ) -> AsyncIterator[list[Any]]:
        """The rows of one read a page of at most `fetch_size` at a time: the next page is fetched while the
        caller handles this one, and no further, so a read of any size holds two pages at most."""
        future = await self._start(query, params, timeout=timeout, consistency=consistency, fetch_size=fetch_size)
        stream = _PageStream(future)
        while True:
            page, more = await stream.next()
            yield page
            if not more:
                return

    async def _start(
        self,
        query: str | PreparedStatement | BatchStatement,
        params: Sequence[Any],
        *,
        prepare: bool = True,
        timeout: float | None,
        consistency: int | None,
        fetch_size: int | None = None,
    ) -> ResponseFuture:
        statement: Any = query
        if isinstance(query, str):
            statement = await self.prepare_async(query) if prepare else SimpleStatement(query)
        if consistency is not None or fetch_size is not None:
            if isinstance(statement, PreparedStatement):  # shared by every caller: set on a bound copy
                statement, params = statement.bind(params), ()
            if consistency is not None:
                statement.consistency_level = consistency
            if fetch_size is not None:
                statement.fetch_size = fetch_size
        try:
            extra = {} if timeout is None else {"timeout": timeout}
            return self.session.execute_async(statement, params or None, **extra)
        except Exception as exc:  # the driver raises synchronously when no connection is left
            raise translate(exc) from exc

    async def execute_concurrently(
        self,
        statements: Iterable[tuple[str | PreparedStatement | BatchStatement, Sequence[Any]]],
        concurrency: int = 64,
        *,
        timeout: float | None = None,
        clear_batches: bool = False,
    ) -> int:
        """Run many statements with at most `concurrency` in flight; stop at the first error and raise it.

        `clear_batches`: empty each batch once its request is done, for statements nobody runs again. The
        driver keeps a finished request, and its statement, until its timeout would have fired: at a
        rebuild's pace, seconds of 1000-row batches (tens of MB)."""
        semaphore = asyncio.Semaphore(concurrency)
        pending: set[asyncio.Task[None]] = set()
        errors: list[BaseException] = []
        count = 0

        async def one(query: Any, params: Sequence[Any]) -> None:
            try:
                await self.execute(query, params, timeout=timeout)
            except Exception as exc:
                errors.append(exc)
            finally:
                if clear_batches and isinstance(query, BatchStatement):
                    query.clear()  # in place: the driver's request message holds the same list
                semaphore.release()

        try:
            for query, params in statements:
                await semaphore.acquire()
                if errors:
                    semaphore.release()
                    break
                task = asyncio.ensure_future(one(query, params))
                pending.add(task)
                task.add_done_callback(pending.discard)
                count += 1
            await asyncio.gather(*pending)
        except BaseException:
            for task in pending:
                task.cancel()
            raise
        if errors:
            raise errors[0]
        return count

    def batch(self, statements: Iterable[tuple[str, Sequence[Any]]]) -> BatchStatement:
        """An unlogged batch: rows of one partition (applied as one write), or idempotent rows of many."""
        batch = BatchStatement(batch_type=BatchType.UNLOGGED)
        for query, params in statements:
            batch.add(self.prepare(query), params)
        return batch


def _all_pages(future: ResponseFuture) -> asyncio.Future[list[Any]]:
    """Every page of `future`'s result. Its callbacks are dropped once it is done: they refer to it, and in
    that cycle a statement (a snapshot batch: a megabyte) would wait for a full collection to be freed."""
    loop = asyncio.get_running_loop()
    result: asyncio.Future[list[Any]] = loop.create_future()
    rows: list[Any] = []

    def settle(value: list[Any] | None, error: BaseException | None) -> None:
        if result.done():
            return
        if error is not None:
            result.set_exception(translate(error))
        else:
            result.set_result(value or [])

    def on_page(page: list[Any]) -> None:
        rows.extend(page or [])
        if future.has_more_pages:
            future.start_fetching_next_page()
        else:
            future.clear_callbacks()
            loop.call_soon_threadsafe(settle, rows, None)

    def on_error(exc: BaseException) -> None:
        future.clear_callbacks()
        loop.call_soon_threadsafe(settle, None, exc)

    future.add_callbacks(on_page, on_error)
    return result


class _PageStream:
    """The pages of one read as the driver delivers them, each asked for once the previous one is taken."""

    def __init__(self, future: ResponseFuture) -> None:
        self._future = future
        self._loop = asyncio.get_running_loop()
        self._page: asyncio.Future[list[Any]] = self._loop.create_future()
        future.add_callbacks(self._on_page, self._on_error)

    def _on_page(self, page: list[Any]) -> None:  # on a driver thread
        if not self._future.has_more_pages:
            self._future.clear_callbacks()  # as in _all_pages
        self._loop.call_soon_threadsafe(self._settle, page or [], None)

    def _on_error(self, exc: BaseException) -> None:  # on a driver thread
        self._future.clear_callbacks()
        self._loop.call_soon_threadsafe(self._settle, None, exc)

    def _settle(self, page: list[Any] | None, error: BaseException | None) -> None:
        if self._page.done():
            return
        if error is not None:
            self._page.set_exception(translate(error))
        else:
            self._page.set_result(page or [])

    async def next(self) -> tuple[list[Any], bool]:
        """The next page, and whether another follows it (then already being fetched)."""
        page = await self._page
        more = bool(self._future.has_more_pages)
        if more:
            # Replaced before the fetch starts: its callback lands on the loop, after this.
            self._page = self._loop.create_future()
            self._future.start_fetching_next_page()
        return page, more
