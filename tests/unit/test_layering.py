"""The house rules of imports: only the assembly (`bot/app/`) names concrete backends, `bot/` never
imports the cogs above it, and `backends/` knows neither the bot nor Discord."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
CONCRETE = ("backends.postgres", "backends.scylla", "backends.memory")


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in the file, `from x import y` as `x` and `x.y`."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def offences(folder: str, forbidden: tuple[str, ...], *, except_under: str | None = None) -> list[str]:
    bad = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        if except_under and relative.startswith(except_under):
            continue
        for line, module in imports(path):
            if any(module == f or module.startswith(f + ".") for f in forbidden):
                bad.append(f"{relative}:{line} imports {module}")
    return bad


def test_only_the_assembly_names_a_concrete_backend() -> None:
    assert offences("bot", CONCRETE, except_under="bot/app/") == []


def test_the_bot_never_imports_the_cogs() -> None:
    assert offences("bot", ("cogs",)) == []


def test_backends_know_neither_the_bot_nor_discord() -> None:
    assert offences("backends", ("bot", "cogs", "nextcord")) == []


@pytest.mark.parametrize(
    ("source", "offending"),
    [
        ("from backends.postgres.standing import StandingStore\n", True),
        ("import backends.scylla.backend\n", True),
        ("from backends import postgres\n", True),
        ("from backends.protocol import Backend\n", False),
        ("from backends.roles import RoleConfig\n", False),
    ],
)
def test_the_rule_sees_every_form_of_import(tmp_path: Path, source: str, offending: bool) -> None:
    module = tmp_path / "module.py"
    module.write_text(source)
    named = [m for _, m in imports(module)]
    assert any(m == f or m.startswith(f + ".") for m in named for f in CONCRETE) is offending
