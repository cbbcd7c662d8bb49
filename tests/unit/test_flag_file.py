"""The flag file: good files, change descriptions, and 270+ broken files each rejected with line and reason."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from bot.routing.flags import (
    MAX_BYTES,
    AutoRollbackPolicy,
    CommandFlags,
    FlagFile,
    FlagFileError,
    describe_changes,
    load_flags,
    parse_flags,
)

HERE = Path(__file__).parent
GOOD = (HERE / "flag_files" / "good.yaml").read_text(encoding="utf-8")
SHIPPED = HERE.parents[1] / "config" / "flags.yaml"
BACKENDS = ("postgres", "scylla")
COMMANDS = ("position", "threshold", "leaderboard", "naib")
SOURCE = "flags.yaml"


def parse(text: str) -> FlagFile:
    return parse_flags(text, source=SOURCE, backends=BACKENDS, commands=COMMANDS)


def rejected(text: str) -> FlagFileError:
    """The FlagFileError for `text`, checked for shape; fails if the file is accepted or anything else escapes."""
    try:
        parse(text)
    except FlagFileError as exc:
        assert exc.problems, "a rejection must name at least one problem"
        assert all(problem.line >= 1 for problem in exc.problems), exc.problems
        assert str(exc).splitlines() == [f"{SOURCE}:{p.line}: {p.message}" for p in exc.problems]
        return exc
    except Exception as exc:  # the point of the test: nothing but FlagFileError may escape
        pytest.fail(f"{type(exc).__name__} escaped instead of FlagFileError: {exc}")
    pytest.fail(f"accepted a broken file:\n{text}")


def assert_problem(error: FlagFileError, line: int, fragment: str) -> None:
    found = any(problem.line == line and fragment in problem.message for problem in error.problems)
    assert found, f"no problem at line {line} containing {fragment!r} in:\n{error}"


# ---------------------------------------------------------------------------------------------- good files


def test_good_file_parses_to_the_expected_values() -> None:
    assert parse(GOOD) == FlagFile(
        default_backend="postgres",
        writes="dual",
        kill=("scylla",),
        time_budget_ms=1200,
        auto_rollback=AutoRollbackPolicy(error_rate=0.25, mismatch_rate=0.1, min_volume=20, window_seconds=120),
        commands={
            "position": CommandFlags(
                backend="scylla",
                rollout=25,
                stickiness="user",
                guilds={123456789012345678: "scylla", 42: "postgres"},
                fallback=False,
                shadow=10,
            ),
            "threshold": CommandFlags(backend="scylla", rollout=100),
            "leaderboard": CommandFlags(backend="postgres", rollout=100),
        },
    )


def test_only_default_backend_gives_every_default() -> None:
    flags = parse("default_backend: scylla\n")
    assert flags == FlagFile.default("scylla")
    assert flags.writes is None and flags.kill == () and flags.time_budget_ms == 1500
    assert flags.auto_rollback == AutoRollbackPolicy(
        error_rate=0.2, mismatch_rate=0.05, min_volume=50, window_seconds=300
    )


def test_a_command_not_listed_is_served_by_the_default_backend() -> None:
    flags = parse("default_backend: postgres\ncommands:\n  position: {backend: scylla}\n")
    assert flags.for_command("leaderboard") == CommandFlags(backend=None, rollout=0)
    assert flags.for_command("position") == CommandFlags(backend="scylla", rollout=100)


def test_empty_sections_count_as_empty() -> None:
    flags = parse("default_backend: postgres\nkill:\nauto_rollback:\ncommands:\n  # position: {}\n")
    assert flags == FlagFile.default("postgres")


def test_a_zero_rate_is_kept_not_replaced_by_the_default() -> None:
    flags = parse("default_backend: postgres\nauto_rollback: {error_rate: 0, mismatch_rate: 0.0}\n")
    assert (flags.auto_rollback.error_rate, flags.auto_rollback.mismatch_rate) == (0.0, 0.0)


def test_anchors_and_merge_keys_are_accepted() -> None:
    text = (
        "default_backend: postgres\n"
        "commands:\n"
        "  position: &on_scylla {backend: scylla, rollout: 10, shadow: 5}\n"
        "  threshold:\n"
        "    <<: *on_scylla\n"
        "    rollout: 50\n"
    )
    flags = parse(text)
    assert flags.for_command("threshold") == CommandFlags(backend="scylla", rollout=50, shadow=5)


def test_guild_ids_may_be_quoted_or_not() -> None:
    flags = parse('default_backend: postgres\ncommands:\n  position:\n    guilds: {"7": scylla, 8: postgres}\n')
    assert dict(flags.for_command("position").guilds) == {7: "scylla", 8: "postgres"}


def test_parsed_flags_are_immutable_and_hashable() -> None:
    flags = parse(GOOD)
    with pytest.raises(dataclasses.FrozenInstanceError):
        flags.default_backend = "scylla"  # type: ignore[misc]
    with pytest.raises(TypeError):
        flags.for_command("position").guilds[1] = "scylla"  # type: ignore[index]
    assert hash(flags) == hash(parse(GOOD))


def test_values_built_by_hand_are_frozen_too() -> None:
    flags = FlagFile("postgres", kill=["scylla"], commands={"position": CommandFlags(guilds={1: "scylla"})})  # type: ignore[arg-type]
    assert flags.kill == ("scylla",)
    assert hash(flags) == hash(
        FlagFile("postgres", kill=("scylla",), commands={"position": CommandFlags(guilds={1: "scylla"})})
    )


def test_shipped_file_routes_everything_to_postgres_even_without_scylla() -> None:
    flags = load_flags(SHIPPED, backends=("postgres",), commands=COMMANDS)
    assert flags.default_backend == "postgres" and flags.kill == ()
    assert {flags.for_command(name).backend for name in COMMANDS} == {"postgres"}


def test_every_problem_in_a_file_is_reported_at_once() -> None:
    text = "default_backend: mysql\nwrites: triple\ncommands:\n  rank: {}\n  position: {rollout: 200}\n"
    error = rejected(text)
    assert [problem.line for problem in error.problems] == [1, 2, 4, 5, 5]


# ---------------------------------------------------------------------------------------------- changes


def test_no_change_describes_nothing() -> None:
    assert describe_changes(parse(GOOD), parse(GOOD)) == []


def test_changes_are_described_one_leaf_per_line() -> None:
    old = parse("default_backend: postgres\ncommands:\n  position: {backend: scylla, rollout: 10}\n")
    new = parse(
        "default_backend: postgres\nwrites: dual\nkill: [scylla]\nauto_rollback: {error_rate: 0.5}\n"
        "commands:\n"
        "  position: {backend: scylla, rollout: 25, fallback: false, guilds: {123: scylla}}\n"
        "  threshold: {backend: scylla, rollout: 100}\n"
    )
    assert describe_changes(old, new) == [
        "writes: (none) -> dual",
        "kill: [] -> ['scylla']",
        "auto_rollback.error_rate: 0.2 -> 0.5",
        "commands.position.rollout: 10 -> 25",
        "commands.position.fallback: true -> false",
        "commands.position.guilds.123: (none) -> scylla",
        "commands.threshold: added",
        "commands.threshold.backend: (none) -> scylla",
        "commands.threshold.rollout: 0 -> 100",
    ]


def test_a_removed_command_goes_back_to_the_defaults() -> None:
    old = parse("default_backend: postgres\ncommands:\n  leaderboard: {backend: scylla, guilds: {5: postgres}}\n")
    assert describe_changes(old, parse("default_backend: postgres\n")) == [
        "commands.leaderboard: removed",
        "commands.leaderboard.backend: scylla -> (none)",
        "commands.leaderboard.rollout: 100 -> 0",
        "commands.leaderboard.guilds.5: postgres -> (none)",
    ]


# ---------------------------------------------------------------------------------------------- broken files

P = "default_backend: postgres\n"
C = P + "commands:\n  position:\n    backend: scylla\n"  # a command's keys go on line 5


def bad(case_id: str, text: str, line: int, fragment: str) -> object:
    return pytest.param(text, line, fragment, id=case_id)


HAND_WRITTEN = [
    # YAML syntax
    bad("tab-indentation", P + "commands:\n\tposition: {}\n", 3, "found character '\\t'"),
    bad("unclosed-flow-list", P + "kill: [scylla\n", 3, "not valid YAML: while parsing a flow sequence"),
    bad("colon-inside-a-value", P + "writes: dual: yes\n", 2, "mapping values are not allowed here"),
    bad("unclosed-quote", P + 'writes: "dual\n', 3, "found unexpected end of stream"),
    bad("two-documents", P + "---\n" + P, 2, "expected a single document"),
    bad("nul-character", P + "writes: du\x00al\n", 2, "U+0000 is not allowed"),
    bad("nested-too-deeply", "kill: " + "[" * 5000 + "]" * 5000 + "\n", 1, "nested too deeply"),
    bad("empty-file", "", 1, "the file is empty"),
    bad("only-comments", "# nothing here\n\n", 1, "the file is empty"),
    bad("top-level-list", "- default_backend: postgres\n", 1, "must be a mapping such as"),
    bad("top-level-text", "postgres\n", 1, "must be a mapping such as"),
    bad("non-text-key", P + "? [a, b]\n: 1\n", 2, "keys at the top level must be plain names"),
    # default_backend
    bad("default-backend-missing", "writes: dual\nkill: []\n", 1, "default_backend is missing"),
    bad("default-backend-unknown", "default_backend: mysql\n", 1, "not configured (configured: postgres, scylla)"),
    bad("default-backend-empty", "default_backend:\n", 1, "default_backend must be a backend name"),
    bad("default-backend-number", "default_backend: 5\n", 1, "default_backend must be a backend name"),
    bad("default-backend-capitalised", "default_backend: Postgres\n", 1, "names backend 'Postgres'"),
    bad("default-backend-typo", "default_backed: postgres\n", 1, "did you mean 'default_backend'"),
    # writes, kill, time budget
    bad("writes-unknown-mode", P + "writes: triple\n", 2, "writes must be dual or postgres, not the text 'triple'"),
    bad("writes-yes", P + "writes: yes\n", 2, "not the yes/no value 'yes'"),
    bad("writes-empty", P + "writes:\n", 2, "not an empty value"),
    bad("writes-date", P + "writes: 2024-01-01\n", 2, "not the timestamp value '2024-01-01'"),
    bad("writes-python-tag", P + "writes: !!python/object/apply:os.system [id]\n", 2, "writes must be dual or"),
    bad("kill-not-a-list", P + "kill: scylla\n", 2, "kill must be a list of backend names"),
    bad("kill-unknown-backend", P + "kill: [mysql]\n", 2, "'mysql', which is not configured"),
    bad("kill-the-default-backend", P + "kill:\n  - scylla\n  - postgres\n", 4, "nothing would serve"),
    bad("kill-nested-list", P + "kill: [[scylla]]\n", 2, "an entry of kill must be a backend name"),
    bad("time-budget-too-small", P + "time_budget_ms: 49\n", 2, "from 50 to 2500, not 49"),
    bad("time-budget-too-large", P + "time_budget_ms: 2501\n", 2, "from 50 to 2500, not 2501"),
    bad("time-budget-fraction", P + "time_budget_ms: 1500.5\n", 2, "whole number from 50 to 2500, not 1500.5"),
    bad("time-budget-quoted", P + 'time_budget_ms: "1500"\n', 2, "not the text '1500'"),
    # auto_rollback
    bad("auto-rollback-number", P + "auto_rollback: 5\n", 2, "auto_rollback must be a mapping"),
    bad("error-rate-above-1", P + "auto_rollback:\n  error_rate: 1.5\n", 3, "error_rate must be a fraction"),
    bad("mismatch-rate-negative", P + "auto_rollback: {mismatch_rate: -0.1}\n", 2, "mismatch_rate must be a fraction"),
    bad("error-rate-nan", P + "auto_rollback: {error_rate: .nan}\n", 2, "not .nan"),
    bad("min-volume-zero", P + "auto_rollback:\n  min_volume: 0\n", 3, "min_volume must be a whole number of at least"),
    bad("window-too-short", P + "auto_rollback:\n  window_seconds: 9\n", 3, "at least 10, not 9"),
    bad("auto-rollback-typo", P + "auto_rollback:\n  error_rat: 0.1\n", 3, "did you mean 'error_rate'"),
    # commands
    bad("commands-list", P + "commands: [position]\n", 2, "commands must be a mapping of commands"),
    bad("unknown-command", P + "commands:\n  rank: {}\n", 3, "unknown command 'rank' in commands (allowed commands:"),
    bad("yes-as-command", P + "commands:\n  yes: {}\n", 3, "unknown command 'yes'"),
    bad("command-as-text", P + "commands:\n  position: scylla\n", 3, "commands.position must be a mapping of keys"),
    bad("command-key-typo", C + "    rollot: 5\n", 5, "did you mean 'rollout'"),
    bad("backend-unknown", P + "commands:\n  threshold: {backend: redis}\n", 3, "backend names backend 'redis'"),
    bad("backend-list", P + "commands:\n  threshold: {backend: [scylla]}\n", 3, "must be a backend name"),
    bad("rollout-over-100", C + "    rollout: 101\n", 5, "rollout must be a whole number from 0 to 100, not 101"),
    bad("rollout-negative", C + "    rollout: -1\n", 5, "not -1"),
    bad("rollout-yes", C + "    rollout: yes\n", 5, "not the yes/no value 'yes'"),
    bad("rollout-true", C + "    rollout: true\n", 5, "not the yes/no value 'true'"),
    bad("rollout-fraction", C + "    rollout: 12.5\n", 5, "not 12.5"),
    bad("rollout-percent-sign", C + "    rollout: 25%\n", 5, "not the text '25%'"),
    bad("rollout-huge", C + "    rollout: " + "9" * 5000 + "\n", 5, "100, not " + "9" * 37 + "..."),
    bad("rollout-int-tag-on-text", C + "    rollout: !!int abc\n", 5, "rollout must be a whole number"),
    bad("rollout-without-backend", P + "commands:\n  position: {rollout: 10}\n", 3, "needs commands.position.backend"),
    bad("stickiness-guild", C + "    stickiness: guild\n", 5, "must be community or user, not the text 'guild'"),
    bad("shadow-over-100", C + "    shadow: 101\n", 5, "shadow must be a whole number from 0 to 100"),
    bad("shadow-true", C + "    shadow: true\n", 5, "not the yes/no value 'true'"),
    bad("fallback-quoted-yes", C + '    fallback: "yes"\n', 5, "fallback must be true or false, not the text 'yes'"),
    bad("fallback-number", C + "    fallback: 1\n", 5, "fallback must be true or false, not 1"),
    bad("fallback-bool-tag-on-text", C + "    fallback: !!bool maybe\n", 5, "fallback must be true or false"),
    # guild overrides
    bad("guilds-list", C + "    guilds: [123]\n", 5, "guilds must map guild ids to backends"),
    bad("guild-id-text", C + "    guilds: {abc: scylla}\n", 5, "the text 'abc' is not a guild id"),
    bad("guild-id-zero", C + "    guilds: {0: scylla}\n", 5, "0 is not a guild id"),
    bad("guild-id-negative", C + "    guilds: {-5: scylla}\n", 5, "-5 is not a guild id"),
    bad("guild-id-2-pow-63", C + "    guilds: {9223372036854775808: scylla}\n", 5, "is not a guild id"),
    bad("guild-id-leading-zero", C + '    guilds: {"0123": scylla}\n', 5, "the text '0123' is not a guild id"),
    bad("guild-id-fraction", C + "    guilds: {1.5: scylla}\n", 5, "1.5 is not a guild id"),
    bad("guild-backend-unknown", C + '    guilds: {"123": mysql}\n', 5, "guilds.123 names backend 'mysql'"),
    bad("guild-backend-empty", C + "    guilds:\n      123:\n", 6, "guilds.123 must be a backend name"),
    bad("guild-twice", C + '    guilds:\n      "123": scylla\n      123: postgres\n', 7, "guild 123 is listed twice"),
    # duplicate and unknown keys
    bad("duplicate-top-level-key", P + "kill: []\nkill: [scylla]\n", 3, "duplicate key 'kill' at the top level (first"),
    bad("duplicate-default-backend", P + "default_backend: scylla\n", 2, "duplicate key 'default_backend'"),
    bad("duplicate-command", P + "commands:\n  position: {}\n  position: {}\n", 4, "duplicate command 'position'"),
    bad("duplicate-command-key", C + "    backend: postgres\n", 5, "duplicate key 'backend' in commands.position"),
    bad("duplicate-rollback-key", P + "auto_rollback: {min_volume: 5, min_volume: 6}\n", 2, "key 'min_volume'"),
    bad("unknown-top-level-key", P + "defaults: {}\n", 2, "unknown key 'defaults' at the top level (allowed keys:"),
    # anchors and merges
    bad("merge-of-a-number", P + "commands:\n  position:\n    <<: 5\n", 4, "`<<` in commands.position must merge"),
    bad("merged-typo", P + "commands:\n  position: &a {rolout: 5}\n  threshold: {<<: *a}\n", 3, "'rolout'"),
    bad("alias-of-a-list-as-backend", P + "kill: &k [scylla]\ncommands:\n  position: {backend: *k}\n", 2, "a list"),
]


@pytest.mark.parametrize(("text", "line", "fragment"), HAND_WRITTEN)
def test_hand_written_broken_file_is_rejected(text: str, line: int, fragment: str) -> None:
    assert_problem(rejected(text), line, fragment)


# Generated from flag_files/good.yaml, whose default_backend is last so that any truncation is broken.
GOOD_LINES = GOOD.splitlines(keepends=True)
_KEY_LINE = re.compile(r'^(?P<indent> *)(?P<key>"[^"]*"|[^\s:#][^:#]*):(?P<value>.*)$')

# Wrong values per key path (`*`: any guild id); each must be reported on that key's line, naming the path.
WRONG_VALUES = {
    "writes": ["postgresql", "true", "[dual]", "~", "3"],
    "kill": ["scylla", "[mysql]", "[postgres]", "{a: 1}"],
    "time_budget_ms": ["49", "2501", "1200.5", "yes", '"1200"', "-1"],
    "auto_rollback.error_rate": ["1.5", "-0.1", ".nan", ".inf", "yes", "'0.2'"],
    "auto_rollback.mismatch_rate": ["2", "-1", "~"],
    "auto_rollback.min_volume": ["0", "1.5", "true"],
    "auto_rollback.window_seconds": ["9", "-300", "'300'"],
    "commands.position.backend": ["mysql", "Scylla", "[scylla]", "1", "~"],
    "commands.position.rollout": ["101", "-1", "12.5", "yes", "'25'", "~", "1000000000000000000000"],
    "commands.position.stickiness": ["guild", "true", "[user]"],
    "commands.position.guilds.*": ["mysql", "[scylla]", "~"],
    "commands.position.fallback": ["'no'", "1", "maybe", "~"],
    "commands.position.shadow": ["101", "-5", "0.5", "on"],
    "commands.threshold": ["7", "scylla", "[backend, scylla]"],
    "commands.leaderboard.backend": ["cassandra", "{name: scylla}"],
    "default_backend": ["mysql", "[postgres]", "~", "yes"],
}


def _key_lines() -> Iterator[tuple[int, str, str]]:
    """(line number, indent, key path) for every `key:` line of the good file."""
    parents: list[tuple[int, str]] = []
    for number, text in enumerate(GOOD_LINES, start=1):
        match = _KEY_LINE.match(text.rstrip("\n"))
        if not match:
            continue
        indent, key = len(match["indent"]), match["key"].strip('"')
        parents = [(level, name) for level, name in parents if level < indent]
        yield number, match["indent"], ".".join([name for _, name in parents] + [key])
        parents.append((indent, key))


def _generated() -> Iterator[object]:
    for number, indent, path in _key_lines():
        before, line = GOOD_LINES[: number - 1], GOOD_LINES[number - 1]
        after = GOOD_LINES[number:]
        unknown = f"{indent}zz_unknown: 1\n"
        yield pytest.param(
            "".join([*before, unknown, line, *after]), number, "zz_unknown", id=f"unknown-next-to-{path}"
        )
        yield pytest.param(
            "".join([*before, line, line, *after]), number + 1, f"(first at line {number})", id=f"duplicate-{path}"
        )
        pattern = re.sub(r"guilds\.[^.]+$", "guilds.*", path)
        for value in WRONG_VALUES.get(pattern, []):
            wrong = f"{indent}{line.strip().split(':')[0]}: {value}\n"
            yield pytest.param("".join([*before, wrong, *after]), number, path, id=f"wrong-{path}={value}")
    for count in range(len(GOOD_LINES)):
        yield pytest.param("".join(GOOD_LINES[:count]), None, "", id=f"truncated-after-line-{count}")
        cut = GOOD_LINES[count].rstrip("\n")
        yield pytest.param("".join(GOOD_LINES[:count]) + cut[: len(cut) // 2], None, "", id=f"cut-in-line-{count + 1}")
    yield pytest.param("".join(GOOD_LINES[:-1]), 3, "default_backend is missing", id="without-default-backend")


def _misindented() -> Iterator[object]:
    """The good file with one nested line shifted by a space; only the shifts YAML itself refuses."""
    for number, line in enumerate(GOOD_LINES, start=1):
        indent = len(line) - len(line.lstrip(" "))
        for shift in (1, -1):
            if indent == 0:
                continue
            text = "".join([*GOOD_LINES[: number - 1], " " * (indent + shift) + line.lstrip(" "), *GOOD_LINES[number:]])
            try:
                yaml.compose(text, Loader=yaml.SafeLoader)
            except yaml.YAMLError:
                yield pytest.param(text, number, id=f"line-{number}-shifted-{shift:+d}")


GENERATED = list(_generated())
MISINDENTED = list(_misindented())


@pytest.mark.parametrize(("text", "line", "fragment"), GENERATED)
def test_generated_broken_file_is_rejected(text: str, line: int | None, fragment: str) -> None:
    error = rejected(text)
    if line is not None:
        assert_problem(error, line, fragment)


@pytest.mark.parametrize(("text", "line"), MISINDENTED)
def test_misindented_line_is_reported_where_yaml_notices_it(text: str, line: int) -> None:
    """YAML notices a shifted line on it or at the next line it cannot fit, never earlier."""
    error = rejected(text)
    assert [problem.message.startswith("not valid YAML") for problem in error.problems] == [True]
    assert line <= error.problems[0].line <= len(GOOD_LINES)


def test_there_are_over_a_hundred_broken_files() -> None:
    assert len(HAND_WRITTEN) >= 40
    assert len(HAND_WRITTEN) + len(GENERATED) + len(MISINDENTED) + len(UNREADABLE) >= 100


# ---------------------------------------------------------------------------------------------- unreadable


def _missing(tmp: Path) -> Path:
    return tmp / "nope.yaml"


def _directory(tmp: Path) -> Path:
    return tmp


def _too_large(tmp: Path) -> Path:
    path = tmp / "big.yaml"
    path.write_text(P + "#" * MAX_BYTES + "\n", encoding="utf-8")
    return path


def _not_utf8(tmp: Path) -> Path:
    path = tmp / "latin1.yaml"
    path.write_bytes(P.encode() + b"# caf\xe9\n" + b"kill: []\n")
    return path


UNREADABLE = [
    pytest.param(_missing, 0, "cannot read: No such file or directory", id="missing-file"),
    pytest.param(_directory, 0, "cannot read: Is a directory", id="directory"),
    pytest.param(_too_large, 0, "too large: more than 65536 bytes", id="over-64-KiB"),
    pytest.param(_not_utf8, 2, "not UTF-8 text: byte 0xe9", id="not-utf-8"),
]


@pytest.mark.parametrize(("make", "line", "fragment"), UNREADABLE)
def test_unreadable_file_is_rejected(tmp_path: Path, make: object, line: int, fragment: str) -> None:
    assert callable(make)
    path = make(tmp_path)
    with pytest.raises(FlagFileError) as caught:
        load_flags(path, backends=BACKENDS, commands=COMMANDS)
    assert_problem(caught.value, line, fragment)
    prefix = f"{path}: " if line == 0 else f"{path}:{line}: "
    assert str(caught.value).startswith(prefix + fragment.split(":")[0])


def test_text_over_64_kib_is_rejected_before_parsing() -> None:
    with pytest.raises(FlagFileError) as caught:
        parse(P + "#" * MAX_BYTES)
    limit = "a flag file may hold at most 65536 bytes (64 KiB)"
    assert str(caught.value) == f"{SOURCE}: too large: {MAX_BYTES + 26} bytes; {limit}"
