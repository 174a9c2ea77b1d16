"""A run's claim on the scans it writes in an output folder, so that two ``rexground predict`` runs never write
the same scan at once.

Each run holds ``.rexground-predict.<I>of<N>.lock`` in the folder (its ``--shard I/N``) with ``flock`` for as
long as it runs; the kernel drops the lock when the process ends, however it ends (SIGKILL included), so a
lock file nobody holds is only a leftover. Before it writes anything a run looks at every other lock file:
a live run whose shard shares a scan with this one is a collision and this run is refused, naming it; runs
of disjoint shards (``0/2`` and ``1/2``) proceed side by side. Lock files are removed by their owner while it
still holds them, and a run checks after locking that the file it locked is still the one under the name,
so a removal never lets two runs in at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

from rexground.errors import OutputFileError, RexgroundError

LOCK_PREFIX = ".rexground-predict."
_LOCK_NAME = re.compile(r"^\.rexground-predict\.(?P<index>\d+)of(?P<count>\d+)\.lock$")


class FolderBusyError(RexgroundError):
    """Another live run is writing scans of this run into the same folder."""


def is_claim_file(name: str) -> bool:
    """Whether ``name`` is one of these lock files (bookkeeping, never a submission file)."""
    return bool(_LOCK_NAME.match(name))


def shard_names(names: Sequence[str], index: int, count: int) -> list[str]:
    """The scans of shard ``index``/``count``: every ``count``-th name in sorted order, from ``index``."""
    return sorted(names)[index::count]


def _lock(path: Path) -> int | None:
    """An open descriptor of ``path`` (created if need be) locked exclusively without waiting, or None when
    another process holds it. A file its owner removed between our open and our lock is locked anew."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        if _still_named(fd, path):
            return fd
        os.close(fd)


def _still_named(fd: int, path: Path) -> bool:
    try:
        return os.fstat(fd).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False


def _is_live(path: Path) -> bool:
    """Whether a running process holds the lock file ``path``; a leftover nobody holds is removed."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        if _still_named(fd, path):
            with contextlib.suppress(OSError):
                path.unlink()  # a leftover of a run that was killed; removed while we hold it
        return False
    finally:
        os.close(fd)


def _holder(path: Path) -> str:
    try:
        return path.read_text().strip() or "a process"
    except OSError:
        return "a process"


@contextlib.contextmanager
def claim_scans(out_dir: Path, index: int, count: int, names: Sequence[str]) -> Iterator[Path]:
    """Hold shard ``index``/``count`` of ``names`` in ``out_dir`` for the block. Raises
    :class:`FolderBusyError` when a live run holds the same shard or one that shares a scan with it, and
    :class:`OutputFileError` when the folder cannot be written."""
    path = out_dir / f"{LOCK_PREFIX}{index}of{count}.lock"
    try:
        fd = _lock(path)
    except OSError as exc:
        raise OutputFileError(
            out_dir, f"cannot be written (its lock file cannot be created): {exc.strerror or exc}"
        ) from exc
    if fd is None:
        raise FolderBusyError(
            f"{out_dir}: another `rexground predict` ({_holder(path)}) is writing shard {index}/{count} there; "
            "wait for it to finish, or give this run another --shard"
        )
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}, shard {index}/{count}\n".encode())
        mine = set(shard_names(names, index, count))
        for other in sorted(out_dir.iterdir()):
            match = _LOCK_NAME.match(other.name)
            if not match or other == path:
                continue
            theirs = set(shard_names(names, int(match["index"]), int(match["count"])))
            if not _is_live(other):
                continue
            shared = sorted(mine & theirs)
            if shared:
                raise FolderBusyError(
                    f"{out_dir}: another `rexground predict` ({_holder(other)}) is writing scans of this run "
                    f"there ({len(shared)} shared, e.g. {shared[0]}); two runs would write the same files: wait "
                    "for it, or split the work with --shard I/N and the same N"
                )
        yield path
    finally:
        with contextlib.suppress(OSError):
            path.unlink()  # while still holding the lock (see the module docstring)
        os.close(fd)
