"""Score one case from its files: read GT and prediction as stored (raw order, no reorientation), take the
spacing from the CT header, and turn every kind of bad input into a listed result instead of an exception,
so that one bad file never stops a run."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from rexground.errors import RexgroundError
from rexground.metrics.official import ShapeMismatchError, evaluate_case, missing_case
from rexground.metrics.results import CaseResult


def evaluate_files(
    gt_path: str | Path,
    pred_path: str | Path,
    categories: Sequence[str] | Mapping[str, str] | None = None,
    *,
    keys: Sequence[str] | None = None,
    ct_path: str | Path | None = None,
    spacing: Sequence[float] | None = None,
    global_only: bool = False,
    name: str | None = None,
    ct_note: str | None = None,
) -> CaseResult:
    """Score ``pred_path`` against ``gt_path``. A missing prediction gives a ``missing`` result (zeros); an
    unreadable file or a shape mismatch gives an ``error`` result naming the file and the problem.
    ``ct_note`` says why no CT is given (it becomes the case's ``distance_note``)."""
    from rexground.dataset import read_ct_spacing
    from rexground.io import read_mask_raw

    gt_path, pred_path = Path(gt_path), Path(pred_path)
    name = name or pred_path.name
    try:
        gt = read_mask_raw(gt_path)
    except RexgroundError as exc:
        return CaseResult(name=name, status="error", error=f"ground truth: {exc}")
    if keys is not None and (gt.ndim != 4 or gt.shape[0] != len(keys)):
        return CaseResult(name=name, status="error", error=f"{gt_path}: ground truth has shape {gt.shape}, "
                          f"expected {len(keys)} finding channels (F, H, W, D)")  # fmt: skip
    note = ct_note
    if spacing is None and ct_path is not None:
        try:
            spacing = read_ct_spacing(ct_path)
        except RexgroundError as exc:
            note = f"CT spacing unreadable: {exc}"
    if spacing is None and note is None:
        note = "no CT given (--ct-dir)"
    if not pred_path.exists():
        result = missing_case(name, gt, categories, spacing, keys=keys, global_only=global_only)
        return result.model_copy(update={"error": f"{pred_path}: prediction file does not exist",
                                         "distance_note": note})  # fmt: skip
    try:
        pred = read_mask_raw(pred_path)
    except RexgroundError as exc:
        return CaseResult(name=name, status="error", error=f"prediction: {exc}")
    try:
        result = evaluate_case(gt, pred, categories, spacing, name=name, keys=keys, global_only=global_only)
    except ShapeMismatchError as exc:
        return CaseResult(name=name, status="error", error=f"{pred_path}: {exc}")
    except ValueError as exc:
        return CaseResult(name=name, status="error", error=f"{pred_path}: {exc}")
    return result.model_copy(
        update={
            "distance_note": None if spacing is not None else note,
            "warnings": tuple(f"{pred_path}: {w}" for w in result.warnings),  # the file the warning is about
        }
    )
