"""Reads a members CSV for `sietch import`; every problem names its line, and a bad file imports nothing."""

from __future__ import annotations

import csv
import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path

from backends.postgres.community_writes import MemberRow
from backends.protocol import MAX_SCORE_EXPONENT as MAX_EXPONENT

COLUMNS = ("discord_user_id", "wallet_address", "nym", "joined_at", "conviction", "activity")
WALLET = re.compile(r"^0x[0-9a-f]{40}$")
MAX_NYM = 64
MAX_REPORTED = 20
ASCII_DIGITS = re.compile(r"[0-9]+")  # str.isdigit() and int() also take other scripts' digits
# Dates every store and Python round-trip, whatever the offset written with them.
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 12, 30, tzinfo=UTC)


@dataclass(frozen=True)
class CsvProblem:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


class MemberCsvError(Exception):
    def __init__(self, path: Path, problems: list[CsvProblem]) -> None:
        self.problems = problems
        shown = "\n".join(f"  {p}" for p in problems[:MAX_REPORTED])
        more = f"\n  ... and {len(problems) - MAX_REPORTED} more" if len(problems) > MAX_REPORTED else ""
        super().__init__(f"{path}: {len(problems)} problem(s), nothing was imported:\n{shown}{more}")


def read_members(path: Path) -> list[MemberRow]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            return _parse(path, csv.reader(handle))
    except UnicodeDecodeError as exc:
        raise MemberCsvError(path, [CsvProblem(0, f"not UTF-8 text ({exc.reason})")]) from exc
    except csv.Error as exc:
        raise MemberCsvError(path, [CsvProblem(0, f"not a CSV file ({exc})")]) from exc


def _parse(path: Path, reader: csv.Reader) -> list[MemberRow]:  # type: ignore[name-defined]  # typeshed names csv._reader only
    header = next(reader, None)
    if header is None:
        raise MemberCsvError(path, [CsvProblem(1, "the file is empty; expected a header line")])
    names = [h.strip().lower() for h in header]
    problems = [CsvProblem(1, f"unknown column {n!r} (known: {', '.join(COLUMNS)})") for n in names if n not in COLUMNS]
    if "conviction" not in names:
        problems.append(CsvProblem(1, "a 'conviction' column is required"))
    if "discord_user_id" not in names and "wallet_address" not in names:
        problems.append(CsvProblem(1, "a 'discord_user_id' or 'wallet_address' column is required"))
    if len(set(names)) != len(names):
        problems.append(CsvProblem(1, "a column is named twice"))
    if problems:
        raise MemberCsvError(path, problems)

    rows: list[MemberRow] = []
    first_seen: dict[tuple[str, object], int] = {}
    for values in reader:
        line = reader.line_num
        if not any(v.strip() for v in values):
            continue
        if len(values) != len(names):
            problems.append(CsvProblem(line, f"expected {len(names)} fields, found {len(values)}"))
            continue
        row, errors = _row(dict(zip(names, (v.strip() for v in values), strict=True)), line)
        problems.extend(CsvProblem(line, e) for e in errors)
        if row is None:
            continue
        for key in (("discord_user_id", row.discord_user_id), ("wallet_address", row.wallet_address)):
            if key[1] is None:
                continue
            if key in first_seen:
                problems.append(CsvProblem(line, f"{key[0]} {key[1]} already appears on line {first_seen[key]}"))
            else:
                first_seen[key] = line
        rows.append(row)
    if problems:
        raise MemberCsvError(path, problems)
    return rows


def _row(fields: dict[str, str], line: int) -> tuple[MemberRow | None, list[str]]:
    errors: list[str] = []
    user_id: int | None = None
    if fields.get("discord_user_id"):
        raw = fields["discord_user_id"]
        if ASCII_DIGITS.fullmatch(raw) and 0 < int(raw) < 2**63:
            user_id = int(raw)
        else:
            errors.append(f"discord_user_id {raw!r} is not a Discord user id")
    wallet = fields.get("wallet_address", "").lower() or None
    if wallet is not None and not WALLET.match(wallet):
        errors.append(f"wallet_address {fields['wallet_address']!r} is not a 0x-prefixed 40-hex-digit address")
    if user_id is None and wallet is None and not errors:
        errors.append("a member needs a discord_user_id or a wallet_address")
    nym = fields.get("nym") or None
    if nym is not None and len(nym) > MAX_NYM:
        errors.append(f"nym is longer than {MAX_NYM} characters")
    if nym is not None and any(unicodedata.category(c) == "Cc" for c in nym):
        errors.append("nym contains a control character (a NUL, a tab, a line break...)")
    conviction = _decimal(fields.get("conviction", ""), "conviction", errors, required=True)
    activity = _decimal(fields.get("activity", ""), "activity", errors, required=False)
    joined_at = datetime.now(UTC)
    if fields.get("joined_at"):
        try:
            joined_at = datetime.fromisoformat(fields["joined_at"])
        except ValueError:
            errors.append(f"joined_at {fields['joined_at']!r} is not an ISO 8601 date and time")
        else:
            if joined_at.tzinfo is None:
                joined_at = joined_at.replace(tzinfo=UTC)
            try:
                joined_at = joined_at.astimezone(UTC)
            except OverflowError:
                joined_at = EARLIEST - timedelta(days=1)
            if not EARLIEST <= joined_at <= LATEST:
                errors.append(
                    f"joined_at {fields['joined_at']!r} is outside {EARLIEST:%Y-%m-%d} to {LATEST:%Y-%m-%d} (UTC)"
                )
    if errors:
        return None, errors
    return MemberRow(user_id, wallet, nym, joined_at, conviction, activity, line), []


def _decimal(raw: str, name: str, errors: list[str], *, required: bool) -> Decimal:
    if not raw:
        if required:
            errors.append(f"{name} is empty")
        return Decimal(0)
    try:
        value = Decimal(raw)
    except InvalidOperation:
        errors.append(f"{name} {raw!r} is not a number")
        return Decimal(0)
    if not value.is_finite():
        errors.append(f"{name} {raw!r} is not a finite number")
        return Decimal(0)
    if value and not -MAX_EXPONENT <= value.adjusted() <= MAX_EXPONENT:
        errors.append(f"{name} {raw!r} is out of range (at most {MAX_EXPONENT} digits before or after the point)")
        return Decimal(0)
    return value
