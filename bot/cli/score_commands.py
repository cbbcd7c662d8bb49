"""`sietch scores apply [FILE|-]`: a JSON Lines file of score updates (see `bot.feed.items`) through the
feed's one path.

The file is read once, line by line, so its size does not matter (its lines are counted first, for the
progress bar): every line is checked (JSON, fields, and that its member belongs to its guild) and its
update staged inside one transaction as it is read.
Each bad line is reported with its number, and the transaction is undone at the end unless nothing was
wrong (or, with `--partial`, the bad lines are left out and written to a reject file as they are met):
the file lands whole or not at all, exactly as it was read (see `backends.postgres.score_writes`: a
guild's file is applied a chunk at a time while it is read, and the HTTP door's requests meanwhile are
held). A member removed while the file is read, before the write has the guild, rolls the whole write
back; once it has the guild, the removal waits for its commit. Standard input is spooled to a temporary
file first.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

from backends.protocol import InvalidInput, ScoreUpdate
from bot.app.app import App
from bot.cli.errors import CliError
from bot.cli.member_csv import count_lines
from bot.cli.progress import ProgressBar
from bot.feed.apply import BATCH, ItemProblem, MemberDirectory, ScoreFeed
from bot.feed.items import FeedItem, FeedItemError, loads, parse_item

MAX_KEPT = 100  # problems kept and printed by line; the rest are counted
MAX_PRINTED = 20
# Members a file named, remembered for its later lines; past this many the others are looked up each time.
MAX_REMEMBERED = 250_000


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
    good: int = 0

    def add(self, problem: ItemProblem) -> None:
        self.problem_count += 1
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
        if args.partial and rejects.resolve() == path.resolve():
            raise CliError(f"{rejects}: the reject file cannot be the file applied")
        async with App.open(settings) as app:
            feed = ScoreFeed(_Remembered(app.ingest), app.writer)
            total = count_lines(path)
            checked = Checked()
            bar = ProgressBar(total, "applying")
            with _Rejects(rejects if args.partial else None) as kept:
                try:
                    versions = await feed.write(_updates(feed, path, checked, bar, kept))
                except InvalidInput as exc:  # e.g. an add that takes a score out of range: the transaction is undone
                    raise CliError(f"{args.file}: {exc}; nothing was applied") from None
                except _BadLines:
                    raise CliError(
                        f"{args.file}: {checked.problem_count} bad line(s), nothing was applied:\n{checked.report()}"
                    ) from None
                kept.commit()
            bar.close()
            if checked.problem_count:
                print(
                    f"{checked.problem_count} bad line(s) left out and written to {rejects}:\n{checked.report()}",
                    file=sys.stderr,
                )
            guilds = ", ".join(f"{g} (score version {v})" for g, v in sorted(versions.items())) or "none"
            print(f"{checked.good} update(s) applied in one transaction; guilds: {guilds}")


class _Remembered:
    """The member directory, remembering the members a file named for its later lines: an airdrop or a
    balance snapshot names each member many times, and their lookups were a sixth of reading a file.

    Only members found are remembered. One removed meanwhile is still refused: the write checks that
    every member it names belongs to the guild (`backends.postgres.score_writes`)."""

    def __init__(self, directory: MemberDirectory) -> None:
        self.directory = directory
        self._users: dict[tuple[int, int], UUID] = {}
        self._wallets: dict[tuple[int, str], UUID] = {}

    async def token_matches(self, community_id: int, token: str) -> bool:
        return await self.directory.token_matches(community_id, token)

    async def take_request(self, community_id: int, per_minute: int) -> float:
        return await self.directory.take_request(community_id, per_minute)

    async def members(
        self, community_id: int, user_ids: Iterable[int], wallets: Iterable[str]
    ) -> tuple[dict[int, UUID], dict[str, UUID]]:
        named_users, named_wallets = set(user_ids), set(wallets)
        by_user = {u: p for u in named_users if (p := self._users.get((community_id, u))) is not None}
        by_wallet = {w: p for w in named_wallets if (p := self._wallets.get((community_id, w))) is not None}
        users, addresses = named_users - by_user.keys(), named_wallets - by_wallet.keys()
        if users or addresses:
            found_users, found_wallets = await self.directory.members(community_id, users, addresses)
            by_user |= found_users
            by_wallet |= found_wallets
            if len(self._users) + len(self._wallets) < MAX_REMEMBERED:
                self._users.update(((community_id, u), p) for u, p in found_users.items())
                self._wallets.update(((community_id, w), p) for w, p in found_wallets.items())
        return by_user, by_wallet


class _BadLines(Exception):
    """Raised at the end of the stream when a bad line was met without `--partial`: the write is undone."""


class _Rejects:
    """The reject file (never, without `--partial`): written beside it as bad lines are met, and put in its
    place only once the good lines are committed (`commit`), so a write that fails leaves none."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._part = path.with_name(f".{path.name}.part") if path is not None else None
        self._out: Any = None

    def __enter__(self) -> _Rejects:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._out is not None:
            self._out.close()
        if self._part is not None:
            self._part.unlink(missing_ok=True)

    def keep(self, raw: bytes) -> None:
        if self._part is None:
            return
        if self._out is None:
            self._out = self._part.open("wb")
        self._out.write(raw if raw.endswith(b"\n") else raw + b"\n")

    def commit(self) -> None:
        if self._out is not None and self.path is not None and self._part is not None:
            self._out.close()
            self._out = None
            self._part.replace(self.path)


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


