"""The ReXGroundingCT dataset as it is laid out: its JSON files, its masks, and the CT-RATE tree of its CTs.

* ``dataset.json`` / ``MICCAI_challenge_dataset.json``: ``{"train": [...], "val": [...], "test": [...]}``,
  each entry ``{"name", "findings": {"0": text, ...}, "categories": {"0": "2b"}, "entity_counts", "shape",
  "pixels", "protocol"}``; test entries have no masks. Finding keys are channel indices: channel ``c`` of a
  mask is the ``c``-th key in numeric order.
* The evaluator form ``{"test": [{"seg_path": "segmentations/x.nii.gz"}, ...]}`` names only mask files.
* Masks: ``segmentations/<name>``, (F, H, W, D) uint8 in the CT's raw array order, one value per entity.
* CTs: ``{train|valid}_fixed/<p>_<id>/<p>_<id>_<s>/<name>`` under a CT-RATE root (optionally below
  ``dataset/``). Both split folders are tried because validation and test scans may carry ``train_`` names.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from rexground.categories import CATEGORY_CODES
from rexground.errors import InputFileError

SPLIT_ALIASES: dict[str, tuple[str, ...]] = {
    "train": ("train", "training"),
    "val": ("val", "valid", "validation"),
    "test": ("test", "testing"),
}
CT_RATE_NAME = re.compile(
    r"^(?P<prefix>train|valid)_(?P<id>\d+)_(?P<series>[A-Za-z0-9]+)_(?P<recon>\d+)\.nii(\.gz)?$"
)
CT_RATE_SPLIT_DIRS = ("train_fixed", "valid_fixed")


class DatasetEntry(BaseModel):
    """One scan of a split. ``name`` is the file name of its CT, its mask and its submission file."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    name: str = Field(min_length=1)
    findings: dict[str, str] = {}
    categories: dict[str, str] = {}
    entity_counts: dict[str, int] | None = None
    shape: tuple[int, ...] | None = None
    pixels: dict[str, int] | None = None
    protocol: str | None = None
    seg_path: str | None = None  # the evaluator form's mask path

    @model_validator(mode="before")
    @classmethod
    def _name_from_seg_path(cls, data: object) -> object:
        if isinstance(data, dict) and "name" not in data and isinstance(data.get("seg_path"), str):
            return {**data, "name": Path(data["seg_path"]).name}
        return data

    @field_validator("name")
    @classmethod
    def _plain_file_name(cls, name: str) -> str:
        if "/" in name or "\\" in name:
            raise ValueError(f"name must be a plain file name, got {name!r}")
        return name

    @field_validator("findings", "categories", "entity_counts", "pixels")
    @classmethod
    def _integer_keys(cls, value: dict | None) -> dict | None:
        for key in value or {}:
            if not key.isdigit():
                raise ValueError(f"finding key {key!r} is not a channel index (0, 1, ...)")
        return value

    @field_validator("categories")
    @classmethod
    def _known_codes(cls, value: dict[str, str]) -> dict[str, str]:
        for key, code in value.items():
            if code not in CATEGORY_CODES:
                raise ValueError(
                    f"category {code!r} of finding {key} is not one of {', '.join(CATEGORY_CODES)}"
                )
        return value

    @property
    def finding_keys(self) -> tuple[str, ...]:
        """Finding keys in channel order (numeric)."""
        return tuple(sorted(self.findings, key=int))

    @property
    def n_findings(self) -> int:
        return len(self.findings)

    @property
    def texts(self) -> tuple[str, ...]:
        return tuple(self.findings[k] for k in self.finding_keys)

    def category_list(self, keys: tuple[str, ...] | None = None) -> list[str]:
        """Category code per channel ('unknown' where the entry has none)."""
        return [self.categories.get(k, "unknown") for k in (keys or self.finding_keys)]


