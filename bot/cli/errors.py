"""The error every `sietch` command ends with when it cannot do what was asked."""

from __future__ import annotations


class CliError(Exception):
    """Ends the command with one line on stderr and the given exit code."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code
