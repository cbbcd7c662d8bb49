"""Reads a members CSV for `sietch import` as a stream: rows come out as their lines are read, so a file of
any size is read in constant memory. Every problem names its line, and a bad file imports nothing."""

from __future__ import annotations

import csv
import heapq
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TypeVar

from backends.members import MemberRow
from bot.domain import inputs

COLUMNS = ("discord_user_id", "wallet_address", "nym", "joined_at", "conviction", "activity")
SCORE_COLUMNS = ("conviction", "activity")  # read as written: a score with spaces is refused
MAX_NYM = 64
MAX_REPORTED = 20  # problems printed; the rest are counted ("... and N more")
MAX_KEPT = 100  # problems kept (the first by line); a file of a million bad lines is only counted past these
PROGRESS_LINES = 1000  # lines between two progress callbacks
T = TypeVar("T")


@dataclass(frozen=True)
class CsvProblem:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


class MemberCsvError(Exception):
    """`problems` are the first problems by line (at most MAX_KEPT); `total` counts every one."""

    def __init__(self, path: Path, problems: list[CsvProblem], total: int | None = None) -> None:
        self.problems = problems
        self.total = len(problems) if total is None else total
        shown = "\n".join(f"  {p}" for p in problems[:MAX_REPORTED])
        hidden = self.total - min(len(problems), MAX_REPORTED)
        more = f"\n  ... and {hidden} more" if hidden > 0 else ""
        super().__init__(f"{path}: {self.total} problem(s), nothing was imported:\n{shown}{more}")


def repeated(column: str, value: object, first_line: int) -> str:
    """The problem of a row whose Discord id or wallet an earlier row already has."""
    return f"{column} {value} already appears on line {first_line}"


class MemberCsv:
    """A members file read lazily.

    `rows()` is a generator: it reads the file line by line and yields each good row as soon as its line
    is read, never holding the file. Problems met on the way are counted and the first MAX_KEPT kept;
    `check()` raises them (with any the caller found across rows) once the caller has read everything.
    A file that cannot be read at all (no header, an unknown column, not UTF-8, not CSV) raises from
    `rows()` at once. `progress(lines)` is called every PROGRESS_LINES lines with the lines read since.
    """

    def __init__(self, path: Path, progress: Callable[[int], None] | None = None) -> None:
        self.path = path
        self.problems: list[CsvProblem] = []
        self.problem_count = 0
        self.rows_read = 0
        self._progress = progress

    def rows(self) -> Iterator[MemberRow]:
        try:
            with self.path.open(newline="", encoding="utf-8-sig") as handle:
                yield from self._parse(csv.reader(handle))
        except UnicodeDecodeError as exc:
            raise MemberCsvError(self.path, [CsvProblem(0, f"not UTF-8 text ({exc.reason})")]) from exc
        except csv.Error as exc:
            raise MemberCsvError(self.path, [CsvProblem(0, f"not a CSV file ({exc})")]) from exc

    def check(self, more: Sequence[CsvProblem] = (), more_total: int | None = None) -> None:
        """Raise `MemberCsvError` if the file or `more` (problems found across rows, sorted by line, of
        `more_total` in all) has any problem."""
        total = self.problem_count + (len(more) if more_total is None else more_total)
        if total:
            merged = list(heapq.merge(self.problems, more, key=lambda p: p.line))[:MAX_KEPT]
            raise MemberCsvError(self.path, merged, total)

    def _problem(self, line: int, message: str) -> None:
        self.problem_count += 1
        if len(self.problems) < MAX_KEPT:
            self.problems.append(CsvProblem(line, message))

    def _parse(self, reader: csv.Reader) -> Iterator[MemberRow]:  # type: ignore[name-defined]  # typeshed names csv._reader only
        header = next(reader, None)
        if header is None:
            raise MemberCsvError(self.path, [CsvProblem(1, "the file is empty; expected a header line")])
        names = [h.strip().lower() for h in header]
        problems = [
            CsvProblem(1, f"unknown column {n!r} (known: {', '.join(COLUMNS)})") for n in names if n not in COLUMNS
        ]
        if "conviction" not in names:
            problems.append(CsvProblem(1, "a 'conviction' column is required"))
        if "discord_user_id" not in names and "wallet_address" not in names:
            problems.append(CsvProblem(1, "a 'discord_user_id' or 'wallet_address' column is required"))
        if len(set(names)) != len(names):
            problems.append(CsvProblem(1, "a column is named twice"))
        if problems:
            raise MemberCsvError(self.path, problems)

        reported = reader.line_num
        for values in reader:
            line = reader.line_num
            if self._progress and line - reported >= PROGRESS_LINES:
                self._progress(line - reported)
                reported = line
            if not any(v.strip() for v in values):
                continue
            if len(values) != len(names):
                self._problem(line, f"expected {len(names)} fields, found {len(values)}")
                continue
            # Scores are checked as written (inputs.score refuses spaces); every other cell is trimmed.
            cells = {n: v if n in SCORE_COLUMNS else v.strip() for n, v in zip(names, values, strict=True)}
            row, errors = _row(cells, line)
            for error in errors:
                self._problem(line, error)
            if row is not None:
                self.rows_read += 1
                yield row
        if self._progress and reader.line_num > reported:
            self._progress(reader.line_num - reported)