class Dataset(BaseModel):
    """A dataset JSON file: its splits, each a tuple of entries."""

    model_config = ConfigDict(frozen=True)

    path: Path
    splits: dict[str, tuple[DatasetEntry, ...]]

    def split(self, name: str) -> tuple[DatasetEntry, ...]:
        """The entries of a split (``val`` also finds ``valid`` / ``validation``)."""
        for alias in SPLIT_ALIASES.get(name, (name,)):
            if alias in self.splits:
                return self.splits[alias]
        raise InputFileError(self.path, f"has no split {name!r} (it has: {', '.join(self.splits) or 'none'})")

    def entry(self, name: str, split: str | None = None) -> DatasetEntry:
        pools = [self.split(split)] if split else list(self.splits.values())
        for pool in pools:
            for entry in pool:
                if entry.name == name:
                    return entry
        raise InputFileError(self.path, f"has no entry named {name!r}")


def load_dataset(path: str | Path) -> Dataset:
    """Read a dataset JSON in any of the challenge's forms; errors name the file and the field."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputFileError(path, "does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputFileError(path, f"is not valid JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise InputFileError(path, 'must be a JSON object of splits, e.g. {"test": [...]}')
    splits: dict[str, tuple[DatasetEntry, ...]] = {}
    for split, entries in raw.items():
        if not isinstance(entries, list):
            continue  # metadata fields beside the splits (description, licence, ...)
        parsed = []
        for i, item in enumerate(entries):
            try:
                parsed.append(DatasetEntry.model_validate(item))
            except ValidationError as exc:
                err = exc.errors()[0]
                loc = ".".join(str(p) for p in err["loc"])
                field = f"{split}[{i}]" + (f".{loc}" if loc else "")
                raise InputFileError(path, f"field {field}: {err['msg']}") from None
        names = [e.name for e in parsed]
        if len(set(names)) != len(names):
            dup = next(n for n in names if names.count(n) > 1)
            raise InputFileError(path, f"split {split!r} lists {dup!r} more than once")
        splits[split] = tuple(parsed)
    if not splits:
        raise InputFileError(path, "holds no split (a key whose value is a list of entries)")
    return Dataset(path=path, splits=splits)


# --- CT-RATE tree ---------------------------------------------------------------------------------------


def ct_rate_relative_paths(name: str) -> list[Path]:
    """Where a scan lives in a CT-RATE tree, the folder of its own prefix first."""
    match = CT_RATE_NAME.match(name)
    if not match:
        return []
    prefix, scan_id, series = match["prefix"], match["id"], match["series"]
    own = f"{prefix}_fixed"
    ordered = [own] + [d for d in CT_RATE_SPLIT_DIRS if d != own]
    patient = f"{prefix}_{scan_id}"
    return [Path(d) / patient / f"{patient}_{series}" / name for d in ordered]


def ct_candidates(root: str | Path, name: str) -> list[Path]:
    """Candidate CT paths for ``name`` under ``root``: flat (``root/name``), then the CT-RATE tree at
    ``root`` and at ``root/dataset``."""
    root = Path(root)
    out = [root / name]
    for base in (root, root / "dataset"):
        out.extend(base / rel for rel in ct_rate_relative_paths(name))
    return out


def resolve_ct(root: str | Path, name: str) -> Path:
    """The CT file of scan ``name`` under ``root`` (flat folder or CT-RATE tree)."""
    candidates = ct_candidates(root, name)
    for path in candidates:
        if path.exists():
            return path
    tried = ", ".join(str(p) for p in candidates[:4])
    raise InputFileError(root, f"holds no CT named {name!r} (tried {tried})")


def resolve_totalseg(root: str | Path, name: str) -> Path | None:
    """CT-RATE's TotalSegmentator mask of scan ``name`` if present: ``root/name`` or the CT-RATE tree layout
    under ``root`` (point ``root`` at the folder that holds the masks, e.g. its ``ts_seg`` folder)."""
    for path in ct_candidates(root, name):
        if path.exists():
            return path
    return None


def read_ct_header(path: str | Path) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """(size, spacing) of a CT in raw (i, j, k) order from its header alone (a DICOM folder is read)."""
    import SimpleITK as sitk

    path = Path(path)
    if not path.exists():
        raise InputFileError(path, "does not exist")
    if path.is_dir():
        from rexground.io import read_image_raw

        _, header = read_image_raw(path)
        return header.size, header.spacing
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise InputFileError(path, f"cannot read the image header: {str(exc).strip()[-200:]}") from exc
    size = tuple(int(s) for s in reader.GetSize())
    spacing = tuple(float(s) for s in reader.GetSpacing())
    return size[:3], spacing[:3]


def read_ct_spacing(path: str | Path) -> tuple[float, float, float]:
    """CT voxel spacing in mm, raw (i, j, k) order, from the header."""
    spacing = read_ct_header(path)[1]
    if len(spacing) != 3 or any(not np.isfinite(s) or s <= 0 for s in spacing):
        raise InputFileError(path, f"has an invalid voxel spacing {spacing}")
    return spacing  # type: ignore[return-value]


# --- masks ----------------------------------------------------------------------------------------------


def mask_path(seg_dir: str | Path, entry: DatasetEntry) -> Path:
    """The mask file of an entry: ``seg_dir/<name>``; an evaluator-form ``seg_path`` is tried as given and
    relative to ``seg_dir``'s parent."""
    seg_dir = Path(seg_dir)
    path = seg_dir / entry.name
    if not path.exists() and entry.seg_path:
        for alt in (Path(entry.seg_path), seg_dir.parent / entry.seg_path):
            if alt.exists():
                return alt
    return path


