"""Challenge submissions: write one scan's file, validate a folder or zip, pack the upload zip.

The challenge expects one zip with one ``.nii.gz`` per test scan at its root, named exactly as the entry's
``name``; array (F, H, W, D) uint8 with values 0/1, channels in the order of the entry's finding keys, axes in
the CT's raw array order (:func:`rexground.io.write_channels` writes exactly that).
"""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from rexground.dataset import DatasetEntry, read_ct_header, resolve_ct
from rexground.errors import InputFileError, RexgroundError
from rexground.folder_claim import is_claim_file
from rexground.geometry import Geometry

ProblemKind = Literal[
    "missing", "extra", "wrong_name", "unreadable", "shape", "channels", "dtype", "values", "empty_channel"
]
_IMAGE_SUFFIXES = (".nii.gz", ".nii", ".mha", ".mhd", ".nrrd")
# Fixed metadata so that the same files always give the same zip, byte for byte.
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


class SubmissionProblem(BaseModel):
    """One thing the leaderboard would reject or score badly."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: ProblemKind
    name: str  # the file (or expected file) it concerns
    detail: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.name}: {self.detail}"


def write_scan_submission(
    out_dir: str | Path, entry: DatasetEntry, masks_fzyx: np.ndarray, geometry: Geometry
) -> Path:
    """Write one scan's submission file ``out_dir/<entry.name>``: the (F, z, y, x) canonical masks, one per
    finding in the order of the entry's finding keys, as (F, H, W, D) uint8 0/1 in the CT's raw order."""
    from rexground.io import write_channels

    masks_fzyx = np.asarray(masks_fzyx)
    if masks_fzyx.ndim != 4 or masks_fzyx.shape[0] != entry.n_findings:
        raise ValueError(f"{entry.name}: {masks_fzyx.shape[0] if masks_fzyx.ndim == 4 else 'no'} channels for "
                         f"{entry.n_findings} findings (masks shape {masks_fzyx.shape})")  # fmt: skip
    return write_channels(Path(out_dir) / entry.name, masks_fzyx, geometry)


# --- validation -------------------------------------------------------------------------------------------


def _normalised(name: str) -> str:
    base = PurePosixPath(name.replace("\\", "/")).name.lower()
    for suffix in _IMAGE_SUFFIXES:
        if base.endswith(suffix):
            return base[: -len(suffix)]
    return base


def _expected_spatial(entry: DatasetEntry, ct_root: Path | None) -> tuple[tuple[int, ...] | None, str | None]:
    """The (H, W, D) a submission of ``entry`` must have: the CT header's size, else the entry's ``shape``."""
    if ct_root is not None:
        try:
            return tuple(read_ct_header(resolve_ct(ct_root, entry.name))[0]), None
        except RexgroundError as exc:
            note = f"CT not available for the shape check ({exc})"
            return (tuple(entry.shape[-3:]) if entry.shape else None), note
    return (tuple(entry.shape[-3:]) if entry.shape else None), None


def check_array(
    name: str, array: np.ndarray, entry: DatasetEntry, spatial: tuple[int, ...] | None
) -> list[SubmissionProblem]:
    """Every problem of one submission array against its entry (and the expected spatial shape)."""
    problems = []

    def add(kind: ProblemKind, detail: str) -> None:
        problems.append(SubmissionProblem(kind=kind, name=name, detail=detail))

    if array.ndim != 4:
        add("shape", f"array has shape {array.shape}; expected (F, H, W, D) with F = {entry.n_findings}")
        return problems
    if entry.findings and array.shape[0] != entry.n_findings:
        add("channels", f"{array.shape[0]} channels but the entry has {entry.n_findings} findings")
    if spatial is not None and tuple(array.shape[1:]) != tuple(spatial):
        add("shape", f"spatial shape {tuple(array.shape[1:])} != CT raw shape {tuple(spatial)}")
    if array.dtype != np.uint8:
        add("dtype", f"dtype {array.dtype}; expected uint8 (the evaluator casts to uint8: floats in (0,1) "
                     "become 0, values >= 256 wrap)")  # fmt: skip
    if array.dtype == np.uint8:
        bad = int(array.max(initial=0)) > 1
    else:
        bad = bool(np.any((array != 0) & (array != 1)))
    if bad:
        found = np.unique(array[(array != 0) & (array != 1)])[:5]
        add("values", f"values other than 0/1, e.g. {', '.join(str(v) for v in found.tolist())}")
    keys = entry.finding_keys
    for c in range(array.shape[0]):
        if not array[c].any():
            key = f" (finding {keys[c]})" if c < len(keys) else ""
            add(
                "empty_channel", f"channel {c}{key} is empty: every ground truth is non-empty, so it scores 0"
            )
    return problems


@contextmanager
def _member_file(archive: zipfile.ZipFile, member: str) -> Iterator[Path]:
    """A zip member extracted to a temporary file with the same suffix (image readers need a path)."""
    suffix = next((s for s in _IMAGE_SUFFIXES if member.lower().endswith(s)), PurePosixPath(member).suffix)
    with tempfile.TemporaryDirectory(prefix="rexground_zip_") as tmp:
        path = Path(tmp) / f"member{suffix}"
        with archive.open(member) as src, path.open("wb") as dst:
            shutil.copyfileobj(src, dst)
        yield path


def validate_submission(
    entries: Sequence[DatasetEntry],
    *,
    pred_dir: str | Path | None = None,
    zip_path: str | Path | None = None,
    ct_root: str | Path | None = None,
) -> list[SubmissionProblem]:
    """All problems of a submission folder or zip against a split's entries: missing, extra and wrongly
    named files, unreadable files, wrong shape, channel count, dtype, values other than 0/1, empty channels."""
    from rexground.io import read_mask_raw

    if (pred_dir is None) == (zip_path is None):
        raise ValueError("give exactly one of pred_dir and zip_path")
    ct_root = Path(ct_root) if ct_root is not None else None
    archive = None
    if zip_path is not None:
        zip_path = Path(zip_path)
        try:
            archive = zipfile.ZipFile(zip_path)
        except (OSError, zipfile.BadZipFile) as exc:
            raise InputFileError(zip_path, f"is not a readable zip: {exc}") from exc
        files = [m.filename for m in archive.infolist() if not m.is_dir()]
    else:
        pred_dir = Path(pred_dir)  # type: ignore[arg-type]
        if not pred_dir.is_dir():
            raise InputFileError(pred_dir, "submission folder does not exist")
        files = sorted(
            str(p.relative_to(pred_dir).as_posix())
            for p in pred_dir.rglob("*")
            if p.is_file() and not is_claim_file(p.name)  # a running `predict`'s lock, not a submission file
        )
    by_name = {e.name: e for e in entries}
    by_normalised = {_normalised(e.name): e for e in entries}
    problems: list[SubmissionProblem] = []
    assigned: dict[str, str] = {}  # entry name -> file that stands for it
    for file in files:
        if file in by_name:
            assigned[file] = file
    for file in files:
        if file in by_name:
            continue
        entry = by_normalised.get(_normalised(file))
        if entry is not None and entry.name not in assigned:
            where = "inside a folder, not at the root" if "/" in file else "named differently"
            problems.append(SubmissionProblem(kind="wrong_name", name=file,
                                              detail=f"{where}; must be exactly {entry.name!r}"))  # fmt: skip
            assigned[entry.name] = file
        else:
            problems.append(SubmissionProblem(kind="extra", name=file, detail="not a scan of this split"))
    try:
        for entry in entries:
            file = assigned.get(entry.name)
            if file is None:
                problems.append(
                    SubmissionProblem(kind="missing", name=entry.name, detail="no file for this scan")
                )
                continue
            spatial, note = _expected_spatial(entry, ct_root)
            if note:
                problems.append(SubmissionProblem(kind="shape", name=file, detail=note))
            try:
                if archive is not None:
                    with _member_file(archive, file) as path:
                        array = read_mask_raw(path)
                else:
                    array = read_mask_raw(Path(pred_dir) / file)  # type: ignore[arg-type]
            except (RexgroundError, zipfile.BadZipFile, OSError) as exc:
                problems.append(SubmissionProblem(kind="unreadable", name=file, detail=str(exc)))
                continue
            problems.extend(check_array(file, array, entry, spatial))
            del array
    finally:
        if archive is not None:
            archive.close()
    return problems


# --- packing ----------------------------------------------------------------------------------------------


def pack_submission(pred_dir: str | Path, zip_path: str | Path, names: Iterable[str] | None = None) -> Path:
    """Write the upload zip: the submission files (``names``, or every image file in ``pred_dir``) flat at
    its root, sorted, stored uncompressed (they are gzip already) with fixed dates and permissions, so the
    same files always give the same bytes. Written atomically."""
    from rexground.io import atomic_path

    pred_dir = Path(pred_dir)
    if names is None:
        chosen = sorted(
            p.name for p in pred_dir.iterdir() if p.is_file() and p.name.lower().endswith(_IMAGE_SUFFIXES)
        )
    else:
        chosen = sorted(set(names))
    for name in chosen:
        if "/" in name or not (pred_dir / name).is_file():
            raise InputFileError(pred_dir / name, "submission file does not exist")
    with atomic_path(zip_path) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as archive:
        for name in chosen:
            info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_STORED
            info.create_system = 3
            info.external_attr = 0o644 << 16
            with (pred_dir / name).open("rb") as src, archive.open(info, "w", force_zip64=True) as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
    return Path(zip_path)
