"""`sietch scores apply [FILE|-]`: a JSON Lines file of score updates (see `bot.feed.items`) through the
feed's one path.

The file is read twice, line by line, so its size does not matter: a first pass checks every line (JSON,
fields, and that its member belongs to its guild) and reports each bad one with its number; then, if
nothing is wrong (or with `--partial`, leaving the bad lines out and writing them to a reject file), a
second pass writes every good line in one transaction: the file lands whole or not at all (its updates
are staged first, so the guild's other writers wait only for the final set-wise apply: see
`backends.postgres.score_writes`). A line that turns bad between the passes (a member removed meanwhile)
rolls the whole write back. Standard input is spooled to a temporary file first.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backends.protocol import InvalidInput, ScoreUpdate
from bot.app.app import App
from bot.cli.errors import CliError
from bot.cli.member_csv import count_lines
from bot.cli.progress import ProgressBar
from bot.feed.apply import BATCH, ItemProblem, ScoreFeed
from bot.feed.items import FeedItem, FeedItemError, loads, parse_item

MAX_KEPT = 100  # problems kept and printed by line; the rest are counted
MAX_PRINTED = 20


def add_parser(sub: Any) -> None:
    scores = sub.add_parser("scores", help="score updates: apply a JSON Lines feed")
    verbs = scores.add_subparsers(required=True, metavar="ACTION")
    apply = verbs.add_parser(
        "apply",
        help="apply a JSON Lines file of score updates, whole or not at all",
        description="One JSON object per line: guild, member (Discord id or 0x wallet), board, value,"
        " mode (set|add, default set), event_type, optional tx_hash and at (ISO 8601).",
    )
    apply.add_argument("file", nargs="?", default="-", help="the file, or - for standard input (the default)")
    apply.add_argument(
        "--partial", action="store_true", help="apply the good lines and write the bad ones to a reject file"
    )
    apply.add_argument("--rejects", type=Path, help="the reject file (default: FILE.rejects.jsonl, or rejects.jsonl)")
    apply.set_defaults(handler=cmd_apply)


@dataclass
class Checked:
    problems: list[ItemProblem] = field(default_factory=list)
    problem_count: int = 0
    bad_lines: set[int] = field(default_factory=set)
    good: int = 0
    digest: Any = field(default_factory=hashlib.sha256)  # of every byte the check read

    def add(self, problem: ItemProblem) -> None:
        self.problem_count += 1
        self.bad_lines.add(problem.index)
        if len(self.problems) < MAX_KEPT:
            self.problems.append(problem)

    def report(self) -> str:
        shown = "\n".join(
            f"  line {p.index}: {p.message}" for p in sorted(self.problems, key=lambda p: p.index)[:MAX_PRINTED]
        )
        hidden = self.problem_count - min(len(self.problems), MAX_PRINTED)
        return shown + (f"\n  ... and {hidden} more" if hidden > 0 else "")


async def cmd_apply(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    with _readable(args.file) as path:
        rejects = args.rejects or (Path(f"{args.file}.rejects.jsonl") if args.file != "-" else Path("rejects.jsonl"))
        async with App.open(settings) as app:
            feed = ScoreFeed(app.ingest, app.writer)
            total = count_lines(path)
            checked = await _check(feed, path, total)
            if checked.problem_count and not args.partial:
                raise CliError(
                    f"{args.file}: {checked.problem_count} bad line(s), nothing was applied:\n{checked.report()}"
                )
            if checked.problem_count:
                _write_rejects(path, rejects, checked.bad_lines)
                print(
                    f"{checked.problem_count} bad line(s) left out and written to {rejects}:\n{checked.report()}",
                    file=sys.stderr,
                )
            bar = ProgressBar(total, "applying")
            try:
                versions = await feed.write(_updates(feed, path, checked, bar))
            except InvalidInput as exc:  # e.g. an add that takes a score out of range: the transaction is undone
                raise CliError(f"{args.file}: {exc}; nothing was applied") from None
            bar.close()
            guilds = ", ".join(f"{g} (score version {v})" for g, v in sorted(versions.items())) or "none"
            print(f"{checked.good} update(s) applied in one transaction; guilds: {guilds}")


@contextmanager
def _readable(name: str) -> Iterator[Path]:
    if name != "-":
        path = Path(name)
        if not path.is_file():
            raise CliError(f"{name}: no such file")
        yield path
        return
    with tempfile.NamedTemporaryFile("wb", suffix=".jsonl") as spool:
        shutil.copyfileobj(sys.stdin.buffer, spool)
        spool.flush()
        yield Path(spool.name)


def _lines(path: Path, digest: Any = None) -> Iterator[tuple[int, str]]:
    """(number, text) of each line that is not blank; `digest` (a hashlib object) is fed every byte read."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, 1):
            if digest is not None:
                digest.update(raw)
            try:
                text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                yield number, f"\0not UTF-8 text ({exc.reason})"
                continue
            if text.strip():
                yield number, text


