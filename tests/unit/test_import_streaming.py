"""The members CSV as a stream: rows come out while the file is still being read, memory does not grow
with the file, and a file of many bad lines keeps the first ones and counts the rest."""

from __future__ import annotations

import inspect
import os
import threading
import tracemalloc
from pathlib import Path

import pytest

from bot.cli.member_csv import MAX_KEPT, MAX_REPORTED, CsvProblem, MemberCsv, MemberCsvError, count_lines

HEADER = "discord_user_id,wallet_address,nym,joined_at,conviction,activity\n"


def member_line(i: int) -> str:
    return f"{1000 + i},0x{i:040x},Member{i},2024-01-02T03:04:05+00:00,{i}.{i % 10000:04d},{i % 500}\n"


def write_members(path: Path, count: int) -> Path:
    with path.open("w", encoding="utf-8") as out:
        out.write(HEADER)
        for i in range(count):
            out.write(member_line(i))
    return path


def test_rows_is_a_generator_that_reads_a_line_at_a_time(tmp_path: Path) -> None:
    reader = MemberCsv(write_members(tmp_path / "members.csv", 5000))
    assert inspect.isgenerator(MemberCsv(reader.path).rows())
    rows = reader.rows()
    first = next(rows)
    assert (first.line, first.discord_user_id, reader.rows_read) == (2, 1000, 1)
    assert sum(1 for _ in rows) == 4999 and reader.rows_read == 5000
    reader.check()  # a good file: nothing to raise


def test_a_row_comes_out_before_the_rest_of_the_file_is_written(tmp_path: Path) -> None:
    """Read from a pipe whose writer holds back the rest of the file until the first row is out: a reader
    that wanted the whole file first would only get it once the writer gives up waiting."""
    fifo = tmp_path / "members.csv"
    os.mkfifo(fifo)
    first_row_out = threading.Event()
    waited_in_vain: list[bool] = []

    def writer() -> None:
        with fifo.open("w", encoding="utf-8") as out:
            out.write(HEADER + member_line(0))
            out.flush()
            waited_in_vain.append(not first_row_out.wait(timeout=10))
            for i in range(1, 100):
                out.write(member_line(i))

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        rows = MemberCsv(fifo).rows()
        assert next(rows).discord_user_id == 1000
        first_row_out.set()
        assert sum(1 for _ in rows) == 99
    finally:
        first_row_out.set()
        thread.join()
    assert waited_in_vain == [False]


def test_memory_does_not_grow_with_the_file(tmp_path: Path) -> None:
    """10,000 rows held at once take about 8 MiB; read as a stream, the peak stays under one."""
    path = write_members(tmp_path / "members.csv", 10_000)
    reader = MemberCsv(path)
    tracemalloc.start()
    try:
        count = sum(1 for _ in reader.rows())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 10_000
    assert peak < 2**20, f"peak {peak / 2**20:.1f} MiB while streaming"


def test_progress_counts_the_lines_after_the_header(tmp_path: Path) -> None:
    path = write_members(tmp_path / "members.csv", 2500)
    seen: list[int] = []
    assert sum(1 for _ in MemberCsv(path, progress=seen.append).rows()) == 2500
    assert sum(seen) == 2500 == count_lines(path) - 1 and max(seen) <= 1000


@pytest.mark.parametrize(("text", "lines"), [("", 0), ("a\n", 1), ("a\nb", 2), ("a\r\nb\r\n", 2)])
def test_count_lines_counts_a_last_line_without_a_break(tmp_path: Path, text: str, lines: int) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes(text.encode())
    assert count_lines(path) == lines


def test_many_bad_lines_keep_the_first_and_count_every_one(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("discord_user_id,conviction\n" + "".join(f"{i + 1},lots\n" for i in range(5000)))
    reader = MemberCsv(path)
    assert list(reader.rows()) == []
    with pytest.raises(MemberCsvError) as caught:
        reader.check()
    error = caught.value
    assert error.total == 5000 and len(error.problems) == MAX_KEPT
    assert [p.line for p in error.problems] == list(range(2, 2 + MAX_KEPT))
    message = str(error)
    assert message.count("conviction 'lots' is not a number") == MAX_REPORTED
    assert "5000 problem(s), nothing was imported" in message
    assert f"... and {5000 - MAX_REPORTED} more" in message


def test_problems_found_across_rows_join_the_file_s_own_in_line_order(tmp_path: Path) -> None:
    path = tmp_path / "mixed.csv"
    path.write_text("discord_user_id,conviction\n1,5\nx,5\n2,5\n3,5\n4,y\n")
    reader = MemberCsv(path)
    assert [r.line for r in reader.rows()] == [2, 4, 5]
    across = [CsvProblem(4, "from elsewhere"), CsvProblem(5, "also")]
    with pytest.raises(MemberCsvError) as caught:
        reader.check(across, more_total=7)
    assert [p.line for p in caught.value.problems] == [3, 4, 5, 6]
    assert caught.value.total == 9


def test_a_file_that_is_not_text_stops_at_once_when_streamed(tmp_path: Path) -> None:
    path = tmp_path / "members.csv"
    path.write_bytes(b"discord_user_id,conviction\n1,5\n\xff\xfe\x00garbage\n")
    with pytest.raises(MemberCsvError, match="not UTF-8"):
        list(MemberCsv(path).rows())
