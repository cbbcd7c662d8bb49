"""`sietch scores apply`: a JSON Lines file (or standard input) of score updates, whole or not at all."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.environ import sietch_environ

ROOT = Path(__file__).parents[2]


def run(dsn: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = sietch_environ(dsn, SIETCH_METRICS_PORT="0")
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def scores(dsn: str, guild: int) -> dict[int, tuple[str, str]]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT p.discord_user_id, s.conviction, s.activity FROM scores s JOIN profiles p USING (profile_id)"
            " WHERE s.community_id = %s",
            (guild,),
        ).fetchall()
    return {r[0]: (str(r[1].normalize()), str(r[2].normalize())) for r in rows}


@pytest.fixture
def guild(postgres_dsn: str, new_guild_id: int, tmp_path: Path) -> int:
    members = tmp_path / "members.csv"
    members.write_text(
        "discord_user_id,wallet_address,conviction\n"
        + "".join(f"{100 + i},0x{i:040x},{10 * (i + 1)}\n" for i in range(5))
    )
    assert run(postgres_dsn, "import", str(new_guild_id), str(members), "--name", "Arrakis").returncode == 0
    return new_guild_id


def line(guild: int, member: Any, value: Any, **more: Any) -> str:
    return json.dumps(
        {
            "guild": str(guild),
            "member": member,
            "board": "conviction",
            "value": value,
            "event_type": "token_hold",
            **more,
        }
    )


def test_a_good_file_lands_whole(postgres_dsn: str, guild: int, tmp_path: Path) -> None:
    feed = tmp_path / "feed.jsonl"
    feed.write_text(
        "\n".join(
            [
                line(guild, "100", "1e-18", mode="add"),
                "",
                line(guild, "0x" + "0" * 39 + "1", 7),
                line(guild, 102, "2.50", tx_hash="0x1"),
            ]
        )
        + "\n"
    )
    result = run(postgres_dsn, "scores", "apply", str(feed))
    assert result.returncode == 0, result.stderr
    assert "3 update(s) applied in one transaction" in result.stdout
    got = scores(postgres_dsn, guild)
    assert got[100][0] == "10.000000000000000001" and got[101][0] == "7" and got[102][0] == "2.5"
    again = run(postgres_dsn, "scores", "apply", "-", stdin=line(guild, 102, "9", tx_hash="0x1") + "\n")
    assert again.returncode == 0, again.stderr
    assert scores(postgres_dsn, guild)[102][0] == "2.5"  # that transaction was applied before


def test_a_bad_line_stops_everything_and_every_bad_line_is_named(postgres_dsn: str, guild: int, tmp_path: Path) -> None:
    before = scores(postgres_dsn, guild)
    feed = tmp_path / "feed.jsonl"
    feed.write_text(
        "\n".join(
            [
                line(guild, "100", 5),
                "{not json",
                line(guild, "999", 5),  # no such member
                line(guild, "101", "lots"),
                line(guild + 1, "101", 5),  # a guild that is not configured
                line(guild, "102", 5),
                "[" * 5000,  # nesting no update has
            ]
        )
        + "\n"
    )
    result = run(postgres_dsn, "scores", "apply", str(feed))
    assert result.returncode == 1
    for expected in (
        "line 2: not a JSON object",
        "line 3: member 999 is not a member",
        "line 4: value 'lots' is not a number",
        "line 5: member 101 is not a member",
        "line 7: not a JSON object",
    ):
        assert expected in result.stderr, result.stderr
    assert "5 bad line(s), nothing was applied" in result.stderr and "Traceback" not in result.stderr
    assert scores(postgres_dsn, guild) == before


def test_partial_applies_the_good_lines_and_keeps_the_bad_ones(postgres_dsn: str, guild: int, tmp_path: Path) -> None:
    feed = tmp_path / "feed.jsonl"
    bad = line(guild, "999", 5)
    feed.write_text("\n".join([line(guild, "100", 1), bad, line(guild, "104", 2)]))  # no final line break
    result = run(postgres_dsn, "scores", "apply", str(feed), "--partial")
    assert result.returncode == 0, result.stderr
    assert f"1 bad line(s) left out and written to {feed}.rejects.jsonl" in result.stderr
    assert Path(f"{feed}.rejects.jsonl").read_text() == bad + "\n"
    got = scores(postgres_dsn, guild)
    assert (got[100][0], got[104][0]) == ("1", "2")


def test_no_such_file(postgres_dsn: str, tmp_path: Path) -> None:
    result = run(postgres_dsn, "scores", "apply", str(tmp_path / "missing.jsonl"))
    assert result.returncode == 1 and "no such file" in result.stderr


def test_values_no_store_can_keep_are_bad_lines_not_errors(postgres_dsn: str, guild: int, tmp_path: Path) -> None:
    before = scores(postgres_dsn, guild)
    raw = '{"guild": "%s", "member": "%s", "board": "conviction", "value": %s, "event_type": "token_hold"}'
    feed = tmp_path / "feed.jsonl"
    feed.write_text(
        "\n".join(
            [
                raw % (guild, 100, "1e99999999999999999999999"),  # a JSON number no Decimal holds
                line(guild, "101", "٥"),  # an Arabic-Indic 5
                line(guild, "102", " 5 "),
                line(guild, "103", "1_000"),
                raw % (guild, 104, "NaN"),  # Python's json reads NaN
                line(guild, "100", "Infinity"),
                line(guild, "101", "1e-1001"),
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    result = run(postgres_dsn, "scores", "apply", str(feed))
    assert result.returncode == 1
    for expected in (
        "line 1: value '1e99999999999999999999999' is out of range",
        "line 2: value '٥' is not a plain decimal",
        "line 3: value ' 5 ' is not a plain decimal",
        "line 4: value '1_000' is not a plain decimal",
        "line 5: value 'NaN' is not a finite number",
        "line 6: value 'Infinity' is not a finite number",
        "line 7: value '1e-1001' is out of range",
    ):
        assert expected in result.stderr, result.stderr
    assert "7 bad line(s), nothing was applied" in result.stderr
    assert "unexpected error" not in result.stderr and "Traceback" not in result.stderr
    assert scores(postgres_dsn, guild) == before


def test_an_add_past_the_range_applies_nothing(postgres_dsn: str, guild: int, tmp_path: Path) -> None:
    first = run(postgres_dsn, "scores", "apply", "-", stdin=line(guild, "100", "9e1000") + "\n")
    assert first.returncode == 0, first.stderr  # the first digit at the 10^1000 place: in range
    before = scores(postgres_dsn, guild)
    feed = tmp_path / "feed.jsonl"
    feed.write_text(line(guild, "101", 1, mode="add") + "\n" + line(guild, "100", "9e1000", mode="add") + "\n")
    result = run(postgres_dsn, "scores", "apply", str(feed))
    assert result.returncode == 1
    assert "the conviction score of member 100 would be 1.80000e+1001" in result.stderr, result.stderr
    assert "out of range" in result.stderr and "nothing was applied" in result.stderr
    assert "unexpected error" not in result.stderr and "Traceback" not in result.stderr
    assert scores(postgres_dsn, guild) == before


def test_a_partial_write_that_fails_leaves_no_reject_file(postgres_dsn: str, guild: int, tmp_path: Path) -> None:
    """Rejects are put in place only once the good lines are committed: a write undone leaves none, so no
    reject file ever speaks of a write that did not happen."""
    assert run(postgres_dsn, "scores", "apply", "-", stdin=line(guild, "100", "9e1000") + "\n").returncode == 0
    before = scores(postgres_dsn, guild)
    feed = tmp_path / "feed.jsonl"
    feed.write_text(line(guild, "999", 1) + "\n" + line(guild, "100", "9e1000", mode="add") + "\n")
    result = run(postgres_dsn, "scores", "apply", str(feed), "--partial")
    assert result.returncode == 1 and "out of range" in result.stderr, result.stderr
    assert not Path(f"{feed}.rejects.jsonl").exists()
    assert not [p for p in tmp_path.iterdir() if "rejects" in p.name]  # nor a part of one
    assert scores(postgres_dsn, guild) == before


def test_the_reject_file_cannot_be_the_file_applied(postgres_dsn: str, guild: int, tmp_path: Path) -> None:
    feed = tmp_path / "feed.jsonl"
    text = line(guild, "100", 1) + "\n" + line(guild, "999", 1) + "\n"
    feed.write_text(text)
    result = run(postgres_dsn, "scores", "apply", str(feed), "--partial", "--rejects", str(feed))
    assert result.returncode == 1 and "cannot be the file applied" in result.stderr, result.stderr
    assert feed.read_text() == text