def _parsed(path: Path, skip: set[int], digest: Any = None) -> Iterator[tuple[int, FeedItem | str]]:
    """(line, item) or (line, the problem), blank and skipped lines left out."""
    for number, text in _lines(path, digest):
        if number in skip:
            continue
        if text.startswith("\0"):
            yield number, text[1:]
            continue
        try:
            yield number, parse_item(loads(text))
        except FeedItemError as exc:
            yield number, str(exc)
        except (ValueError, RecursionError) as exc:  # RecursionError: nesting deeper than any update has
            yield number, f"not a JSON object: {exc}"[:300]


def _chunks(path: Path, skip: set[int], digest: Any = None) -> Iterator[list[tuple[int, FeedItem | str]]]:
    chunk: list[tuple[int, FeedItem | str]] = []
    for entry in _parsed(path, skip, digest):
        chunk.append(entry)
        if len(chunk) == BATCH:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


async def _check(feed: ScoreFeed, path: Path, total: int) -> Checked:
    checked = Checked()
    bar = ProgressBar(total, "checking")
    for chunk in _chunks(path, set(), checked.digest):
        for number, entry in chunk:
            if isinstance(entry, str):
                checked.add(ItemProblem(number, entry))
        for guild, items in _by_guild(chunk).items():
            updates, unknown = await feed.resolve(guild, items)
            checked.good += len(updates)
            for problem in unknown:
                checked.add(problem)
        bar.moved_to(chunk[-1][0], total)
    bar.close()
    return checked


async def _updates(
    feed: ScoreFeed, path: Path, checked: Checked, bar: ProgressBar
) -> AsyncIterator[tuple[int, list[ScoreUpdate]]]:
    """The checked file's updates, read again; raising undoes the whole write (one transaction)."""
    digest = hashlib.sha256()
    for chunk in _chunks(path, checked.bad_lines, digest):
        bad = [f"line {n}: {e}" for n, e in chunk if isinstance(e, str)]
        for guild, items in _by_guild(chunk).items():
            updates, unknown = await feed.resolve(guild, items)
            bad += [f"line {p.index}: {p.message}" for p in unknown]
            if bad:
                raise CliError(
                    f"the file changed meaning while it was applied, nothing was applied: {'; '.join(bad[:5])}"
                )
            yield guild, updates
        bar.moved_to(chunk[-1][0], bar.total)
    if digest.digest() != checked.digest.digest():
        raise CliError("the file changed after it was checked, nothing was applied: apply it again once it is whole")


def _by_guild(chunk: list[tuple[int, FeedItem | str]]) -> dict[int, list[tuple[int, FeedItem]]]:
    """The chunk's good items by guild, each guild's in line order."""
    groups: dict[int, list[tuple[int, FeedItem]]] = {}
    for number, entry in chunk:
        if not isinstance(entry, str):
            groups.setdefault(entry.guild, []).append((number, entry))
    return groups


def _write_rejects(path: Path, rejects: Path, bad: set[int]) -> None:
    with path.open("rb") as source, rejects.open("wb") as out:
        for number, raw in enumerate(source, 1):
            if number in bad:
                out.write(raw if raw.endswith(b"\n") else raw + b"\n")
