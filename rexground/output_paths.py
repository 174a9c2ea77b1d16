"""Output paths checked before any work: a command that would run for minutes and then fail to write its
result refuses at once, with one line naming the path and what to do instead.

Every command that writes calls :func:`output_file` or :func:`output_folder` on each output argument before
it reads a CT or loads a model. Writability is probed by creating (and removing) a temporary file in the
nearest folder that exists: permission bits alone do not tell (root, read-only mounts, full quotas).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from rexground.errors import RexgroundError

# Single-file image formats the mask writers take (SimpleITK picks the format from the extension; .mhd/.nhdr
# would write a second data file beside the header, which an atomic rename cannot carry).
MASK_SUFFIXES = (".nii.gz", ".nii", ".mha", ".nrrd")
PNG_SUFFIXES = (".png",)
JSON_SUFFIXES = (".json",)
HTML_SUFFIXES = (".html", ".htm")
ZIP_SUFFIXES = (".zip",)


class OutputPathError(RexgroundError):
    """An output path cannot be written as given (a folder where a file is wanted, an unknown extension,
    a folder that is not writable)."""


def _suffix_of(path: Path, suffixes: Sequence[str]) -> str | None:
    name = path.name.lower()
    return next((s for s in sorted(suffixes, key=len, reverse=True) if name.endswith(s)), None)


def _nearest_existing(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _check_writable(folder: Path, flag: str, path: Path) -> None:
    """The nearest existing ancestor of ``folder`` is a folder in which a file can be created."""
    base = _nearest_existing(folder)
    if not base.is_dir():
        raise OutputPathError(
            f"{flag} {path}: {base} is a file, so no folder can be made there; choose another location"
        )
    try:
        fd, probe = tempfile.mkstemp(prefix=".rexground-write-check.", dir=base)
    except OSError as exc:
        raise OutputPathError(
            f"{flag} {path}: cannot write in {base} ({exc.strerror or exc}); choose a writable location"
        ) from None
    os.close(fd)
    os.unlink(probe)


def output_file(
    path: str | Path, suffixes: Sequence[str], flag: str = "--out", example: str | None = None
) -> Path:
    """``path`` as a file to write: not an existing folder, one of ``suffixes`` (case-insensitive), in a
    writable folder (created later by the writer if missing). ``example``: a file name to suggest when the
    path is a folder. Raises :class:`OutputPathError`."""
    path = Path(path)
    formats = ", ".join(suffixes[:-1]) + (" or " if len(suffixes) > 1 else "") + suffixes[-1]
    if path.is_dir():
        name = example or f"out{suffixes[0]}"
        raise OutputPathError(f"{flag} {path}: is a folder; give a file name, e.g. {path / name}")
    if _suffix_of(path, suffixes) is None:
        stem = path.name.split(".")[0] or "out"
        have = "".join(path.suffixes[-2:]) if path.suffix.lower() == ".gz" else path.suffix
        problem = f"{have} is not a format it writes" if have else "has no extension"
        raise OutputPathError(
            f"{flag} {path}: {problem}; use {formats} (e.g. {path.with_name(stem + suffixes[0])})"
        )
    _check_writable(path.parent, flag, path)
    return path


def output_folder(path: str | Path, flag: str = "--out") -> Path:
    """``path`` as a folder to write into: not an existing file, and creatable/writable."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputPathError(f"{flag} {path}: is a file; give a folder (it is created when missing)")
    _check_writable(path, flag, path)
    return path
