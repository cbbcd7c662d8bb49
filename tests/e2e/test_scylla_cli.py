"""`sietch backfill`, `recalc` and `verify` as an admin runs them, against the CQL node."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from backends.scylla.session import CqlSession, CqlSettings
from tests.environ import sietch_environ
from tests.wiring import app

ROOT = Path(__file__).parents[2]


@pytest.fixture
def sietch(postgres_dsn: str, cql_node: CqlSettings, cql_session: CqlSession) -> Any:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        env = sietch_environ(postgres_dsn, cql_node)
        return subprocess.run(
            [sys.executable, "-m", "bot", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
        )

    return run


def test_demo_backfills_and_verify_finds_no_difference(sietch: Any, new_guild_id: int) -> None:
    demo = sietch("demo", str(new_guild_id), "--members", "1500")
    assert demo.returncode == 0, demo.stderr
    assert f"guild {new_guild_id}: 1500 member(s) copied to scylla" in demo.stdout
    assert f"backfill {new_guild_id} into scylla [" in demo.stderr
    assert "WARNING" not in demo.stderr  # the server's advice on our deliberate multi-partition batches is not shown
    verify = sietch("verify", "--guild", str(new_guild_id), "--sample", "0")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert f"guild {new_guild_id}: 0 difference(s)" in verify.stdout


async def test_verify_reports_each_difference_and_fails(
    sietch: Any, cql_session: CqlSession, cql_node: CqlSettings, new_guild_id: int
) -> None:
    assert sietch("demo", str(new_guild_id), "--members", "200").returncode == 0
    ks = cql_node.keyspace
    pointer = await cql_session.execute(
        f"SELECT version FROM {ks}.board_pointer WHERE community_id = ? AND board = ?", (new_guild_id, "conviction")
    )
    # Plant a wrong score in the live snapshot: rank 3 of the conviction board.
    await cql_session.execute(
        f"UPDATE {ks}.board_by_rank SET score = 123456 WHERE community_id = ? AND board = ? AND version = ?"
        f" AND bucket = 0 AND rank = 3",
        (new_guild_id, "conviction", pointer[0].version),
    )
    verify = sietch("verify", "--guild", str(new_guild_id), "--sample", "0")
    assert verify.returncode == 1
    assert "conviction page 1:" in verify.stdout and "123456" in verify.stdout
    assert "difference(s) between postgres and scylla" in verify.stderr
    assert "difference(s): divergence, scylla is not behind" in verify.stdout
    recalc = sietch("recalc", "--guild", str(new_guild_id))
    assert recalc.returncode == 0 and "2 board(s) rebuilt" in recalc.stdout
    assert sietch("verify", "--guild", str(new_guild_id)).returncode == 0


def test_backfill_of_an_unknown_guild_is_a_clear_error(sietch: Any) -> None:
    result = sietch("backfill", "--guild", "12345")
    assert result.returncode == 1
    assert "guild 12345 is not a configured community" in result.stderr
    assert "Traceback" not in result.stderr


async def test_verify_tells_a_snapshot_behind_the_scores_from_divergence(
    sietch: Any, postgres_dsn: str, new_guild_id: int
) -> None:
    assert sietch("demo", str(new_guild_id), "--members", "50").returncode == 0
    # A score update reaches PostgreSQL and the copy's scores, but no snapshot is rebuilt yet.
    async with await psycopg.AsyncConnection.connect(postgres_dsn, autocommit=True) as conn:
        await conn.execute(
            "UPDATE scores SET conviction = conviction + 1000000 WHERE profile_id ="
            " (SELECT profile_id FROM scores WHERE community_id = %s ORDER BY conviction LIMIT 1)",
            (new_guild_id,),
        )
        await conn.execute(
            "UPDATE communities SET score_version = score_version + 1 WHERE community_id = %s", (new_guild_id,)
        )
    verify = sietch("verify", "--guild", str(new_guild_id), "--sample", "0")
    assert verify.returncode == 1
    assert "difference(s) from lag: the conviction snapshot is from score version" in verify.stdout


async def test_rebuilds_runs_the_periodic_rebuilds_until_stopped(
    postgres_dsn: str, cql_node: CqlSettings, cql_session: CqlSession, sietch: Any, new_guild_id: int
) -> None:
    """`sietch rebuilds`: the rebuilds `sietch run` leaves to it with `recalculation.in_bot: false`."""
    assert sietch("demo", str(new_guild_id), "--members", "40").returncode == 0
    ks, boards = cql_node.keyspace, ("conviction", "activity")

    async def versions() -> list[int]:
        found = []
        for board in boards:
            rows = await cql_session.execute(
                f"SELECT version FROM {ks}.board_pointer WHERE community_id = ? AND board = ?", (new_guild_id, board)
            )
            found.append(rows[0].version)
        return found

    built = await versions()
    # The copy's scores move past the snapshots (as the relay leaves them): both boards are stale.
    rows = await cql_session.execute(
        f"SELECT score_version FROM {ks}.community_versions WHERE community_id = ?", (new_guild_id,)
    )
    await cql_session.execute(
        f"UPDATE {ks}.community_versions SET score_version = ? WHERE community_id = ?",
        (rows[0].score_version + 1, new_guild_id),
    )
    env = sietch_environ(postgres_dsn, cql_node, SIETCH_RECALCULATION_INTERVAL_SECONDS="0.5")
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "rebuilds"], cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while (now := await versions()) == built or any(n <= b for n, b in zip(now, built, strict=True)):
            assert proc.poll() is None and time.monotonic() < deadline, "no rebuild by `sietch rebuilds`"
            await asyncio.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "rebuilding the snapshots of communities whose scores changed, every 0.5s" in err
    assert err.rstrip().endswith("stopped")


@pytest.mark.parametrize("here", ["true", "false"])
async def test_bots_run_with_rebuilds_elsewhere_do_none(
    pool: AsyncConnectionPool[Any], cql_session: CqlSession, cql_keyspace: str, here: str
) -> None:
    container = app(pool, cql=cql_session, keyspace=cql_keyspace, SIETCH_RECALCULATION_IN_BOT=here)
    background = container.background()
    assert (background.rebuilds is not None) is (here == "true")
    assert container.rebuilds() is not None  # what `sietch rebuilds` runs
