"""Typed readers for the flag file's values: each returns the value, or None after reporting why not."""

from __future__ import annotations

import math
from collections.abc import Collection

import yaml

from bot.routing.flags.yamltree import BOOL_TAG, FLOAT_TAG, INT_TAG, STR_TAG, Report, describe


def read_int(node: yaml.Node, path: str, report: Report, *, low: int, high: int | None = None) -> int | None:
    """A whole number in low..high. YAML's `yes`/`true` are refused: a bool is not a count here."""
    expected = f"a whole number from {low} to {high}" if high is not None else f"a whole number of at least {low}"
    value = _construct(node) if _tagged(node, INT_TAG) else None
    if not isinstance(value, int) or isinstance(value, bool) or value < low or (high is not None and value > high):
        report.add(node, f"{path} must be {expected}, not {describe(node)}")
        return None
    return value


def read_rate(node: yaml.Node, path: str, report: Report) -> float | None:
    """A fraction in 0..1 (0.2 means 20 %); whole numbers 0 and 1 are accepted, NaN and infinities are not."""
    value = _construct(node) if _tagged(node, INT_TAG, FLOAT_TAG) else None
    if not isinstance(value, int | float) or isinstance(value, bool) or not (math.isfinite(value) and 0 <= value <= 1):
        report.add(node, f"{path} must be a fraction from 0 to 1 (0.2 means 20 %), not {describe(node)}")
        return None
    return float(value)


def read_bool(node: yaml.Node, path: str, report: Report) -> bool | None:
    """true or false (YAML also reads yes/no and on/off as these); quoted text is refused."""
    value = _construct(node) if _tagged(node, BOOL_TAG) else None
    if not isinstance(value, bool):
        report.add(node, f"{path} must be true or false, not {describe(node)}")
        return None
    return value


def read_choice(node: yaml.Node, path: str, report: Report, choices: Collection[str]) -> str | None:
    """One of a few fixed words, such as `community` or `user`."""
    *others, last = sorted(choices)
    allowed = f"{', '.join(others)} or {last}" if others else last
    if not _tagged(node, STR_TAG) or node.value not in choices:
        report.add(node, f"{path} must be {allowed}, not {describe(node)}")
        return None
    return str(node.value)


def read_backend(node: yaml.Node, path: str, report: Report, backends: Collection[str]) -> str | None:
    """A backend name that this bot has configured; routing to any other would fail on every request."""
    configured = ", ".join(sorted(backends)) or "none"
    if not _tagged(node, STR_TAG):
        report.add(node, f"{path} must be a backend name (configured: {configured}), not {describe(node)}")
        return None
    if node.value not in backends:
        report.add(node, f"{path} names backend {node.value!r}, which is not configured (configured: {configured})")
        return None
    return str(node.value)


def _tagged(node: yaml.Node, *tags: str) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag in tags


def _construct(node: yaml.Node) -> object:
    """The Python value of a scalar already known to carry an int, float or bool tag; None if it has none.

    An explicit tag on the wrong text (`!!int abc`, `!!bool maybe`) makes PyYAML's constructors raise
    plain ValueError or KeyError rather than a YAMLError. The caller reports the value as wrong, so
    nothing is lost by turning any such failure into None here.
    """
    try:
        return yaml.constructor.SafeConstructor().construct_object(node, deep=True)
    except Exception:
        return None