def read_members(path: Path) -> list[MemberRow]:
    """The whole file as a list, for small files: the same checks as a streamed import, rows that repeat an
    earlier row's Discord id or wallet included (found here, in memory)."""
    reader = MemberCsv(path)
    rows = list(reader.rows())
    reader.check(_repeats(rows))
    return rows


def _repeats(rows: Sequence[MemberRow]) -> list[CsvProblem]:
    first_seen: dict[tuple[str, object], int] = {}
    problems = []
    for row in rows:
        assert row.line is not None
        for key in (("discord_user_id", row.discord_user_id), ("wallet_address", row.wallet_address)):
            if key[1] is None:
                continue
            if key in first_seen:
                problems.append(CsvProblem(row.line, repeated(key[0], key[1], first_seen[key])))
            else:
                first_seen[key] = row.line
    return problems


def count_lines(path: Path) -> int:
    """The lines in a file (a last line without a line break counts), read in blocks: for progress totals."""
    lines = 0
    last = b"\n"
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            lines += block.count(b"\n")
            last = block[-1:]
    return lines + (last != b"\n")


def _score_cell(raw: str | None) -> str | None:
    """A score cell as written, or None when it is empty or blank."""
    return raw if raw is not None and raw.strip() else None


def _row(fields: dict[str, str], line: int) -> tuple[MemberRow | None, list[str]]:
    errors: list[str] = []

    def checked(check: Callable[[], T], default: T) -> T:
        try:
            return check()
        except ValueError as exc:
            errors.append(str(exc))
            return default

    raw_id = fields.get("discord_user_id")
    user_id = checked(lambda: inputs.discord_id(raw_id), None) if raw_id else None
    raw_wallet = fields.get("wallet_address")
    wallet = checked(lambda: inputs.wallet(raw_wallet), None) if raw_wallet else None
    if user_id is None and wallet is None and not errors:
        errors.append("a member needs a discord_user_id or a wallet_address")
    nym = fields.get("nym") or None
    if nym is not None and len(nym) > MAX_NYM:
        errors.append(f"nym is longer than {MAX_NYM} characters")
    if nym is not None and any(unicodedata.category(c) == "Cc" for c in nym):
        errors.append("nym contains a control character (a NUL, a tab, a line break...)")
    raw_conviction, raw_activity = _score_cell(fields.get("conviction")), _score_cell(fields.get("activity"))
    if raw_conviction is None:
        errors.append("conviction is empty")
    conviction = checked(lambda: inputs.score(raw_conviction or "0", "conviction"), Decimal(0))
    activity = checked(lambda: inputs.score(raw_activity or "0", "activity"), Decimal(0))
    joined_at = datetime.now(UTC)
    if fields.get("joined_at"):
        joined_at = checked(lambda: inputs.instant(fields["joined_at"], "joined_at"), joined_at)
    if errors:
        return None, errors
    return MemberRow(user_id, wallet, nym, joined_at, conviction, activity, line), []
