"""What a reload changed, one line per changed leaf, for the log line every accepted change gets."""

from __future__ import annotations

from dataclasses import fields

from bot.routing.flags.model import AutoRollbackPolicy, CommandFlags, FlagFile

_TOP_LEAVES = ("default_backend", "writes", "kill", "time_budget_ms")


def describe_changes(old: FlagFile, new: FlagFile) -> list[str]:
    """`commands.position.rollout: 10 -> 25`, `kill: [] -> ['scylla']`, ...; empty when nothing changed.

    A command that appears or disappears gets an `added`/`removed` line, then its leaves compared with
    the defaults an unlisted command has, since that is what it changed from or back to.
    """
    lines: list[str] = []
    for name in _TOP_LEAVES:
        _compare(lines, name, getattr(old, name), getattr(new, name))
    for leaf in fields(AutoRollbackPolicy):
        path = f"auto_rollback.{leaf.name}"
        _compare(lines, path, getattr(old.auto_rollback, leaf.name), getattr(new.auto_rollback, leaf.name))
    for command in sorted(set(old.commands) | set(new.commands)):
        if command not in old.commands:
            lines.append(f"commands.{command}: added")
        elif command not in new.commands:
            lines.append(f"commands.{command}: removed")
        _compare_command(lines, f"commands.{command}", old.for_command(command), new.for_command(command))
    return lines


def _compare_command(lines: list[str], path: str, old: CommandFlags, new: CommandFlags) -> None:
    for leaf in fields(CommandFlags):
        if leaf.name != "guilds":
            _compare(lines, f"{path}.{leaf.name}", getattr(old, leaf.name), getattr(new, leaf.name))
    for guild in sorted(set(old.guilds) | set(new.guilds)):
        _compare(lines, f"{path}.guilds.{guild}", old.guilds.get(guild), new.guilds.get(guild))


def _compare(lines: list[str], path: str, old: object, new: object) -> None:
    if old != new:
        lines.append(f"{path}: {_show(old)} -> {_show(new)}")


def _show(value: object) -> str:
    """A value as an admin would write it in the file: `(none)`, `true`, `['scylla']`, `scylla`, `0.2`."""
    if value is None:
        return "(none)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return repr(list(value))
    return str(value)
