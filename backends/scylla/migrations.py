"""Creates the keyspace from settings and applies the `.cql` schema files in order, once each."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from importlib import resources
from typing import Any

from backends.protocol import InvalidInput
from backends.scylla.session import CqlSession

log = logging.getLogger(__name__)

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,47}$")
_WORD = re.compile(r"^[A-Za-z0-9_.]+$")


def keyspace_ddl(keyspace: str, replication: Mapping[str, Any]) -> str:
    """CREATE KEYSPACE from settings: SimpleStrategy locally, NetworkTopologyStrategy per data centre."""
    if not _NAME.match(keyspace):
        raise InvalidInput(f"keyspace name {keyspace!r} is not a valid CQL identifier")
    if "class" not in replication:
        raise InvalidInput("scylla.replication needs a 'class' (SimpleStrategy or NetworkTopologyStrategy)")
    for key, value in replication.items():
        if not _WORD.match(str(key)) or not _WORD.match(str(value)):
            raise InvalidInput(f"scylla.replication entry {key!r}: {value!r} is not a plain word or number")
    pairs = ", ".join(f"'{key}': '{value}'" for key, value in replication.items())
    return f"CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = {{{pairs}}}"


def schema_files() -> list[tuple[str, list[str]]]:
    folder = resources.files("backends.scylla") / "schema"
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".cql")), key=lambda f: f.name)
    return [(f.name, _statements(f.read_text(encoding="utf-8"))) for f in files]


def _statements(text: str) -> list[str]:
    lines = [line for line in text.splitlines() if not line.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


async def migrate(cql: CqlSession, keyspace: str, replication: Mapping[str, Any]) -> list[str]:
    """Apply every pending schema file to `keyspace` (created if missing); return the names applied."""
    await cql.execute(keyspace_ddl(keyspace, replication), prepare=False)
    await cql.execute(
        f"CREATE TABLE IF NOT EXISTS {keyspace}.schema_migrations (name text PRIMARY KEY, applied_at timestamp)",
        prepare=False,
    )
    done = {row.name for row in await cql.execute(f"SELECT name FROM {keyspace}.schema_migrations", prepare=False)}
    applied = []
    for name, statements in schema_files():
        if name in done:
            continue
        for statement in statements:
            # Every DDL statement of the schema names its table unqualified; qualify it here.
            await cql.execute(_qualify(statement, keyspace), prepare=False)
        await cql.execute(
            f"INSERT INTO {keyspace}.schema_migrations (name, applied_at) VALUES (%s, toTimestamp(now()))",
            (name,),
            prepare=False,
        )
        log.info("cql migration applied name=%s keyspace=%s", name, keyspace)
        applied.append(name)
    return applied


def _qualify(statement: str, keyspace: str) -> str:
    return re.sub(r"^(CREATE TABLE IF NOT EXISTS |ALTER TABLE )(\w+)", rf"\g<1>{keyspace}.\g<2>", statement)
