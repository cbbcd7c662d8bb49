"""The environment a test gives a `python -m bot` process of its own."""

from __future__ import annotations

import os

from backends.scylla.session import CqlSettings


def sietch_environ(postgres_dsn: str | None = None, cql: CqlSettings | None = None, **settings: str) -> dict[str, str]:
    """This process's environment without its own SIETCH_ settings (a developer's shell must not leak into
    the test), pointed at the test's PostgreSQL and CQL keyspace when given; `settings` go on top."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIETCH_")}
    if postgres_dsn is not None:
        env["SIETCH_POSTGRES_DSN"] = postgres_dsn
    if cql is not None:
        env.update(
            SIETCH_SCYLLA_HOSTS=",".join(cql.hosts),
            SIETCH_SCYLLA_PORT=str(cql.port),
            SIETCH_SCYLLA_KEYSPACE=cql.keyspace,
        )
    env.update(settings)
    return env
