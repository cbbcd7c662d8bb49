"""Reads in autocommit (one round trip a statement) lend the connection back as it came: a later
borrower gets the pool's ordinary, transactional connection, even after a read was cancelled mid-way."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from psycopg_pool import AsyncConnectionPool

from backends.postgres.pool import pooled
from backends.protocol import BackendConflict, BackendUnavailable


async def test_an_autocommit_block_gives_back_an_ordinary_connection(postgres_dsn: str) -> None:
    async with AsyncConnectionPool(postgres_dsn, min_size=1, max_size=1, open=False) as pool:
        async with pooled(pool, autocommit=True) as conn:
            assert conn.autocommit
            # no transaction is opened around a statement
            await conn.execute("SELECT 1")
            assert (await (await conn.execute("SELECT now() = statement_timestamp() AS alone")).fetchone())["alone"]
            async with conn.transaction():
                await conn.execute("SELECT 1")
        async with pooled(pool) as conn:
            assert not conn.autocommit
            await conn.execute("SELECT 1")
            assert conn.info.transaction_status.name == "INTRANS"


async def test_a_cancelled_read_does_not_lend_out_an_autocommit_connection(postgres_dsn: str) -> None:
    async with AsyncConnectionPool(postgres_dsn, min_size=1, max_size=1, open=False) as pool:
        started = asyncio.Event()

        async def slow() -> Any:
            async with pooled(pool, autocommit=True) as conn:
                started.set()
                await conn.execute("SELECT pg_sleep(30)")

        task = asyncio.create_task(slow())
        await started.wait()
        await asyncio.sleep(0.2)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        async with pooled(pool) as conn:
            assert not conn.autocommit
            assert (await (await conn.execute("SELECT 1 AS one")).fetchone())["one"] == 1


@pytest.mark.parametrize(
    ("sqlstate", "driver_error"), [("40001", "SerializationFailure"), ("40P01", "DeadlockDetected")]
)
async def test_contention_leaves_as_a_conflict_that_is_still_unavailability(
    postgres_dsn: str, sqlstate: str, driver_error: str
) -> None:
    """The claim retry tells contention from an outage by type alone; loops that treat the store as briefly
    away (BackendUnavailable) keep doing so for it."""
    async with AsyncConnectionPool(postgres_dsn, min_size=1, max_size=1, open=False) as pool:
        with pytest.raises(BackendConflict) as raised:
            async with pooled(pool) as conn:
                await conn.execute(f"DO $$ BEGIN RAISE EXCEPTION 'contended' USING ERRCODE = '{sqlstate}'; END $$")
        assert isinstance(raised.value, BackendUnavailable) and type(raised.value.__cause__).__name__ == driver_error
        async with pooled(pool) as conn:
            assert (await (await conn.execute("SELECT 1 AS one")).fetchone())["one"] == 1
