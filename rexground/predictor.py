"""One case end to end: read the CT, parse every finding once, ground them with an engine, keep the record.

Shared by ``rexground predict-case``, ``rexground predict`` and the container's ``inference.py``, so the three
write the same masks for the same input. The masks' file layouts are ``rexground.io.write_masks``'s;
``CasePrediction.write`` writes them and the case's record (``results.json``), the one place that does.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from rexground.components import label_18
from rexground.engines.base import Engine, FindingPrediction
from rexground.errors import FindingTextError
from rexground.io import CTVolume, read_ct, write_json, write_masks

# Far beyond any report sentence; guards against a whole report pasted as one finding.
MAX_FINDING_CHARS = 2000


class FindingRecord(BaseModel):
    """What was predicted for one finding (one entry of ``results.json``). ``voxels``, ``volume_ml`` and
    ``components`` are measured on the final mask; ``info`` never repeats them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    channel: int
    text: str
    engine: str
    query: dict[str, Any]  # the parsed finding (rexground.text.query.FindingQuery), as the engine got it
    voxels: int
    volume_ml: float
    components: int
    seconds: float  # this finding's share of the engine call (engines share work across findings)
    info: dict[str, Any] = {}  # everything else the engine reported (fallbacks, thresholds, ...)


class CaseRecord(BaseModel):
    """The record of one predicted case: the container's ``results.json``, ``predict-case --json``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ct: str
    ct_shape_raw: tuple[int, int, int]
    spacing_mm: tuple[float, float, float]  # raw (i, j, k) order, from the CT header
    engine: str
    engine_reason: str
    output: str | None = None
    layout: str | None = None
    findings: tuple[FindingRecord, ...]
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
    record: CaseRecord

    def masks(self) -> np.ndarray:
        """(F, z, y, x) uint8 0/1 masks in canonical order."""
        return np.stack([(p.mask > 0).astype(np.uint8) for p in self.predictions])

    def write(
        self, mask_path: str | Path, *, several: str = "channels", results_path: str | Path | None = None
    ) -> CaseRecord:
        """Write the masks (``rexground.io.write_masks``: one finding a 3D mask with the CT's geometry,
        several in the ``several`` layout) and, given ``results_path``, the record as JSON; returns the
        record with the output path and layout filled in."""
        written, layout = write_masks(mask_path, self.masks(), self.ct.geometry, several)
        record = self.record.model_copy(update={"output": str(written), "layout": layout})
        if results_path is not None:
            write_json(results_path, record.model_dump(mode="json"))
        return record


class Predictor:
    """Runs one engine on cases; the engine is built once (a network engine's session is reused)."""

    def __init__(self, engine: Engine, engine_reason: str = ""):
        self.engine = engine
        self.engine_reason = engine_reason or f"engine {getattr(engine, 'name', type(engine).__name__)}"

    @property
    def engine_name(self) -> str:
        return str(getattr(self.engine, "name", type(self.engine).__name__))

    def predict(self, ct: CTVolume, findings: Sequence[object], seconds_read: float = 0.0) -> CasePrediction:
        from rexground.text.parser import parse_finding

        texts = validate_findings(findings)
        queries = [parse_finding(t) for t in texts]  # once per finding; the engine gets the queries
        start = time.perf_counter()
        predictions = list(self.engine.predict(ct, queries))
        seconds = time.perf_counter() - start
        if len(predictions) != len(texts):
            raise RuntimeError(
                f"engine {self.engine_name} answered {len(predictions)} of {len(texts)} findings"
            )
        voxel_ml = float(np.prod(ct.spacing_zyx)) / 1000.0
        records = []
        for channel, (query, pred) in enumerate(zip(queries, predictions, strict=True)):
            if pred.mask.shape != ct.shape:
                raise RuntimeError(
                    f"engine {self.engine_name} returned shape {pred.mask.shape} for CT {ct.shape}"
                )
            info = dict(pred.info)
            engine = str(info.pop("engine", self.engine_name))
            finding_seconds = info.pop("seconds", None)
            # One value per fact: what the record measures on the final mask is not repeated from the
            # engine's notes (a rule's volume of its working-grid candidate, a voxel count before filtering).
            for name in FindingRecord.model_fields:
                info.pop(name, None)
            voxels = int(np.count_nonzero(pred.mask))
            records.append(
                FindingRecord(
                    channel=channel,
                    text=query.text,
                    engine=engine,
                    query=query.model_dump(mode="json"),
                    voxels=voxels,
                    volume_ml=round(voxels * voxel_ml, 3),
                    components=_count_components(pred.mask),
                    seconds=round(
                        float(finding_seconds) if finding_seconds is not None else seconds / len(texts), 3
                    ),
                    info=_jsonable(info),
                )
            )
        record = CaseRecord(
            ct=str(ct.path) if ct.path else "<memory>",
            ct_shape_raw=ct.geometry.size,
            spacing_mm=ct.geometry.spacing,
            engine=self.engine_name,
            engine_reason=self.engine_reason,
            findings=tuple(records),
            seconds_read=round(seconds_read, 3),
            seconds_predict=round(seconds, 3),
        )
        return CasePrediction(ct, predictions, record)

    def predict_file(
        self, ct_path: str | Path, findings: Sequence[object], uneven_slices: str = "refuse"
    ) -> CasePrediction:
        """Validate the findings first (cheap), then read the CT (slow) and predict. ``uneven_slices`` is
        ``read_ct``'s choice for a DICOM series with uneven slice positions ("refuse" or "resample")."""
        validate_findings(findings)
        start = time.perf_counter()
        ct = read_ct(ct_path, uneven_slices=uneven_slices)
        return self.predict(ct, findings, seconds_read=time.perf_counter() - start)
