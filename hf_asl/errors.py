"""Exceptions raised for bad input; the CLI prints them as one clear line instead of a traceback."""

from __future__ import annotations

from pathlib import Path


class HfAslError(Exception):
    """Base class of the errors hf-asl raises on purpose."""


class InputError(HfAslError, ValueError):
    """Bad user input: names the file (and line or row, when known) at fault."""

    def __init__(self, message: str, path: str | Path | None = None, line: int | None = None):
        self.path = None if path is None else str(path)
        self.line = line
        where = ""
        if self.path is not None:
            where = self.path if line is None else f"{self.path}:{line}"
            where += ": "
        super().__init__(where + message)
