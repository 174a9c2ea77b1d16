"""Aggregation of per-case results into the official summary, the per-category block and the distance block.

* ``dice_per_case`` (THE LEADERBOARD NUMBER): mean over cases of each case's mean finding Dice.
* ``dice_per_finding``: mean Dice over all findings; ``hit_rate``: hits / findings.
* Instance precision / recall / F1 are micro: TP, FP, FN summed over all findings; a zero denominator gives
  1.0 for precision or recall, and F1 is 0.0 when both are 0.
* ``mean_matched_dice``: mean Dice of all matched instance pairs (0.0 when nothing matched).
Cases with ``status == "error"`` are never scored; ``missing`` cases are scored (as zeros) under the default
policy ``zero`` and left out under ``drop``, the official script's behaviour.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict

from rexground.categories import CATEGORY_CODES, FOCAL_CATEGORIES
from rexground.metrics.results import CaseResult, FindingResult

MissingPolicy = Literal["zero", "drop"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class GroupScore(_Frozen):
    """Finding-weighted scores of a group of findings (a category, focal, non-focal)."""

    n_findings: int
    dice: float
    hit_rate: float
    tp: int | None = None
    fp: int | None = None
    fn: int | None = None


class DistanceSummary(_Frozen):
    """Micro-averaged distance-based detection (see :mod:`rexground.metrics.distances`)."""

    available: bool
    reason: str | None = None  # why the block is absent or partial
    n_findings: int = 0
    tp: int = 0
    fp: int = 0
    fn: int = 0
    precision: float | None = None
    recall: float | None = None
    f1: float | None = None
    by_kind: dict[str, dict[str, float | int]] = {}


class Summary(_Frozen):
    n_cases: int
    n_findings: int
    dice_per_case: float
    dice_per_finding: float
    hit_rate: float
    instance_precision: float | None
    instance_recall: float | None
    instance_f1: float | None
    tp: int | None
    fp: int | None
    fn: int | None
    mean_matched_dice: float | None
    n_gt_instances: int | None
    n_pred_instances: int
    mode: Literal["full", "global-only"]
    missing_policy: MissingPolicy
    n_missing: int
    n_errors: int
    per_category: dict[str, GroupScore]
    focal: GroupScore | None
    non_focal: GroupScore | None
    distance: DistanceSummary


def precision_recall_f1(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def _mean(values: Sequence[float]) -> float:
    return float(sum(values) / len(values)) if values else 0.0


def _group(findings: Sequence[FindingResult], full: bool) -> GroupScore:
    extra = {}
    if full:
        extra = {
            "tp": sum(f.tp or 0 for f in findings),
            "fp": sum(f.fp or 0 for f in findings),
            "fn": sum(f.fn or 0 for f in findings),
        }
    return GroupScore(
        n_findings=len(findings),
        dice=_mean([f.dice for f in findings]),
        hit_rate=_mean([float(f.hit) for f in findings]),
        **extra,
    )


def scored_cases(results: Iterable[CaseResult], missing: MissingPolicy = "zero") -> list[CaseResult]:
    """The cases that enter the summary under the missing-prediction policy."""
    keep = {"ok", "missing"} if missing == "zero" else {"ok"}
    return [r for r in results if r.status in keep]


def _distance_summary(
    findings: Sequence[FindingResult], reasons: set[str], n_cases_without: int
) -> DistanceSummary:
    with_distance = [f for f in findings if f.distance is not None]
    if not findings:
        return DistanceSummary(available=False, reason="no finding was scored")
    if not with_distance:
        reason = "; ".join(sorted(reasons)) or "no CT spacing was given (--ct-dir)"
        return DistanceSummary(available=False, reason=reason)
    tp = sum(f.distance.tp for f in with_distance)  # type: ignore[union-attr]
    fp = sum(f.distance.fp for f in with_distance)  # type: ignore[union-attr]
    fn = sum(f.distance.fn for f in with_distance)  # type: ignore[union-attr]
    p, r, f1 = precision_recall_f1(tp, fp, fn)
    by_kind: dict[str, dict[str, float | int]] = {}
    for kind in ("centroid", "assd"):
        group = [f.distance for f in with_distance if f.distance.kind == kind]  # type: ignore[union-attr]
        if group:
            ktp, kfp, kfn = (sum(getattr(d, k) for d in group) for k in ("tp", "fp", "fn"))
            kp, kr, kf = precision_recall_f1(ktp, kfp, kfn)
            by_kind[kind] = {"n_findings": len(group), "tp": ktp, "fp": kfp, "fn": kfn,
                             "precision": kp, "recall": kr, "f1": kf}  # fmt: skip
    reason = None
    if n_cases_without:
        reason = f"{n_cases_without} case(s) without CT spacing left out: " + "; ".join(sorted(reasons))
    return DistanceSummary(
        available=True, reason=reason, n_findings=len(with_distance), tp=tp, fp=fp, fn=fn,
        precision=p, recall=r, f1=f1, by_kind=by_kind,
    )  # fmt: skip


def aggregate(
    results: Iterable[CaseResult], missing: MissingPolicy = "zero", global_only: bool = False
) -> Summary:
    """The official summary of a set of case results."""
    results = list(results)
    cases = scored_cases(results, missing)
    findings = [f for c in cases for f in c.findings]
    case_means = [c.mean_dice for c in cases if c.findings]
    full = not global_only
    instance: dict = dict.fromkeys(
        (
            "instance_precision",
            "instance_recall",
            "instance_f1",
            "tp",
            "fp",
            "fn",
            "mean_matched_dice",
            "n_gt_instances",
        )
    )
    if full:
        tp = sum(f.tp or 0 for f in findings)
        fp = sum(f.fp or 0 for f in findings)
        fn = sum(f.fn or 0 for f in findings)
        p, r, f1 = precision_recall_f1(tp, fp, fn)
        matched = [m.dice for f in findings for m in f.matches]
        instance = {
            "instance_precision": p, "instance_recall": r, "instance_f1": f1, "tp": tp, "fp": fp, "fn": fn,
            "mean_matched_dice": _mean(matched), "n_gt_instances": sum(f.n_gt_instances or 0 for f in findings),
        }  # fmt: skip
    per_category = {}
    for code in (*CATEGORY_CODES, "unknown"):
        group = [f for f in findings if f.category == code]
        if group:
            per_category[code] = _group(group, full)
    focal = [f for f in findings if f.category in FOCAL_CATEGORIES]
    non_focal = [f for f in findings if f.category in CATEGORY_CODES and f.category not in FOCAL_CATEGORIES]
    reasons = {c.distance_note for c in cases if c.distance_note}
    n_without = sum(1 for c in cases if c.spacing_mm is None and c.findings)
    return Summary(
        n_cases=len(cases),
        n_findings=len(findings),
        dice_per_case=_mean([m for m in case_means if m is not None]),
        dice_per_finding=_mean([f.dice for f in findings]),
        hit_rate=_mean([float(f.hit) for f in findings]),
        n_pred_instances=sum(f.n_pred_instances for f in findings),
        mode="global-only" if global_only else "full",
        missing_policy=missing,
        n_missing=sum(1 for r in results if r.status == "missing"),
        n_errors=sum(1 for r in results if r.status == "error"),
        per_category=per_category,
        focal=_group(focal, full) if focal else None,
        non_focal=_group(non_focal, full) if non_focal else None,
        distance=_distance_summary(findings, reasons, n_without) if full else
        DistanceSummary(available=False, reason="global-only mode computes no instance metrics"),
        **instance,
    )  # fmt: skip
