"""One case end to end: read the CT, ground every finding with an engine, write the masks and a result record.

Shared by ``rexground predict-case``, ``rexground predict`` and the container's ``inference.py``, so the three
write the same masks for the same input. Output layouts (all uint8 0/1):

* one finding, ``write_mask``: a 3D mask with the CT's own geometry (spacing, origin, direction);
* several findings, ``write_channels``: (F, ni, nj, nk) in the CT's raw array order, identity header (the
  challenge's submission layout: channel f is finding f);
* several findings, ``write_vector_mask``: a 3D image with F components per voxel and the CT's geometry (the
  container's ``output.mha``: an image viewer shows it on the CT; read back in raw order it is the same
  (F, ni, nj, nk) array as the submission layout).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk
from pydantic import BaseModel, ConfigDict

from rexground.components import label_18
from rexground.engines.base import Engine, FindingPrediction
from rexground.errors import FindingTextError
from rexground.geometry import Geometry
from rexground.io import CTVolume, read_ct, write_channels, write_image, write_mask

# Far beyond any report sentence; guards against a whole report pasted as one finding.
MAX_FINDING_CHARS = 2000


class FindingResult(BaseModel):
    """What was predicted for one finding (one entry of ``results.json``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    channel: int
    text: str
    engine: str
    query: dict[str, Any] | None = None  # the parsed finding, when the engine parsed it
    voxels: int
    volume_ml: float
    components: int
    seconds: float  # this finding's share of the engine call (engines share work across findings)
    info: dict[str, Any] = {}  # everything else the engine reported (fallbacks, thresholds, ...)


class CaseResult(BaseModel):
    """The record of one predicted case: the container's ``results.json``, ``predict-case --json``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ct: str
    ct_shape_raw: tuple[int, int, int]
    spacing_mm: tuple[float, float, float]  # raw (i, j, k) order, from the CT header
    engine: str
    engine_reason: str
    output: str | None = None
    layout: str | None = None
    findings: tuple[FindingResult, ...]
    seconds_read: float
    seconds_predict: float


def validate_findings(findings: Sequence[object], source: str = "finding") -> list[str]:
    """The findings as stripped strings, or ``FindingTextError`` naming ``source`` and what is wrong."""
    if isinstance(findings, str | bytes) or not isinstance(findings, Sequence):
        raise FindingTextError(
            f"{source}: expected a list of finding sentences, got {type(findings).__name__}"
        )
    if len(findings) == 0:
        raise FindingTextError(f"{source}: no finding given (an empty list)")
    out = []
    for i, text in enumerate(findings):
        where = source if len(findings) == 1 else f"{source}[{i}]"
        if not isinstance(text, str):
            raise FindingTextError(
                f"{where}: a finding must be a string, got {type(text).__name__}: {text!r}"
            )
        text = " ".join(text.split())
        if not text:
            raise FindingTextError(f"{where}: the finding sentence is empty")
        if len(text) > MAX_FINDING_CHARS:
            raise FindingTextError(
                f"{where}: the finding has {len(text)} characters (more than {MAX_FINDING_CHARS})"
            )
        out.append(text)
    return out


def _jsonable(value: Any) -> Any:
    """Engine info made JSON-safe: pydantic models, numpy scalars and arrays' sizes, paths, tuples."""
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return f"<array shape={list(value.shape)} dtype={value.dtype}>"
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def _count_components(mask: np.ndarray) -> int:
    return int(label_18(mask > 0)[1])


@dataclass
class CasePrediction:
    """Masks (canonical) and the record of one case."""

    ct: CTVolume
    predictions: list[FindingPrediction]
    result: CaseResult

    def masks(self) -> np.ndarray:
        """(F, z, y, x) uint8 0/1 masks in canonical order."""
        return np.stack([(p.mask > 0).astype(np.uint8) for p in self.predictions])


class Predictor:
    """Runs one engine on cases; the engine is built once (a network engine's session is reused)."""

    def __init__(self, engine: Engine, engine_reason: str = ""):
        self.engine = engine
        self.engine_reason = engine_reason or f"engine {getattr(engine, 'name', type(engine).__name__)}"

    @property
    def engine_name(self) -> str:
        return str(getattr(self.engine, "name", type(self.engine).__name__))

    def predict(self, ct: CTVolume, findings: Sequence[object], seconds_read: float = 0.0) -> CasePrediction:
        texts = validate_findings(findings)
        start = time.perf_counter()
        predictions = list(self.engine.predict(ct, texts))
        seconds = time.perf_counter() - start
        if len(predictions) != len(texts):
            raise RuntimeError(
                f"engine {self.engine_name} answered {len(predictions)} of {len(texts)} findings"
            )
        voxel_ml = float(np.prod(ct.spacing_zyx)) / 1000.0
        results = []
        for channel, (text, pred) in enumerate(zip(texts, predictions, strict=True)):
            if pred.mask.shape != ct.shape:
                raise RuntimeError(
                    f"engine {self.engine_name} returned shape {pred.mask.shape} for CT {ct.shape}"
                )
            info = dict(pred.info)
            query = info.pop("query", None)
            finding_seconds = info.pop("seconds", None)
            voxels = int(np.count_nonzero(pred.mask))
            results.append(
                FindingResult(
                    channel=channel,
                    text=text,
                    engine=str(info.pop("engine", self.engine_name)),
                    query=_jsonable(query) if query is not None else None,
                    voxels=voxels,
                    volume_ml=round(voxels * voxel_ml, 3),
                    components=_count_components(pred.mask),
                    seconds=round(
                        float(finding_seconds) if finding_seconds is not None else seconds / len(texts), 3
                    ),
                    info=_jsonable(info),
                )
            )
        result = CaseResult(
            ct=str(ct.path) if ct.path else "<memory>",
            ct_shape_raw=ct.geometry.size,
            spacing_mm=ct.geometry.spacing,
            engine=self.engine_name,
            engine_reason=self.engine_reason,
            findings=tuple(results),
            seconds_read=round(seconds_read, 3),
            seconds_predict=round(seconds, 3),
        )
        return CasePrediction(ct, predictions, result)

    def predict_file(self, ct_path: str | Path, findings: Sequence[object]) -> CasePrediction:
        """Validate the findings first (cheap), then read the CT (slow) and predict."""
        validate_findings(findings)
        start = time.perf_counter()
        ct = read_ct(ct_path)
        return self.predict(ct, findings, seconds_read=time.perf_counter() - start)


def write_vector_mask(path: str | Path, masks_fzyx: np.ndarray, geometry: Geometry) -> Path:
    """(F, z, y, x) masks as one 3D image with F uint8 components per voxel and the CT's geometry (MHA/NRRD
    keep both). Read back with ``read_mask_raw`` it is (F, ni, nj, nk), like the submission layout."""
    path = Path(path)
    masks_fzyx = np.asarray(masks_fzyx)
    if masks_fzyx.ndim != 4 or masks_fzyx.shape[1:] != geometry.canonical_shape:
        raise ValueError(f"{path}: masks shape {masks_fzyx.shape} is not (F, *{geometry.canonical_shape})")
    raw = geometry.to_raw((masks_fzyx > 0).astype(np.uint8))  # (F, ni, nj, nk)
    # SimpleITK's vector array order is (nk, nj, ni, components).
    image = sitk.GetImageFromArray(np.ascontiguousarray(raw.transpose(3, 2, 1, 0)), isVector=True)
    geometry.apply_to(image)
    return write_image(image, path)  # atomic, and checked before it gets its name


def write_case(path: str | Path, case: CasePrediction, several: str = "channels") -> tuple[Path, str]:
    """Write the masks of ``case``: one finding -> 3D mask with the CT geometry; several -> ``several`` layout
    ("channels": (F, ni, nj, nk) submission layout; "vector": F components with the CT geometry).
    Returns the path and the layout name used."""
    masks = case.masks()
    if len(masks) == 1:
        return write_mask(path, masks[0], case.ct.geometry), "mask-3d"
    if several == "channels":
        return write_channels(path, masks, case.ct.geometry), "channels-first-raw"
    if several == "vector":
        return write_vector_mask(path, masks, case.ct.geometry), "vector-components"
    raise ValueError(f"unknown layout {several!r} for several findings (channels | vector)")
