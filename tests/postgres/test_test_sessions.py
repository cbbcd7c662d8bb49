"""Two test runs on one machine leave each other's PostgreSQL alone, and a killed run's server and data do
not outlive it past the next run.

The session's embedded server keeps its data in `.run/test-postgres/` (tests/fixtures/postgres_dirs.py).
Under pytest's temp root it died as soon as another pytest run started: that run makes the root 0700
again, and the server (run as another user when the tests run as root) panicked at its next checkpoint
(`could not open file ".../global/pg_control": Permission denied`).
"""

from __future__ import annotations

import getpass
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil
import psycopg
import pytest

from backends.postgres.embedded import start_embedded
from tests.fixtures import postgres_dirs
from tests.fixtures.postgres_dirs import RUN_ROOT, session_root

ROOT = Path(__file__).parents[2]
CHILD = "SIETCH_TEST_CHILD_SESSION"  # set in the run this test starts, which must not start another
OWN_SERVER = not os.environ.get("SIETCH_TEST_POSTGRES_DSN")


@pytest.mark.skipif(bool(os.environ.get(CHILD)), reason="already the second run")
def test_another_pytest_run_leaves_this_sessions_postgres_alone(
    postgres_dsn: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    if OWN_SERVER:
        with psycopg.connect(postgres_dsn) as conn:
            row = conn.execute("SHOW data_directory").fetchone()
        assert row is not None
        data_dir = Path(row[0])
        assert data_dir.is_relative_to(session_root()), data_dir
        pytest_roots = [tmp_path_factory.getbasetemp(), Path(tempfile.gettempdir()) / f"pytest-of-{getpass.getuser()}"]
        assert not any(data_dir.is_relative_to(root) for root in pytest_roots), data_dir

    # A second run of the same user, with temp directories of its own (which resets pytest's temp root).
    child = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/unit/test_server_markers.py", "-q", "-p", "no:cacheprovider"],
        cwd=ROOT,
        env={**os.environ, CHILD: "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == 0, child.stdout[-3000:] + child.stderr[-3000:]

    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        if OWN_SERVER:
            conn.execute("CHECKPOINT")  # writes global/pg_control: where the server used to panic
        assert conn.execute("SELECT 1").fetchone() == (1,)


@pytest.mark.postgres  # starts an embedded server of its own
def test_a_dead_sessions_directory_and_server_are_removed_and_a_live_ones_kept() -> None:
    """As if a run had been killed (its server still running on its data), then another run started."""
    own = session_root()
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = RUN_ROOT / f"{int(gone.stdout)}-0dead"
    reused = RUN_ROOT / f"{os.getpid()}-01d"  # this pid, but recorded for a process started long ago
    for path, started in ((dead, 1.0), (reused, 1.0)):
        path.mkdir(parents=True)
        (path / "owner.json").write_text(json.dumps({"pid": int(path.name.split("-")[0]), "started": started}))
    _, server = start_embedded(dead / "x" / "data")
    postmaster = postgres_dirs._postmaster(dead / "x" / "data")
    assert postmaster is not None

    removed = postgres_dirs.remove_stale()

    assert set(removed) >= {dead, reused}
    assert not dead.exists() and not reused.exists()
    assert not postmaster.is_running() or postmaster.status() == psutil.STATUS_ZOMBIE
    assert own.is_dir() and own not in removed  # this session's own is kept (not made again)
    assert session_root() == own
    server.cleanup()  # the handle's bookkeeping (the server is gone already)


def test_this_sessions_directory_is_kept_whatever_its_record_says() -> None:
    """A record that no longer matches (as a wall-clock start time did after the boot time was adjusted)
    never makes the running session's own directory, and the server on it, look dead."""
    own = session_root()
    record = own / "owner.json"
    kept = record.read_text()
    try:
        record.write_text(json.dumps({"pid": os.getpid(), "started": 1.0}))
        assert own not in postgres_dirs.remove_stale()
        assert own.is_dir()
    finally:
        record.write_text(kept)
