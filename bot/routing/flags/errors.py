"""Why a flag file was rejected: one `FlagProblem` per mistake, gathered into one `FlagFileError`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class FlagProblem:
    """One mistake in the file. `line` is 1-based; 0 means the file as a whole (unreadable, too large)."""

    line: int
    message: str

    def format(self, source: str) -> str:
        """`{source}:{line}: {message}`, the shape editors and CI logs turn into a link."""
        if self.line <= 0:
            return f"{source}: {self.message}"
        return f"{source}:{self.line}: {self.message}"


class FlagFileError(Exception):
    """The flag file was rejected as a whole; `problems` lists every mistake found, in line order."""

    def __init__(self, source: str, problems: Iterable[FlagProblem]) -> None:
        self.source = source
        # Sorted so the message reads top to bottom like the file; stable for problems on one line.
        self.problems: list[FlagProblem] = sorted(problems, key=lambda problem: problem.line)
        if not self.problems:
            raise ValueError("a FlagFileError needs at least one problem")
        super().__init__("\n".join(problem.format(source) for problem in self.problems))
