"""Build an INTERACTION_CREATE `data.options` tree from a registered command and Python values.

The Discord client only lets a user send what the registered command allows, so anything else
(unknown option, missing required option, value outside choices / min / max) raises ValueError here.
"""

from __future__ import annotations

from typing import Any

from .models import Member
from .rules import SUB_TYPES

STRING, INTEGER, BOOLEAN, USER, CHANNEL, ROLE, MENTIONABLE, NUMBER, ATTACHMENT = range(3, 12)
MAX_SAFE_INTEGER = 2**53  # Discord's integer option range is -2^53..2^53


def build_options(
    command: dict[str, Any], path: tuple[str, ...], values: dict[str, Any], members: dict[int, Member]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Return (options tree, resolved) for `/command *path **values`."""
    specs: list[dict[str, Any]] = command.get("options") or []
    tree: list[dict[str, Any]] = []
    cursor = tree
    for name in path:
        spec = next((o for o in specs if o["name"] == name and o["type"] in SUB_TYPES), None)
        if spec is None:
            raise ValueError(f"/{command['name']} has no sub-command (group) {name!r} here")
        node: dict[str, Any] = {"name": name, "type": spec["type"], "options": []}
        cursor.append(node)
        cursor = node["options"]
        specs = spec.get("options") or []
    if any(o["type"] in SUB_TYPES for o in specs):
        names = sorted(o["name"] for o in specs)
        raise ValueError(f"/{command['name']} {' '.join(path)} needs a sub-command, one of {names}")

    resolved: dict[str, Any] = {}
    by_name = {o["name"]: o for o in specs}
    for key, value in values.items():
        spec = by_name.get(key)
        if spec is None:
            raise ValueError(f"/{command['name']} has no option {key!r}; known: {sorted(by_name)}")
        cursor.append({"name": key, "type": spec["type"], "value": _convert(spec, value, resolved, members)})
    missing = [o["name"] for o in specs if o.get("required") and o["name"] not in values]
    if missing:
        raise ValueError(f"/{command['name']} is missing required options {missing}")
    return tree, resolved


def _convert(spec: dict[str, Any], value: Any, resolved: dict[str, Any], members: dict[int, Member]) -> Any:
    kind, name = spec["type"], spec["name"]
    if kind == STRING:
        _expect(name, value, str)
        _bounds(name, len(value), spec.get("min_length"), spec.get("max_length"), "length")
    elif kind == INTEGER:
        _expect(name, value, int)
        _bounds(name, value, spec.get("min_value", -MAX_SAFE_INTEGER), spec.get("max_value", MAX_SAFE_INTEGER))
    elif kind == NUMBER:
        _expect(name, value, (int, float))
        _bounds(name, value, spec.get("min_value"), spec.get("max_value"))
    elif kind == BOOLEAN:
        _expect(name, value, bool)
    elif kind in (USER, CHANNEL, ROLE, MENTIONABLE):
        snowflake = value.id if isinstance(value, Member) else int(value)
        member = value if isinstance(value, Member) else members.get(snowflake)
        if kind in (USER, MENTIONABLE) and member is not None:
            resolved.setdefault("users", {})[str(member.id)] = member.user_payload()
            resolved.setdefault("members", {})[str(member.id)] = member.payload(with_user=False)
        return str(snowflake)
    else:
        raise NotImplementedError(f"option {name!r}: type {kind} is not emulated")
    choices = spec.get("choices")
    if choices and value not in [c["value"] for c in choices]:
        raise ValueError(f"option {name!r}: {value!r} is not one of the choices {choices}")
    return value


def _expect(name: str, value: Any, kind: type | tuple[type, ...]) -> None:
    if (isinstance(value, bool) and kind is not bool) or not isinstance(value, kind):
        raise ValueError(f"option {name!r}: {value!r} is not a {kind}")


def _bounds(name: str, value: float, low: float | None, high: float | None, what: str = "value") -> None:
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"option {name!r}: {what} {value!r} outside [{low}, {high}]")
