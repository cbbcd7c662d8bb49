"""Opens the application for one run: the container with every configured database up and migrated."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from backends.postgres.migrations import migrate
from backends.scylla.migrations import migrate as migrate_cql
from bot.app.container import Container, make_container, resolved


@asynccontextmanager
async def opened(settings: dict[str, Any]) -> AsyncIterator[tuple[Container, list[str]]]:
    """(the container, the migrations applied); resources are shut down on the way out."""
    container = make_container(settings)
    try:
        applied = await migrate(await resolved(container.postgres_dsn))
        cql = await resolved(container.cql_session)
        if cql is not None:
            scylla = settings["scylla"]
            applied += [f"cql:{name}" for name in await migrate_cql(cql, scylla["keyspace"], scylla["replication"])]
        await _awaited(container.init_resources())
        yield container, applied
    finally:
        await _awaited(container.shutdown_resources())


async def _awaited(result: Any) -> None:
    # init/shutdown_resources return an awaitable only when some resource is async (ours are).
    if result is not None:
        await result
