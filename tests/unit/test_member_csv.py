"""The members CSV reader: good files parse, every bad row is named by its line."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from bot.cli.member_csv import MemberCsvError, read_members

WALLET = "0x" + "ab" * 20


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "members.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_good_file_parses(tmp_path: Path) -> None:
    rows = read_members(
        write(
            tmp_path,
            (
                "discord_user_id,wallet_address,nym,joined_at,conviction,activity\n"
                f"123,{WALLET.upper().replace('0X', '0x')},Stilgar,2024-01-02T03:04:05+00:00,1234.5,7\n"
                "456,,,2024-01-03,0,\n"
            ),
        )
    )
    assert [r.discord_user_id for r in rows] == [123, 456]
    assert rows[0].wallet_address == WALLET and rows[0].conviction == Decimal("1234.5")
    assert rows[1].nym is None and rows[1].activity == 0 and rows[1].joined_at.tzinfo is not None


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("discord_user_id,conviction\nabc,5\n", "line 2: discord_user_id 'abc' is not a Discord user id"),
        ("discord_user_id,conviction\n1,lots\n", "line 2: conviction 'lots' is not a number"),
        ("discord_user_id,conviction\n1,NaN\n", "line 2: conviction 'NaN' is not a finite number"),
        ("discord_user_id,conviction\n1,5\n2\n", "line 3: expected 2 fields, found 1"),
        ("discord_user_id,conviction\n1,5\n1,6\n", "line 3: discord_user_id 1 already appears on line 2"),
        ("wallet_address,conviction\n0x12,5\n", "line 2: wallet_address '0x12' is not a 0x-prefixed"),
        (
            "discord_user_id,conviction,joined_at\n1,5,yesterday\n",
            "line 2: joined_at 'yesterday' is not an ISO",
        ),
        ("discord_user_id,conviction\n1,\n", "line 2: conviction is empty"),
        ("discord_user_id,score\n1,5\n", "line 1: unknown column 'score'"),
        ("nym,conviction\nx,5\n", "line 1: a 'discord_user_id' or 'wallet_address' column is required"),
        ("", "line 1: the file is empty"),
    ],
)
def test_bad_rows_are_named_by_line(tmp_path: Path, body: str, expected: str) -> None:
    with pytest.raises(MemberCsvError) as caught:
        read_members(write(tmp_path, body))
    assert expected in str(caught.value)
    assert "nothing was imported" in str(caught.value)


def test_every_problem_is_reported_not_just_the_first(tmp_path: Path) -> None:
    with pytest.raises(MemberCsvError) as caught:
        read_members(write(tmp_path, "discord_user_id,conviction\nx,1\n2,y\n3,4\n"))
    assert [p.line for p in caught.value.problems] == [2, 3]


def test_binary_files_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "members.csv"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(MemberCsvError, match="not UTF-8"):
        read_members(path)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("discord_user_id,conviction\n١٢٣,5\n", "line 2: discord_user_id '١٢٣' is not a Discord user id"),
        ("discord_user_id,conviction\n0,5\n", "line 2: discord_user_id '0' is not a Discord user id"),
        ("discord_user_id,conviction\n9223372036854775808,5\n", "is not a Discord user id"),
        (
            "discord_user_id,joined_at,conviction\n1,0001-01-01T00:00+01:00,5\n",
            "line 2: joined_at '0001-01-01T00:00+01:00' is outside 1900-01-01 to 9999-12-30 (UTC)",
        ),
        (
            "discord_user_id,joined_at,conviction\n1,9999-12-31T23:59:59-01:00,5\n",
            "line 2: joined_at '9999-12-31T23:59:59-01:00' is outside",
        ),
        ("discord_user_id,nym,conviction\n1,a\x00b,5\n", "line 2: nym contains a control character"),
        ("discord_user_id,conviction\n1,1e5000\n", "line 2: conviction '1e5000' is out of range"),
        (
            "discord_user_id,conviction\n1,1e99999999999999999999999\n",
            "line 2: conviction '1e99999999999999999999999' is out",
        ),
        ("discord_user_id,conviction\n1,1e-1001\n", "line 2: conviction '1e-1001' is out of range"),
        ("discord_user_id,conviction\n1,٥\n", "line 2: conviction '٥' is not a plain decimal"),  # Arabic-Indic 5
        ("discord_user_id,conviction\n1, 5 \n", "line 2: conviction ' 5 ' is not a plain decimal"),
        ("discord_user_id,conviction\n1,1_000\n", "line 2: conviction '1_000' is not a plain decimal"),
        ("discord_user_id,conviction,activity\n1,5,Infinity\n", "line 2: activity 'Infinity' is not a finite number"),
    ],
)
def test_input_no_store_can_keep_is_refused_with_its_line(tmp_path: Path, body: str, expected: str) -> None:
    with pytest.raises(MemberCsvError) as caught:
        read_members(write(tmp_path, body))
    assert expected in str(caught.value)


def test_offsets_are_kept_as_the_same_moment_in_utc(tmp_path: Path) -> None:
    (row,) = read_members(write(tmp_path, "discord_user_id,joined_at,conviction\n1,2024-01-01T01:00+01:00,5\n"))
    assert row.joined_at.isoformat() == "2024-01-01T00:00:00+00:00"


def test_wei_sized_scores_are_read_exactly(tmp_path: Path) -> None:
    (row,) = read_members(
        write(tmp_path, "discord_user_id,conviction\n1,123456789012345678901234567890.123456789012345678\n")
    )
    assert str(row.conviction) == "123456789012345678901234567890.123456789012345678"
