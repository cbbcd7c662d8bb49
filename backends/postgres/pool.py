"""The one way PostgreSQL stores take a pooled connection: rows as dicts, driver failures leaving as the
Protocol's error types (so the router and the loops judge them without knowing psycopg)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg.pq import TransactionStatus
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from backends.protocol import LOCAL_WAIT, BackendConflict, BackendError, BackendTimeout, BackendUnavailable, Community

Pool = AsyncConnectionPool[Any]
Connection = AsyncConnection[dict[str, Any]]


@asynccontextmanager
async def pooled(pool: Pool, *, autocommit: bool = False) -> AsyncIterator[Connection]:
    """A connection from `pool` for the block; given back when it ends. While it waits for the pool, the
    caller's `LOCAL_WAIT` says so.

    `autocommit` is for blocks whose every statement stands alone or runs inside `conn.transaction()`:
    a statement then costs one round trip instead of three (the implicit BEGIN, the statement, and the
    COMMIT the pool sends when the block ends). The connection goes back to the pool as it came."""
    local = LOCAL_WAIT.get()
    if local is not None:
        local.waiting = True
    try:
        async with pool.connection() as conn:
            if local is not None:
                local.waiting = False
            conn.row_factory = dict_row
            if not autocommit:
                yield conn
                return
            await conn.set_autocommit(True)
            try:
                yield conn
            finally:
                # Left mid-statement or mid-transaction (a cancelled task), it cannot be switched back:
                # closed, the pool replaces it rather than lend it out in autocommit.
                if conn.info.transaction_status == TransactionStatus.IDLE:
                    await conn.set_autocommit(False)
                else:
                    await conn.close()
    except PoolTimeout as exc:
        raise BackendUnavailable(f"postgres: no connection available ({exc})") from exc
    except (psycopg.errors.SerializationFailure, psycopg.errors.DeadlockDetected) as exc:
        # Before OperationalError, which both are: callers retry these and nothing else of that kind.
        raise BackendConflict(f"postgres: {type(exc).__name__}: {exc}") from exc
    except psycopg.errors.QueryCanceled as exc:
        raise BackendTimeout(f"postgres: query cancelled ({exc})") from exc
    except psycopg.OperationalError as exc:
        raise BackendUnavailable(f"postgres: {exc}") from exc
    except psycopg.Error as exc:  # whatever the server refused is the backend's failure, not the caller's
        raise BackendError(f"postgres: {type(exc).__name__}: {exc}") from exc


async def fetch_community(conn: Connection, community_id: int) -> Community | None:
    """A community's settings as the source of truth holds them."""
    cur = await conn.execute(
        "SELECT community_id, name, fedaykin, naib, at_risk, waitlist_end, page_size,"
        " rate_limit_per_minute FROM communities WHERE community_id = %s",
        (community_id,),
    )
    row = await cur.fetchone()
    return Community(**row) if row else None
