"""The application as the tests build it: the production container, with the test's own servers plugged
in through `.override()`, and the in-memory reference backend registered beside the others."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dependency_injector import providers
from psycopg_pool import AsyncConnectionPool

from backends.memory.backend import MemoryBackend
from backends.scylla.session import CqlSession
from bot.app.container import Container, configured, make_container, registered
from bot.app.settings import load_settings

SETTINGS = Path(__file__).parents[1] / "config" / "settings.yaml"


def app(
    pool: AsyncConnectionPool[Any],
    *,
    cql: CqlSession | None = None,
    keyspace: str = "sietch",
    memory: bool = False,
    **environ: str,
) -> Container:
    """The production assembly on the test's pool (and CQL session, when given); `environ` holds
    `SIETCH_...` setting overrides. Nothing here opens a server: every provider answers at once."""
    settings = load_settings(SETTINGS, {"SIETCH_METRICS_PORT": "0", **environ})
    if cql is not None:
        settings["scylla"] |= {"hosts": ["127.0.0.1"], "keyspace": keyspace}
    container = make_container(settings)
    container.postgres_pool.override(providers.Object(pool))
    container.cql_session.override(providers.Object(cql))
    if memory:
        register_memory(container)
    return container


def register_memory(container: Container) -> None:
    """A third backend: its module, and its entry in the registry (what `bot/app/container.py` would say)."""
    memory = providers.Singleton(MemoryBackend)
    container.backends.override(
        providers.Callable(
            registered, postgres=container.postgres_backend, scylla=container.scylla_backend, memory=memory
        )
    )
    container.backend_names.override(
        providers.Callable(configured, postgres=True, scylla=container.config.scylla.hosts, memory=True)
    )