def _lines(path: Path) -> Iterator[tuple[int, bytes, str]]:
    """(number, bytes, text) of each line that is not blank; text starting with NUL names a line that is
    not UTF-8."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, 1):
            try:
                text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                yield number, raw, f"\0not UTF-8 text ({exc.reason})"
                continue
            if text.strip():
                yield number, raw, text


Entry = tuple[int, bytes, FeedItem | str]  # a line's number, its bytes, and its item or its problem


def _parsed(path: Path) -> Iterator[Entry]:
    for number, raw, text in _lines(path):
        if text.startswith("\0"):
            yield number, raw, text[1:]
            continue
        try:
            yield number, raw, parse_item(loads(text))
        except FeedItemError as exc:
            yield number, raw, str(exc)
        except (ValueError, RecursionError) as exc:  # RecursionError: nesting deeper than any update has
            yield number, raw, f"not a JSON object: {exc}"[:300]


def _chunks(path: Path) -> Iterator[list[Entry]]:
    chunk: list[Entry] = []
    for entry in _parsed(path):
        chunk.append(entry)
        if len(chunk) == BATCH:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


async def _updates(
    feed: ScoreFeed, path: Path, checked: Checked, bar: ProgressBar, rejects: _Rejects
) -> AsyncIterator[tuple[int, list[ScoreUpdate]]]:
    """The file's good updates by guild, read once; a bad line is counted (and kept as a reject). Once one
    is met without `--partial` nothing more is staged, every line is still checked, and the stream ends by
    raising `_BadLines`, which undoes the write."""
    partial = rejects.path is not None
    for chunk in _chunks(path):
        bad = {n: raw for n, raw, entry in chunk if isinstance(entry, str)}
        for number, _, entry in chunk:
            if isinstance(entry, str):
                checked.add(ItemProblem(number, entry))
        for guild, items in _by_guild(chunk).items():
            updates, unknown = await feed.resolve(guild, [(n, item) for n, _, item in items])
            lines = {n: raw for n, raw, _ in items}
            for problem in unknown:
                checked.add(problem)
                bad[problem.index] = lines[problem.index]
            checked.good += len(updates)
            if updates and (partial or not checked.problem_count):
                yield guild, updates
        for number in sorted(bad):
            rejects.keep(bad[number])
        bar.moved_to(chunk[-1][0], bar.total)
    if checked.problem_count and not partial:
        raise _BadLines()


def _by_guild(chunk: list[Entry]) -> dict[int, list[tuple[int, bytes, FeedItem]]]:
    """The chunk's good items by guild, each guild's in line order."""
    groups: dict[int, list[tuple[int, bytes, FeedItem]]] = {}
    for number, raw, entry in chunk:
        if not isinstance(entry, str):
            groups.setdefault(entry.guild, []).append((number, raw, entry))
    return groups
