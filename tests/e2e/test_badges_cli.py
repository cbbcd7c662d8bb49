"""`sietch badges award|revoke`: one line per change, said the same whether or not it changed anything;
an unknown type, guild or member exits 1 and writes nothing."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from tests.e2e.test_scores_cli import run

WALLET = "0x" + "0" * 39 + "1"


def held(dsn: str, guild: int) -> list[tuple[int, str, bool, str | None]]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT p.discord_user_id, b.badge_type, b.revoked_at IS NULL, b.reason FROM badges b"
            " JOIN profiles p USING (profile_id) WHERE b.community_id = %s ORDER BY 1, 2",
            (guild,),
        ).fetchall()
    return [(r[0], r[1], r[2], r[3]) for r in rows]


@pytest.fixture
def guild(postgres_dsn: str, new_guild_id: int, tmp_path: Path) -> int:
    members = tmp_path / "members.csv"
    members.write_text("discord_user_id,wallet_address,conviction\n100,0x" + "0" * 40 + ",10\n101," + WALLET + ",5\n")
    assert run(postgres_dsn, "import", str(new_guild_id), str(members), "--name", "Arrakis").returncode == 0
    return new_guild_id


def test_award_and_revoke_say_what_they_did_or_that_nothing_changed(postgres_dsn: str, guild: int) -> None:
    said = []
    for args in (
        ("award", str(guild), "100", "water_sharer", "--reason", "shared water"),
        ("award", str(guild), "100", "water_sharer"),
        ("award", str(guild), WALLET, "og"),
        ("revoke", str(guild), WALLET, "og"),
        ("revoke", str(guild), WALLET, "og"),
    ):
        result = run(postgres_dsn, "badges", *args)
        assert result.returncode == 0, result.stderr
        said.append(result.stdout.strip())
    assert said == [
        "awarded water_sharer to 100",
        "100 already holds water_sharer",
        f"awarded og to {WALLET}",
        f"revoked og from {WALLET}",
        f"{WALLET} does not hold og",
    ]
    assert held(postgres_dsn, guild) == [(100, "water_sharer", True, "shared water"), (101, "og", False, None)]


def test_unknown_type_guild_or_member_exits_1_and_writes_nothing(postgres_dsn: str, guild: int) -> None:
    for args, message in (
        (("award", str(guild), "100", "founder"), "unknown badge type 'founder'"),
        (("award", str(guild + 1), "100", "og"), f"guild {guild + 1} is not a configured community"),
        (("award", str(guild), "999", "og"), f"member 999 is not a member of guild {guild}"),
        (("award", str(guild), "100", "og", "--reason", "x" * 201), "at most 200 characters"),
    ):
        result = run(postgres_dsn, "badges", *args)
        assert result.returncode == 1, result.stdout
        assert message in result.stderr
    assert held(postgres_dsn, guild) == []
