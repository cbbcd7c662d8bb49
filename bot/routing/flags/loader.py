"""Reads and validates `config/flags.yaml` into a `FlagFile`; any mistake rejects the whole file."""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection
from os import PathLike

import yaml

from bot.routing.flags.errors import FlagFileError, FlagProblem
from bot.routing.flags.fields import read_backend, read_bool, read_choice, read_int, read_rate
from bot.routing.flags.model import (
    DEFAULT_TIME_BUDGET_MS,
    AutoRollbackPolicy,
    CommandFlags,
    FlagFile,
    FrozenMapping,
    Stickiness,
    WritesMode,
)
from bot.routing.flags.yamltree import (
    INT_TAG,
    STR_TAG,
    Pair,
    Report,
    compose_document,
    describe,
    is_null,
    line_of,
    mapping_pairs,
)

# Far more than any real flag file; a bigger one is a mistake (a log pasted in) and slows every reload.
MAX_BYTES = 64 * 1024

TOP_KEYS = ("default_backend", "writes", "kill", "time_budget_ms", "auto_rollback", "commands")
ROLLBACK_KEYS = ("error_rate", "mismatch_rate", "min_volume", "window_seconds")
COMMAND_KEYS = ("backend", "rollout", "stickiness", "guilds", "fallback", "shadow")
WRITES_MODES = ("postgres", "dual")
STICKINESS = ("community", "user")

# Discord snowflakes are positive and fit a signed 64-bit integer. The text form is checked, not the
# value YAML made of it, because YAML 1.1 reads `0123` as octal and `1_000` as 1000.
_GUILD_ID = re.compile(r"[1-9][0-9]{0,18}")
_GUILD_ID_LIMIT = 2**63


def load_flags(path: str | PathLike[str], *, backends: Collection[str], commands: Collection[str]) -> FlagFile:
    """The validated flag file at `path`; raises FlagFileError naming every problem (or why it cannot be read)."""
    source = str(path)
    try:
        with open(path, "rb") as file:
            data = file.read(MAX_BYTES + 1)
    except OSError as exc:
        raise FlagFileError(source, [FlagProblem(0, f"cannot read: {exc.strerror or exc}")]) from exc
    if len(data) > MAX_BYTES:
        raise FlagFileError(source, [_too_large(f"more than {MAX_BYTES} bytes")])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        problem = FlagProblem(line, f"not UTF-8 text: byte {data[exc.start]:#04x} cannot be decoded")
        raise FlagFileError(source, [problem]) from None
    return parse_flags(text, source=source, backends=backends, commands=commands)


def parse_flags(text: str, *, source: str, backends: Collection[str], commands: Collection[str]) -> FlagFile:
    """The validated flag file in `text`; `source` names it in messages (`{source}:{line}: {problem}`).

    `backends` are the configured backend names, `commands` the command names that can be routed.
    """
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_BYTES:
        raise FlagFileError(source, [_too_large(f"{size} bytes")])
    report = Report()
    root = compose_document(text, report)
    flags = None
    if root is None and not report.problems:
        report.add(1, "the file is empty: it needs at least `default_backend: <backend>`")
    elif root is not None:
        flags = _FileReader(report, backends, commands).read(root)
    if flags is None or report.problems:
        raise FlagFileError(source, report.problems)
    return flags


def _too_large(size: str) -> FlagProblem:
    return FlagProblem(0, f"too large: {size}; a flag file may hold at most {MAX_BYTES} bytes (64 KiB)")


