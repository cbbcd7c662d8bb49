"""`sietch import` streams the file into one transaction: rows reach the database while the file is still
being read, every bad line of a large file is named (repeats found in SQL included), and then nothing
is written; a good file lands whole."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from backends.members import MemberRow
from backends.postgres.community_writes import CommunityWrites
from backends.protocol import Community, InvalidInput
from bot.app.settings import load_settings
from bot.cli.community_commands import import_file
from bot.cli.member_csv import MAX_KEPT, MemberCsv, MemberCsvError

SETTINGS = Path(__file__).parents[2] / "config" / "settings.yaml"
HEADER = "discord_user_id,wallet_address,nym,conviction,activity\n"


def settings(dsn: str) -> dict[str, Any]:
    return load_settings(SETTINGS, {"SIETCH_POSTGRES_DSN": dsn, "SIETCH_METRICS_PORT": "0"})


def wallet(i: int) -> str:
    return f"0x{i:040x}"


def members_file(path: Path, count: int, replace: dict[int, str] | None = None) -> Path:
    """`count` good members, one a line from line 2; `replace` swaps in other text at given lines."""
    replace = replace or {}
    with path.open("w", encoding="utf-8") as out:
        out.write(HEADER)
        for line in range(2, count + 2):
            out.write(replace.get(line, f"{10_000 + line},{wallet(line)},m{line},{line}.5,{line % 7}") + "\n")
    return path


def count_members(dsn: str, guild: int) -> tuple[int, bool]:
    with psycopg.connect(dsn) as conn:
        members = conn.execute("SELECT count(*) FROM profiles WHERE community_id = %s", (guild,)).fetchone()
        community = conn.execute("SELECT 1 FROM communities WHERE community_id = %s", (guild,)).fetchone()
    assert members is not None
    return int(members[0]), community is not None


async def test_a_large_file_names_every_bad_line_and_writes_nothing(
    postgres_dsn: str, tmp_path: Path, new_guild_id: int
) -> None:
    bad = {
        2: "abc,,,5,1",  # the first row
        12_345: f"20000,{wallet(12_345)},x,lots,1",
        19_999: f"10010,{wallet(19_999)},x,5,1",  # line 10's Discord id
        20_000: f"777,{wallet(11)},x,5,1",  # line 11's wallet
        20_001: f"10012,{wallet(12)},x,5,1",  # line 12's Discord id and wallet
        30_001: "1,2",  # the last row
    }
    path = members_file(tmp_path / "members.csv", 30_000, bad)
    with pytest.raises(MemberCsvError) as caught:
        await import_file(settings(postgres_dsn), new_guild_id, path, "Arrakis")
    assert [str(p) for p in caught.value.problems] == [
        "line 2: discord_user_id 'abc' is not a Discord user id",
        "line 12345: conviction 'lots' is not a number",
        "line 19999: discord_user_id 10010 already appears on line 10",
        "line 20000: wallet_address 0x000000000000000000000000000000000000000b already appears on line 11",
        "line 20001: discord_user_id 10012 already appears on line 12",
        f"line 20001: wallet_address {wallet(12)} already appears on line 12",
        "line 30001: expected 5 fields, found 2",
    ]
    assert "7 problem(s), nothing was imported" in str(caught.value)
    assert count_members(postgres_dsn, new_guild_id) == (0, False)  # not even the community


async def test_repeats_past_the_kept_ones_are_counted(postgres_dsn: str, tmp_path: Path, new_guild_id: int) -> None:
    # Lines 2002..3001 repeat the Discord ids of lines 2..1001: 1000 repeats, the first MAX_KEPT named.
    repeats = {line: f"{10_000 + line - 2000},{wallet(line)},m,1,1" for line in range(2002, 3002)}
    path = members_file(tmp_path / "members.csv", 3000, repeats)
    with pytest.raises(MemberCsvError) as caught:
        await import_file(settings(postgres_dsn), new_guild_id, path, None)
    assert caught.value.total == 1000 and len(caught.value.problems) == MAX_KEPT
    assert [p.line for p in caught.value.problems] == list(range(2002, 2002 + MAX_KEPT))
    assert caught.value.problems[0].message == "discord_user_id 10002 already appears on line 2"
    assert "1000 problem(s)" in str(caught.value) and "... and 980 more" in str(caught.value)
    assert count_members(postgres_dsn, new_guild_id) == (0, False)


async def test_a_good_file_lands_whole(
    postgres_dsn: str, tmp_path: Path, new_guild_id: int, capsys: pytest.CaptureFixture[str]
) -> None:
    path = members_file(tmp_path / "members.csv", 12_000)
    assert await import_file(settings(postgres_dsn), new_guild_id, path, "Arrakis") == 12_000
    out, err = capsys.readouterr()
    assert f"12000 member(s) imported into guild {new_guild_id}" in out
    assert "importing [" in err and "12000/12000" in err
    assert count_members(postgres_dsn, new_guild_id) == (12_000, True)
    with psycopg.connect(postgres_dsn) as conn:
        row = conn.execute(
            "SELECT p.discord_user_id, p.wallet_address, p.nym, s.conviction, s.activity FROM profiles p"
            " JOIN scores s USING (profile_id) WHERE p.community_id = %s AND p.discord_user_id = %s",
            (new_guild_id, 10_000 + 6_000),
        ).fetchone()
    assert row is not None and row[1:3] == (wallet(6_000), "m6000") and str(row[3]) == "6000.5" and row[4] == 6000 % 7


async def test_rows_reach_the_database_while_the_file_is_still_being_read(
    pool: AsyncConnectionPool[Any], postgres_dsn: str, tmp_path: Path, new_guild_id: int
) -> None:
    """Half-way through the file, the COPY has already taken rows: the import never waits for the whole file."""
    path = members_file(tmp_path / "members.csv", 20_000)
    reader = MemberCsv(path)
    taken_half_way: list[int] = []

    def watched() -> Iterator[MemberRow]:
        for row in reader.rows():
            if reader.rows_read == 10_000:
                taken_half_way.append(_copied_so_far(postgres_dsn))
            yield row

    imported = await CommunityWrites(pool).import_member_stream(
        new_guild_id, watched(), create=Community(new_guild_id), staged=lambda repeats, total: reader.check()
    )
    assert imported == 20_000 and count_members(postgres_dsn, new_guild_id) == (20_000, True)
    assert taken_half_way and 0 < taken_half_way[0] < 20_000


def _copied_so_far(dsn: str) -> int:
    """Rows a COPY in progress has taken, seen from another connection (the server keeps reading the socket
    while the import's own event loop is held here)."""
    deadline = time.monotonic() + 10
    with psycopg.connect(dsn, autocommit=True) as conn:
        while True:
            row = conn.execute(
                "SELECT max(tuples_processed) FROM pg_stat_progress_copy"
                " WHERE datname = current_database() AND command = 'COPY FROM'"
            ).fetchone()
            taken = int(row[0]) if row and row[0] is not None else 0
            if taken or time.monotonic() > deadline:
                return taken
            time.sleep(0.05)


async def test_a_streamed_import_without_a_check_refuses_repeats_itself(
    pool: AsyncConnectionPool[Any], postgres_dsn: str, new_guild_id: int
) -> None:
    rows = [MemberRow(discord_user_id=5, conviction=1, line=2), MemberRow(discord_user_id=5, conviction=2, line=3)]  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="line 3: discord_user_id 5 already appears on line 2"):
        await CommunityWrites(pool).import_member_stream(new_guild_id, iter(rows), create=Community(new_guild_id))
    assert count_members(postgres_dsn, new_guild_id) == (0, False)


async def test_a_streamed_import_names_conflicts_with_the_database_by_line(
    pool: AsyncConnectionPool[Any], new_guild_id: int
) -> None:
    writes = CommunityWrites(pool)
    first = [MemberRow(discord_user_id=1, wallet_address=wallet(1), line=2)]
    await writes.import_member_stream(new_guild_id, iter(first), create=Community(new_guild_id))
    # line 7 claims member 1's wallet for another Discord account
    second = [MemberRow(discord_user_id=3, line=5), MemberRow(discord_user_id=2, wallet_address=wallet(1), line=7)]
    with pytest.raises(InvalidInput, match=f"line 7: wallet {wallet(1)} belongs to Discord user 1"):
        await writes.import_member_stream(new_guild_id, iter(second))
