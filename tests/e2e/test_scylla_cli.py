"""`sietch backfill`, `recalc` and `verify` as an admin runs them, against the CQL node."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest

from backends.scylla.session import CqlSession, CqlSettings

ROOT = Path(__file__).parents[2]


@pytest.fixture
def sietch(postgres_dsn: str, cql_node: CqlSettings, cql_session: CqlSession) -> Any:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SIETCH_")}
        env.update(
            SIETCH_POSTGRES_DSN=postgres_dsn,
            SIETCH_SCYLLA_HOSTS=",".join(cql_node.hosts),
            SIETCH_SCYLLA_PORT=str(cql_node.port),
            SIETCH_SCYLLA_KEYSPACE=cql_node.keyspace,
        )
        return subprocess.run(
            [sys.executable, "-m", "bot", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
        )

    return run


def test_demo_backfills_and_verify_finds_no_difference(sietch: Any, new_guild_id: int) -> None:
    demo = sietch("demo", str(new_guild_id), "--members", "1500")
    assert demo.returncode == 0, demo.stderr
    assert f"guild {new_guild_id}: 1500 member(s) copied to scylla" in demo.stdout
    assert f"backfill {new_guild_id} into scylla [" in demo.stderr
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
