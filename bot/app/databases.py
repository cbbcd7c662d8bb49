"""The databases one run of the application works on: the source of truth's connection pool (on the
configured PostgreSQL, or an embedded one started for the run) and, when Scylla is configured, a CQL
session. Opened before anything is assembled, closed after everything stopped."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from psycopg_pool import AsyncConnectionPool

from backends.postgres.embedded import start_embedded
from backends.postgres.migrations import migrate as migrate_postgres
from backends.scylla.migrations import migrate as migrate_cql
from backends.scylla.session import CqlSession, CqlSettings, connect

Pool = AsyncConnectionPool[Any]


@dataclass(frozen=True)
class Databases:
    pool: Pool  # members' commands
    background_pool: Pool  # everything else: role syncs, the feed, the relay, leases
    cql: CqlSession | None
    migrations: list[str]  # applied by this opening, in order


def cql_settings(scylla: dict[str, Any]) -> CqlSettings | None:
    """The CQL cluster's settings, or None when Scylla is not configured (no contact points)."""
    if not scylla["hosts"]:
        return None
    return CqlSettings(
        hosts=list(scylla["hosts"]),
        port=scylla["port"],
        keyspace=scylla["keyspace"],
        replication=dict(scylla["replication"]),
        consistency=scylla["consistency"],
        request_timeout_seconds=scylla["request_timeout_seconds"],
        local_dc=scylla["local_dc"],
    )


async def open_databases(settings: dict[str, Any], stack: AsyncExitStack, *, migrate: bool = True) -> Databases:
    """Open (and migrate) every configured database; `stack` closes them."""
    postgres = settings["postgres"]
    dsn = postgres["dsn"]
    if not dsn:
        dsn, server = await asyncio.to_thread(start_embedded, Path(postgres["data_dir"]))
        stack.push_async_callback(asyncio.to_thread, server.cleanup)
    applied = await migrate_postgres(dsn) if migrate else []
    # Two pools: background work can never take the connections a member's command needs.
    pool = await _pool(dsn, postgres["pool_min_size"], postgres["pool_max_size"], postgres, "commands", stack)
    background = await _pool(dsn, 1, postgres["background_pool_max_size"], postgres, "background", stack)
    cql = None
    if (cql_config := cql_settings(settings["scylla"])) is not None:
        cluster, session = await asyncio.to_thread(connect, cql_config)
        stack.push_async_callback(asyncio.to_thread, cluster.shutdown)
        cql = CqlSession(session)
        if migrate:
            scylla = settings["scylla"]
            applied += [f"cql:{name}" for name in await migrate_cql(cql, scylla["keyspace"], scylla["replication"])]
    return Databases(pool, background, cql, applied)


async def _pool(dsn: str, least: int, most: int, postgres: dict[str, Any], name: str, stack: AsyncExitStack) -> Pool:
    # Each connection is checked when taken, so after a database restart the pool replaces dead ones
    # instead of handing them out.
    pool: Pool = AsyncConnectionPool(
        dsn,
        min_size=least,
        max_size=most,
        timeout=postgres["pool_timeout_seconds"],
        open=False,
        check=AsyncConnectionPool.check_connection,
        name=name,
    )
    await pool.open(wait=True, timeout=30)
    stack.push_async_callback(pool.close)
    return pool
