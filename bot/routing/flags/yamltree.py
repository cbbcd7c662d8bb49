"""PyYAML's composed node tree, read for validation: line numbers, merge keys and plain descriptions."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import yaml

from bot.routing.flags.errors import FlagProblem

YAML_TAG_PREFIX = "tag:yaml.org,2002:"
MERGE_TAG = YAML_TAG_PREFIX + "merge"
NULL_TAG = YAML_TAG_PREFIX + "null"
BOOL_TAG = YAML_TAG_PREFIX + "bool"
INT_TAG = YAML_TAG_PREFIX + "int"
FLOAT_TAG = YAML_TAG_PREFIX + "float"
STR_TAG = YAML_TAG_PREFIX + "str"


class Report:
    """Problems gathered while the tree is walked, so one rejection names every mistake, not just the first."""

    def __init__(self) -> None:
        self.problems: list[FlagProblem] = []

    def add(self, at: yaml.Node | int, message: str) -> None:
        """Record a problem at a node's line, or at an explicit line (0: the file as a whole)."""
        self.problems.append(FlagProblem(at if isinstance(at, int) else line_of(at), message))


@dataclass(frozen=True)
class Pair:
    """One key and its value; `merged` when it came in through `<<`, where an explicit key overrides it."""

    key: yaml.Node
    value: yaml.Node
    merged: bool


def line_of(node: yaml.Node) -> int:
    """The 1-based line where the node starts (PyYAML's marks count from 0)."""
    return int(node.start_mark.line) + 1


def compose_document(text: str, report: Report) -> yaml.Node | None:
    """The single document's node tree, or None (empty file, or a syntax problem added to `report`).

    Composing, rather than loading, keeps every key with its line and does not collapse duplicate keys
    (`safe_load` silently keeps the last one). Tags are resolved but nothing is constructed yet.
    """
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = int(mark.line) + 1 if mark is not None else 1
        context = f"{exc.context}: " if exc.context else ""
        if exc.context and exc.context_mark is not None and int(exc.context_mark.line) + 1 != line:
            # YAML often notices a misplaced line only further down; say where the broken part began.
            context = f"{exc.context} (from line {int(exc.context_mark.line) + 1}): "
        report.add(line, f"not valid YAML: {context}{exc.problem or 'syntax error'}")
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, max(exc.position, 0)) + 1
        code = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1] or "\0")
        report.add(line, f"not valid YAML: the character U+{code:04X} is not allowed in a YAML file")
    except yaml.YAMLError as exc:
        report.add(1, f"not valid YAML: {exc}")
    except RecursionError:
        # PyYAML composes recursively; a few hundred nested brackets exhaust the stack.
        report.add(1, "not valid YAML: nested too deeply")
    return None


def describe(node: yaml.Node) -> str:
    """What the admin wrote, in words for a message: `the text 'abc'`, `a list`, `the yes/no value 'on'`."""
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    value = str(node.value)
    if len(value) > 40:
        value = value[:37] + "..."
    if node.tag == NULL_TAG:
        return "an empty value"
    if node.tag == BOOL_TAG:
        return f"the yes/no value {value!r}"
    if node.tag in (INT_TAG, FLOAT_TAG):
        return value
    if node.tag == STR_TAG:
        return f"the text {value!r}"
    if node.tag.startswith(YAML_TAG_PREFIX):
        return f"the {node.tag.removeprefix(YAML_TAG_PREFIX)} value {value!r}"
    return f"the value {value!r} tagged {node.tag!r}"


def is_null(node: yaml.Node) -> bool:
    """True for `key:` with nothing after it (or `~`, `null`)."""
    return isinstance(node, yaml.ScalarNode) and node.tag == NULL_TAG


def mapping_pairs(node: yaml.MappingNode, where: str, report: Report) -> list[Pair]:
    """The mapping's pairs with `<<` merge keys expanded: explicit pairs first, then merged ones in order.

    Callers keep the first pair of each key, which gives YAML's merge rule (explicit keys win, and earlier
    merged mappings win over later ones) while a duplicate *explicit* key is still reported as a mistake.
    """
    return list(_pairs(node, where, report, merged=False, visiting=frozenset()))


def _pairs(
    node: yaml.MappingNode, where: str, report: Report, *, merged: bool, visiting: frozenset[int]
) -> Iterator[Pair]:
    if id(node) in visiting:
        # An anchor merged into itself (PyYAML allows recursive aliases) adds nothing new.
        return
    visiting = visiting | {id(node)}
    sources: list[yaml.Node] = []
    for key, value in node.value:
        if key.tag == MERGE_TAG:
            sources.append(value)
        else:
            yield Pair(key, value, merged)
    for source in sources:
        parts = source.value if isinstance(source, yaml.SequenceNode) else [source]
        for part in parts:
            if isinstance(part, yaml.MappingNode):
                yield from _pairs(part, where, report, merged=True, visiting=visiting)
            else:
                report.add(part, f"`<<` in {where} must merge a mapping or a list of mappings, not {describe(part)}")
