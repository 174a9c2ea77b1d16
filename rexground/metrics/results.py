"""Per-finding and per-case results of the evaluation, as frozen pydantic models (they go into metrics.json
and cross process boundaries between the evaluation workers and the aggregator)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from rexground.categories import FOCAL_CATEGORIES


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class InstanceMatch(_Frozen):
    """One matched (GT instance, predicted component) pair: GT label value, kept-component label, Dice."""

    gt_label: int
    pred_label: int
    dice: float


class DistanceMatch(_Frozen):
    gt_label: int
    pred_label: int
    distance_mm: float


class FindingDistance(_Frozen):
    """Distance-based instance detection of one finding (see :mod:`rexground.metrics.distances`)."""

    kind: Literal["centroid", "assd"]
    threshold_mm: float
    tp: int
    fp: int
    fn: int
    matches: tuple[DistanceMatch, ...] = ()


class FindingResult(_Frozen):
    """The official metrics of one finding channel. Instance fields are ``None`` in global-only mode."""

    index: int  # channel index
    key: str  # the finding key of the dataset entry ("0", "1", ...)
    category: str  # category code, or "unknown"
    dice: float
    hit: bool
    gt_voxels: int
    pred_voxels: int  # after the official component filter
    n_pred_instances: int  # kept components
    n_gt_instances: int | None = None
    tp: int | None = None
    fp: int | None = None
    fn: int | None = None
    matches: tuple[InstanceMatch, ...] = ()
    distance: FindingDistance | None = None

    @property
    def is_focal(self) -> bool:
        return self.category in FOCAL_CATEGORIES


class CaseResult(_Frozen):
    """One scan: ``ok`` (scored), ``missing`` (no prediction file; findings scored 0 when the policy is
    ``zero``) or ``error`` (shape mismatch, unreadable file: not scored, listed)."""

    name: str
    status: Literal["ok", "missing", "error"] = "ok"
    error: str | None = None
    warnings: tuple[str, ...] = ()
    spacing_mm: tuple[float, float, float] | None = None  # CT spacing in raw (i, j, k) order
    distance_note: str | None = None  # why distance metrics are absent for this case
    findings: tuple[FindingResult, ...] = ()

    @property
    def mean_dice(self) -> float | None:
        if not self.findings:
            return None
        return sum(f.dice for f in self.findings) / len(self.findings)
