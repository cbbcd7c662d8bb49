"""The application as the tests build it: the production assembly on the test's own servers (its pool
and CQL session), with the in-memory reference backend registered beside the others when asked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from psycopg_pool import AsyncConnectionPool

from backends.memory.backend import MemoryBackend
from backends.scylla.session import CqlSession
from bot.app.app import assemble
from bot.app.container import Application
from bot.app.settings import load_settings

SETTINGS = Path(__file__).parents[1] / "config" / "settings.yaml"
# A third backend: its module, and its entry in the registry (what `bot/app/container.py` would say).
MEMORY = {"memory": MemoryBackend}


def app(
    pool: AsyncConnectionPool[Any],
    *,
    cql: CqlSession | None = None,
    keyspace: str = "sietch",
    memory: bool = False,
    discord: Any = False,
    **environ: str,
) -> Application:
    """The production assembly on the test's pool (and CQL session, when given); `environ` holds
    `SIETCH_...` setting overrides; `discord`, a logged-in client role changes and DMs go through. Nothing
    here opens a server: every provider answers at once."""
    settings = load_settings(SETTINGS, {"SIETCH_METRICS_PORT": "0", **environ})
    if cql is not None:
        settings["scylla"] |= {"hosts": ["127.0.0.1"], "keyspace": keyspace}
    return assemble(settings, pool=pool, cql=cql, discord=discord, backends=MEMORY if memory else None)
