"""The metrics.json document and the readable summary table printed by ``rexground evaluate``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rexground.categories import CATEGORY_NAMES
from rexground.metrics.aggregate import GroupScore, Summary
from rexground.metrics.results import CaseResult

_BLOCKS = ("per_category", "focal", "non_focal", "distance")


def case_counts(results: Sequence[CaseResult], summary: Summary | None) -> dict[str, int]:
    """How many cases there were, how many entered the summary, were refused (errors) or missing."""
    return {
        "cases": len(results),
        "scored": summary.n_cases if summary is not None else 0,
        "refused": sum(1 for r in results if r.status == "error"),
        "missing": sum(1 for r in results if r.status == "missing"),
    }


def metrics_document(
    summary: Summary | None,
    results: Sequence[CaseResult],
    *,
    settings: dict[str, Any] | None = None,
    extra_predictions: Sequence[str] = (),
) -> dict[str, Any]:
    """The metrics.json content: ``summary`` (the official keys), ``per_category`` (per code, plus ``focal``
    and ``non_focal``), ``distance``, ``counts`` (cases scored, refused, missing), ``cases`` (per finding
    details), ``missing``, ``errors``, ``warnings``. With ``summary`` None (no case could be scored) the
    metric blocks are null: no number stands for cases that were never scored."""
    blocks: dict[str, Any] = {"summary": None, "per_category": None, "distance": None}
    if summary is not None:
        dumped = summary.model_dump(mode="json")
        per_category = dict(dumped["per_category"])
        per_category["focal"] = dumped["focal"]
        per_category["non_focal"] = dumped["non_focal"]
        blocks = {
            "summary": {k: v for k, v in dumped.items() if k not in _BLOCKS},
            "per_category": per_category,
            "distance": dumped["distance"],
        }
    return {
        **blocks,
        "counts": case_counts(results, summary),
        "missing": [r.name for r in results if r.status == "missing"],
        "errors": [{"name": r.name, "error": r.error} for r in results if r.status == "error"],
        "warnings": [{"name": r.name, "warning": w} for r in results for w in r.warnings],
        "extra_predictions": list(extra_predictions),
        "settings": settings or {},
        "cases": [r.model_dump(mode="json") for r in results],
    }


def format_problems(results: Sequence[CaseResult], max_warnings: int = 10) -> list[str]:
    """The lines printed before the summary: every refused case (why it was not scored), then warnings."""
    lines = [f"error: {r.name}: {r.error} (refused: not scored)" for r in results if r.status == "error"]
    warnings = [f"warning: {r.name}: {w}" for r in results for w in r.warnings]
    lines += warnings[:max_warnings]
    if len(warnings) > max_warnings:
        lines.append(f"warning: ... {len(warnings) - max_warnings} more warnings in metrics.json")
    return lines


def write_metrics_json(path: str | Path, document: dict[str, Any]) -> Path:
    """Write the document atomically (``rexground.io.write_json``: temporary file beside it, then rename)."""
    from rexground.io import write_json

    return write_json(path, document)


def _fmt(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _group_row(label: str, name: str, g: GroupScore) -> str:
    counts = "" if g.tp is None else f" {g.tp:>6} {g.fp:>6} {g.fn:>6}"
    return f"  {label:<9} {name:<30} {g.n_findings:>5} {g.dice:>7.4f} {g.hit_rate:>6.3f}{counts}"


def _total_cases(s: Summary) -> int:
    with_prediction = s.n_cases - (s.n_missing if s.missing_policy == "zero" else 0)
    return with_prediction + s.n_missing + s.n_errors


def format_summary(summary: Summary) -> str:
    """A plain-text table of the summary, per-category block and distance block."""
    s = summary
    lines = [
        f"ReXGrounding evaluation ({s.mode}; missing predictions: {s.missing_policy})",
        f"  scored {s.n_cases} of {_total_cases(s)} cases ({s.n_findings} findings); refused {s.n_errors} "
        f"(errors, not scored); missing {s.n_missing} "
        f"({'scored 0' if s.missing_policy == 'zero' else 'not scored'})",
        "",
        f"  {'Dice per case (leaderboard)':<32} {_fmt(s.dice_per_case)}",
        f"  {'Dice per finding':<32} {_fmt(s.dice_per_finding)}",
        f"  {'Hit rate (Dice >= 0.1)':<32} {_fmt(s.hit_rate)}",
    ]
    if s.mode == "full":
        lines += [
            f"  {'Instance precision / recall / F1':<32} {_fmt(s.instance_precision)} / "
            f"{_fmt(s.instance_recall)} / {_fmt(s.instance_f1)}   (TP {s.tp}, FP {s.fp}, FN {s.fn})",
            f"  {'Mean Dice of matched instances':<32} {_fmt(s.mean_matched_dice)}",
            f"  {'GT / predicted instances':<32} {s.n_gt_instances} / {s.n_pred_instances}",
        ]
    d = s.distance
    if d.available:
        lines.append(
            f"  {'Distance P / R / F1':<32} {_fmt(d.precision)} / {_fmt(d.recall)} / {_fmt(d.f1)}"
            f"   (TP {d.tp}, FP {d.fp}, FN {d.fn}; centroid for focal, ASSD for non-focal, <= 2 x max spacing)"
        )
        if d.reason:
            lines.append(f"  {'':<32} note: {d.reason}")
    else:
        lines.append(f"  {'Distance metrics':<32} absent: {d.reason}")
    counts = f" {'TP':>6} {'FP':>6} {'FN':>6}" if s.mode == "full" else ""
    lines += ["", f"  {'category':<9} {'':<30} {'n':>5} {'Dice':>7} {'hit':>6}{counts}"]
    for code, g in s.per_category.items():
        lines.append(_group_row(code, CATEGORY_NAMES.get(code, code), g))
    for label, g in (("focal", s.focal), ("non-focal", s.non_focal)):
        if g is not None:
            lines.append(_group_row(label, "2a-2h" if label == "focal" else "1a-1f", g))
    return "\n".join(lines)