def check_entry(entry: DatasetEntry, masks: np.ndarray, ct_size: tuple[int, ...] | None = None) -> list[str]:
    """Problems of an entry's masks: not 4D, channel count != findings, spatial shape != CT (or the entry's
    recorded ``shape``), empty channels. An empty list means the entry is consistent."""
    problems = []
    if masks.ndim != 4:
        return [f"mask has shape {masks.shape}; expected (F, H, W, D)"]
    if entry.findings and masks.shape[0] != entry.n_findings:
        problems.append(f"mask has {masks.shape[0]} channels but the entry has {entry.n_findings} findings")
    if ct_size is not None and tuple(masks.shape[1:]) != tuple(ct_size):
        problems.append(f"mask spatial shape {masks.shape[1:]} != CT shape {tuple(ct_size)}")
    if entry.shape is not None and tuple(masks.shape[1:]) != tuple(entry.shape[-3:]):
        problems.append(f"mask spatial shape {masks.shape[1:]} != entry shape {tuple(entry.shape)}")
    for c in range(masks.shape[0]):
        if not masks[c].any():
            problems.append(f"channel {c} is empty")
    return problems


def load_entry_masks(
    seg_dir: str | Path, entry: DatasetEntry, ct_root: str | Path | None = None
) -> np.ndarray:
    """The (F, H, W, D) entity-label masks of an entry in raw order, checked against the entry (and its CT's
    header when ``ct_root`` is given); raises :class:`InputFileError` naming the file and every problem."""
    from rexground.io import read_mask_raw

    path = mask_path(seg_dir, entry)
    masks = read_mask_raw(path)
    ct_size = read_ct_header(resolve_ct(ct_root, entry.name))[0] if ct_root is not None else None
    problems = [p for p in check_entry(entry, masks, ct_size) if not p.endswith("is empty")]
    if problems:
        raise InputFileError(path, "; ".join(problems))
    return masks


def split_by_findings(
    entries: Iterable[DatasetEntry],
) -> tuple[list[DatasetEntry], list[DatasetEntry]]:
    """(entries with at least one finding, entries with none). A scan without findings has nothing to ground,
    to score or to train on (ReXGroundingCT has none; a phantom may); predict and training skip it, counted.
    The evaluator form (``seg_path`` only) names no findings at all and is not split this way."""
    entries = list(entries)
    return [e for e in entries if e.findings], [e for e in entries if not e.findings]


def parse_shard(text: str) -> tuple[int, int]:
    """``--shard I/N`` (0-based: this process takes scans I, I+N, ...) as (I, N); argparse's type for it."""
    import argparse

    try:
        index, count = (int(v) for v in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard must be I/N with integers, got {text!r}") from None
    if count < 1 or not 0 <= index < count:
        raise argparse.ArgumentTypeError(f"--shard I/N needs 0 <= I < N, got {text!r}")
    return index, count
