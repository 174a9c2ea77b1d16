"""A straightforward implementation of the official rules, written for clarity and not speed: the full
volume is labelled, every instance becomes a full-volume boolean mask and every (GT, prediction) pair is
compared voxel by voxel. It is the baseline of ``bench/bench_evaluate.py`` and the oracle the tests compare
:mod:`rexground.metrics.official` against; never use it to score a real submission (minutes per case)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import ndimage

LabelFn = Callable[[np.ndarray], tuple[np.ndarray, int]]


def scipy_label_18(mask: np.ndarray) -> tuple[np.ndarray, int]:
    labels, n = ndimage.label(mask, structure=ndimage.generate_binary_structure(3, 2))
    return labels, int(n)


def reference_filter(mask: np.ndarray, label_fn: LabelFn = scipy_label_18) -> np.ndarray:
    """Components under 10 voxels removed, relabelled in label order, the 50 largest kept (ties: lower
    label), relabelled again 1..n in label order."""
    labels, n = label_fn(mask > 0)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    big = [lab for lab in range(1, n + 1) if sizes[lab] >= 10]
    relabelled = np.zeros_like(labels)
    for new, old in enumerate(big, start=1):
        relabelled[labels == old] = new
    if len(big) > 50:
        new_sizes = [(int(sizes[old]), new) for new, old in enumerate(big, start=1)]
        # Largest first; on equal size the lower label first.
        keep = sorted(lab for _, lab in sorted(new_sizes, key=lambda t: (-t[0], t[1]))[:50])
        out = np.zeros_like(labels)
        for new, old in enumerate(keep, start=1):
            out[relabelled == old] = new
        relabelled = out
    return relabelled


def reference_dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if not a.any() and not b.any():
        return 1.0
    return (2.0 * np.logical_and(a, b).sum() + 1e-6) / (a.sum() + b.sum() + 1e-6)


def reference_channel(gt: np.ndarray, pred: np.ndarray, label_fn: LabelFn = scipy_label_18) -> dict:
    """Official metrics of one finding channel; ``pred`` is cast to uint8 first."""
    pred_labels = reference_filter(pred.astype(np.uint8), label_fn)
    dice = reference_dice(pred_labels > 0, gt > 0)
    gt_values = [int(v) for v in np.unique(gt) if v != 0]
    pred_values = list(range(1, int(pred_labels.max()) + 1))
    scores = np.zeros((len(gt_values), len(pred_values)))
    for i, v in enumerate(gt_values):
        gt_mask = gt == v
        for j, p in enumerate(pred_values):
            scores[i, j] = reference_dice(gt_mask, pred_labels == p)
    matches = []
    free_gt, free_pred = set(range(len(gt_values))), set(range(len(pred_values)))
    while free_gt and free_pred:
        best = max((scores[i, j], -i, -j) for i in free_gt for j in free_pred)
        score, i, j = best[0], -best[1], -best[2]
        if score < 0.2:
            break
        matches.append((gt_values[i], pred_values[j], float(score)))
        free_gt.discard(i)
        free_pred.discard(j)
    return {
        "dice": float(dice),
        "hit": bool(dice >= 0.1),
        "n_gt_instances": len(gt_values),
        "n_pred_instances": len(pred_values),
        "tp": len(matches),
        "fp": len(pred_values) - len(matches),
        "fn": len(gt_values) - len(matches),
        "matches": matches,
    }


def reference_case(gt: np.ndarray, pred: np.ndarray, label_fn: LabelFn = scipy_label_18) -> list[dict]:
    return [reference_channel(gt[c], pred[c], label_fn) for c in range(gt.shape[0])]
