"""The official ReXGrounding evaluation, exact and fast, as a small library.

Library API (used by ``rexground evaluate`` and by the evaluation container)::

    from rexground.metrics import evaluate_case, missing_case, aggregate, ShapeMismatchError

    result = evaluate_case(gt_raw, pred_raw, categories=["2d", "1c"], spacing=(0.7, 0.7, 1.5), name="x.nii.gz")
    # gt_raw, pred_raw: (F, H, W, D) arrays in the same raw order, as rexground.io.read_mask_raw returns them
    # categories: one code per channel (or {finding key: code}); spacing: CT spacing in mm, raw (i, j, k) order,
    # optional (enables the distance metrics); global_only=True skips instance matching.
    result.findings[0].dice, result.findings[0].hit, result.findings[0].tp, result.findings[0].matches
    summary = aggregate([result, ...], missing="zero" | "drop", global_only=False)
    summary.dice_per_case  # the leaderboard number; summary.model_dump() is JSON-ready

    from rexground.metrics import evaluate_files
    result = evaluate_files(gt_path, pred_path, categories, ct_path=None)  # reads the files, never raises
    # on bad input: returns a CaseResult with status "error" (or "missing") and the reason

    doc = metrics_document(summary, results)  # the metrics.json dict: summary, per_category, distance, cases
    print(format_summary(summary))            # the readable table

The rules (18-connectivity, < 10 voxels removed, 50 largest kept, Dice with eps 1e-6, hit at 0.1, greedy
matching at Dice >= 0.2, micro P/R/F1) are documented in :mod:`rexground.metrics.official`, the aggregation in
:mod:`rexground.metrics.aggregate`, the distance metrics in :mod:`rexground.metrics.distances`.
"""

from rexground.metrics.aggregate import Summary, aggregate, precision_recall_f1
from rexground.metrics.cases import evaluate_files
from rexground.metrics.official import ShapeMismatchError, dice_score, evaluate_case, missing_case
from rexground.metrics.report import format_summary, metrics_document
from rexground.metrics.results import CaseResult, FindingDistance, FindingResult, InstanceMatch

__all__ = [
    "CaseResult",
    "FindingDistance",
    "FindingResult",
    "InstanceMatch",
    "ShapeMismatchError",
    "Summary",
    "aggregate",
    "dice_score",
    "evaluate_case",
    "evaluate_files",
    "format_summary",
    "metrics_document",
    "missing_case",
    "precision_recall_f1",
]