class _FileReader:
    """Walks the node tree once, reporting every problem; builds the FlagFile only when there were none."""

    def __init__(self, report: Report, backends: Collection[str], commands: Collection[str]) -> None:
        self.report = report
        self.backends = backends
        self.commands = commands

    def read(self, root: yaml.Node) -> FlagFile | None:
        if not isinstance(root, yaml.MappingNode):
            self.report.add(
                root, f"the file must be a mapping such as `default_backend: postgres`, not {describe(root)}"
            )
            return None
        entries = self._entries(root, "", TOP_KEYS) or {}
        default = None
        if "default_backend" in entries:
            default = read_backend(entries["default_backend"].value, "default_backend", self.report, self.backends)
        else:
            configured = ", ".join(sorted(self.backends))
            self.report.add(root, f"default_backend is missing: it names who serves unrouted commands ({configured})")
        writes = None
        if "writes" in entries:
            writes = _writes_mode(read_choice(entries["writes"].value, "writes", self.report, WRITES_MODES))
        kill = self._kill(entries["kill"].value, default) if "kill" in entries else ()
        budget = DEFAULT_TIME_BUDGET_MS
        if "time_budget_ms" in entries:
            node = entries["time_budget_ms"].value
            budget = _or(read_int(node, "time_budget_ms", self.report, low=50, high=2500), budget)
        rollback = self._auto_rollback(entries["auto_rollback"].value) if "auto_rollback" in entries else None
        commands = self._commands(entries["commands"].value) if "commands" in entries else None
        if default is None or self.report.problems:
            return None
        return FlagFile(
            default_backend=default,
            writes=writes,
            kill=kill,
            time_budget_ms=budget,
            auto_rollback=rollback or AutoRollbackPolicy(),
            commands=commands or FrozenMapping(),
        )

    def _entries(
        self, node: yaml.Node, path: str, allowed: Collection[str], noun: str = "key"
    ) -> dict[str, Pair] | None:
        """The mapping's entries by name, reporting unknown and duplicate names; None if it is not a mapping.

        An empty value (`auto_rollback:` with every line below commented out) counts as an empty mapping.
        """
        if is_null(node):
            return {}
        if not isinstance(node, yaml.MappingNode):
            self.report.add(node, f"{path} must be a mapping of {noun}s, not {describe(node)}")
            return None
        where = f"in {path}" if path else "at the top level"
        found: dict[str, Pair] = {}
        for pair in mapping_pairs(node, path or "the top level", self.report):
            if not isinstance(pair.key, yaml.ScalarNode):
                self.report.add(pair.key, f"{noun}s {where} must be plain names, not {describe(pair.key)}")
                continue
            name = str(pair.key.value)
            if name in found:
                if not pair.merged:
                    first = line_of(found[name].key)
                    self.report.add(pair.key, f"duplicate {noun} {name!r} {where} (first at line {first})")
                continue
            if name not in allowed:
                self.report.add(pair.key, f"unknown {noun} {name!r} {where}{_suggest(name, allowed, noun)}")
                continue
            found[name] = pair
        return found

    def _kill(self, node: yaml.Node, default: str | None) -> tuple[str, ...]:
        if is_null(node):
            return ()
        if not isinstance(node, yaml.SequenceNode):
            self.report.add(node, f"kill must be a list of backend names such as [scylla], not {describe(node)}")
            return ()
        killed: list[str] = []
        for item in node.value:
            name = read_backend(item, "an entry of kill", self.report, self.backends)
            if name is not None and name == default:
                self.report.add(item, f"kill switches off {name!r}, the default_backend: nothing would serve commands")
            elif name is not None and name not in killed:
                killed.append(name)
        return tuple(killed)

    def _auto_rollback(self, node: yaml.Node) -> AutoRollbackPolicy | None:
        entries = self._entries(node, "auto_rollback", ROLLBACK_KEYS)
        if not entries:
            return None
        values = AutoRollbackPolicy()
        error_rate, mismatch_rate = values.error_rate, values.mismatch_rate
        min_volume, window = values.min_volume, values.window_seconds
        report = self.report
        if "error_rate" in entries:
            error_rate = _or(read_rate(entries["error_rate"].value, "auto_rollback.error_rate", report), error_rate)
        if "mismatch_rate" in entries:
            node = entries["mismatch_rate"].value
            mismatch_rate = _or(read_rate(node, "auto_rollback.mismatch_rate", report), mismatch_rate)
        if "min_volume" in entries:
            node = entries["min_volume"].value
            min_volume = _or(read_int(node, "auto_rollback.min_volume", report, low=1), min_volume)
        if "window_seconds" in entries:
            node = entries["window_seconds"].value
            window = _or(read_int(node, "auto_rollback.window_seconds", report, low=10), window)
        return AutoRollbackPolicy(error_rate, mismatch_rate, min_volume, window)

    def _commands(self, node: yaml.Node) -> FrozenMapping[str, CommandFlags] | None:
        entries = self._entries(node, "commands", self.commands, noun="command")
        if entries is None:
            return None
        parsed = {name: self._command(pair.value, f"commands.{name}") for name, pair in entries.items()}
        return FrozenMapping((name, flags) for name, flags in parsed.items() if flags is not None)

    def _command(self, node: yaml.Node, path: str) -> CommandFlags | None:
        entries = self._entries(node, path, COMMAND_KEYS)
        if entries is None:
            return None
        report = self.report
        backend = None
        if "backend" in entries:
            backend = read_backend(entries["backend"].value, f"{path}.backend", report, self.backends)
        # A listed backend with no rollout takes every key; with no backend, nothing is rolled out.
        rollout = 100 if "backend" in entries else 0
        if "rollout" in entries:
            rollout = _or(read_int(entries["rollout"].value, f"{path}.rollout", report, low=0, high=100), 0)
            if "backend" not in entries:
                report.add(entries["rollout"].key, f"{path}.rollout needs {path}.backend, the rollout's target")
        stickiness: Stickiness = "community"
        if "stickiness" in entries:
            stickiness = _stickiness(read_choice(entries["stickiness"].value, f"{path}.stickiness", report, STICKINESS))
        guilds = self._guilds(entries["guilds"].value, f"{path}.guilds") if "guilds" in entries else FrozenMapping()
        fallback = True
        if "fallback" in entries:
            fallback = _or(read_bool(entries["fallback"].value, f"{path}.fallback", report), True)
        shadow = 0
        if "shadow" in entries:
            shadow = _or(read_int(entries["shadow"].value, f"{path}.shadow", report, low=0, high=100), 0)
        return CommandFlags(backend, rollout, stickiness, guilds, fallback, shadow)

    def _guilds(self, node: yaml.Node, path: str) -> FrozenMapping[int, str]:
        if is_null(node):
            return FrozenMapping()
        if not isinstance(node, yaml.MappingNode):
            example = '{"123456789012345678": scylla}'
            self.report.add(node, f"{path} must map guild ids to backends, such as {example}, not {describe(node)}")
            return FrozenMapping()
        found: dict[int, Pair] = {}
        overrides: dict[int, str] = {}
        for pair in mapping_pairs(node, path, self.report):
            guild = _guild_id(pair.key)
            if guild is None:
                self.report.add(
                    pair.key, f"{path}: {describe(pair.key)} is not a guild id (a positive whole number below 2**63)"
                )
                continue
            if guild in found:
                if not pair.merged:
                    first = line_of(found[guild].key)
                    self.report.add(pair.key, f"{path}: guild {guild} is listed twice (first at line {first})")
                continue
            found[guild] = pair
            backend = read_backend(pair.value, f"{path}.{guild}", self.report, self.backends)
            if backend is not None:
                overrides[guild] = backend
        return FrozenMapping(overrides)


def _guild_id(key: yaml.Node) -> int | None:
    if not isinstance(key, yaml.ScalarNode) or key.tag not in (INT_TAG, STR_TAG):
        return None
    text = str(key.value)
    if not _GUILD_ID.fullmatch(text) or int(text) >= _GUILD_ID_LIMIT:
        return None
    return int(text)


def _writes_mode(value: str | None) -> WritesMode | None:
    match value:
        case "postgres":
            return "postgres"
        case "dual":
            return "dual"
    return None


def _stickiness(value: str | None) -> Stickiness:
    return "user" if value == "user" else "community"


def _or[T](value: T | None, default: T) -> T:
    """The value read, or the default when it was absent or wrong (a wrong one is already reported)."""
    return default if value is None else value


def _suggest(name: str, allowed: Collection[str], noun: str) -> str:
    """` (allowed keys: a, b); did you mean 'b'?` — the list always, the guess when one is close."""
    listed = f" (allowed {noun}s: {', '.join(allowed)})"
    close = difflib.get_close_matches(name, list(allowed), n=1)
    return f"{listed}; did you mean {close[0]!r}?" if close else listed
