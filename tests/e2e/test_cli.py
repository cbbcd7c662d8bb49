"""The `sietch` command as an admin runs it: a real process against the test database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest

ROOT = Path(__file__).parents[2]


@pytest.fixture
def sietch(postgres_dsn: str, tmp_path: Path) -> Any:
    def run(*args: str, token: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k != "DISCORD_TOKEN"}
        env["SIETCH_POSTGRES_DSN"] = postgres_dsn
        if token is not None:
            env["DISCORD_TOKEN"] = token
        return subprocess.run(
            [sys.executable, "-m", "bot", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run


def count_members(dsn: str, guild: int) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(*) FROM profiles WHERE community_id = %s", (guild,)).fetchone()
    assert row is not None
    return int(row[0])


def test_run_without_a_token_says_what_to_set(sietch: Any) -> None:
    result = sietch("run")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "sietch: DISCORD_TOKEN is not set: export DISCORD_TOKEN=<your bot token> and run again"
    ]
    assert "Traceback" not in result.stderr


def test_import_loads_members_and_shows_progress(
    sietch: Any, tmp_path: Path, postgres_dsn: str, new_guild_id: int
) -> None:
    csv_file = tmp_path / "members.csv"
    lines = ["discord_user_id,nym,conviction,activity"] + [f"{100 + i},m{i},{1000 - i},{i}" for i in range(2500)]
    csv_file.write_text("\n".join(lines) + "\n")
    result = sietch("import", str(new_guild_id), str(csv_file), "--name", "Arrakis")
    assert result.returncode == 0, result.stderr
    assert "2500 member(s) imported" in result.stdout
    assert "importing [" in result.stderr and "2500/2500" in result.stderr
    assert count_members(postgres_dsn, new_guild_id) == 2500


def test_a_bad_row_imports_nothing_and_names_the_line(
    sietch: Any, tmp_path: Path, postgres_dsn: str, new_guild_id: int
) -> None:
    csv_file = tmp_path / "members.csv"
    csv_file.write_text("discord_user_id,conviction\n1,10\n2,20\n3,twenty\n")
    result = sietch("import", str(new_guild_id), str(csv_file))
    assert result.returncode == 1
    assert "line 4: conviction 'twenty' is not a number" in result.stderr
    assert "Traceback" not in result.stderr
    assert count_members(postgres_dsn, new_guild_id) == 0


def test_a_conflict_in_the_database_rolls_the_whole_import_back(
    sietch: Any, tmp_path: Path, postgres_dsn: str, new_guild_id: int
) -> None:
    wallet = "0x" + "cd" * 20
    first = tmp_path / "first.csv"
    first.write_text(f"discord_user_id,wallet_address,conviction\n1,{wallet},10\n")
    assert sietch("import", str(new_guild_id), str(first)).returncode == 0
    # Member 2 claims member 1's wallet: the database refuses, and member 3 must not land either.
    second = tmp_path / "second.csv"
    second.write_text(f"discord_user_id,wallet_address,conviction\n3,,5\n2,{wallet},7\n")
    result = sietch("import", str(new_guild_id), str(second))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"line 3: wallet {wallet} belongs to Discord user 1" in result.stderr
    assert count_members(postgres_dsn, new_guild_id) == 1
    # Member 1 claims a wallet member 9 already holds: the database's uniqueness refuses it.
    other_wallet = "0x" + "ef" * 20
    assert sietch("import", str(new_guild_id), str(_csv(tmp_path, f"9,{other_wallet},3"))).returncode == 0
    result = sietch("import", str(new_guild_id), str(_csv(tmp_path, "5,,1", f"1,{other_wallet},1")))
    assert result.returncode == 1 and "line 3: wallet" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert count_members(postgres_dsn, new_guild_id) == 2


def test_demo_and_community_settings(sietch: Any, postgres_dsn: str, new_guild_id: int) -> None:
    assert sietch("demo", str(new_guild_id), "--members", "300").returncode == 0
    assert count_members(postgres_dsn, new_guild_id) == 300
    result = sietch("community", str(new_guild_id), "--fedaykin", "20", "--naib", "3", "--at-risk", "15")
    assert result.returncode == 0, result.stderr
    refused = sietch("community", str(new_guild_id), "--naib", "50")
    assert refused.returncode == 1 and "naib (50) must be between 1 and fedaykin (20)" in refused.stderr


def test_migrate_twice_is_harmless(sietch: Any) -> None:
    assert sietch("migrate").returncode == 0
    again = sietch("migrate")
    assert again.returncode == 0 and "applied 0 migration(s)" in again.stdout


def _csv(tmp_path: Path, *rows: str) -> Path:
    path = tmp_path / f"rows{len(list(tmp_path.iterdir()))}.csv"
    path.write_text("discord_user_id,wallet_address,conviction\n" + "\n".join(rows) + "\n")
    return path


@pytest.mark.parametrize("guild", ["0", "-5", "١٢٣", "9223372036854775808", "12x"])
def test_a_guild_id_that_is_not_a_discord_id_stops_at_the_door(sietch: Any, guild: str) -> None:
    for args in (["community", guild], ["demo", guild], ["backfill", "--guild", guild]):
        result = sietch(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert "is not a Discord id" in result.stderr and "Traceback" not in result.stderr


def test_two_rows_that_are_one_member_are_named_and_nothing_is_written(
    sietch: Any, tmp_path: Path, postgres_dsn: str, new_guild_id: int
) -> None:
    wallet = "0x" + "cd" * 20
    first = tmp_path / "first.csv"
    first.write_text(f"discord_user_id,wallet_address,conviction\n100,{wallet},5\n")
    assert sietch("import", str(new_guild_id), str(first)).returncode == 0
    second = tmp_path / "second.csv"
    # line 2 finds the member by Discord id, line 3 by wallet: the same member twice
    second.write_text(f"discord_user_id,wallet_address,conviction\n100,,7\n,{wallet},9\n")
    result = sietch("import", str(new_guild_id), str(second))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "line 2 and line 3" in result.stderr
    taken = tmp_path / "taken.csv"
    taken.write_text(f"discord_user_id,wallet_address,conviction\n200,{wallet},9\n")
    result = sietch("import", str(new_guild_id), str(taken))
    assert result.returncode == 1 and f"line 2: wallet {wallet} belongs to Discord user 100" in result.stderr
    assert count_members(postgres_dsn, new_guild_id) == 1
