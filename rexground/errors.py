"""Errors that name the file (and field) at fault, so a user knows what to fix."""

from __future__ import annotations

from pathlib import Path


class RexgroundError(Exception):
    """Base class for every error rexground raises on bad input."""


class InputFileError(RexgroundError):
    """A file is missing, unreadable, corrupt or does not hold what it must."""

    def __init__(self, path: str | Path, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class OutputFileError(RexgroundError):
    """An output cannot be written (a full disk, a file-size limit, a read-only folder); nothing was left
    under its name."""

    def __init__(self, path: str | Path, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class FindingTextError(RexgroundError):
    """A finding is empty, not a string, or otherwise unusable."""


class ModelPackageError(RexgroundError):
    """A model package is incomplete, of the wrong version, or fails its hash check."""
