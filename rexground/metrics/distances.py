"""Distance-based instance detection, the challenge page's second family of metrics (no public code exists;
this is our documented version).

Definitions (all distances in millimetres, voxel spacing from the CT header, in raw (i, j, k) order; the
challenge's mask headers carry an identity affine and are never used):

* Instances: GT instances are the distinct non-zero values of the channel; predicted instances are the
  components kept by the official filter (18-connected, >= 10 voxels, the 50 largest), as in the Dice-based
  matching.
* Focal categories (2a-2h) use the **centroid distance**: the Euclidean distance between the centres of mass
  of the two instances' voxels (voxel index x spacing).
* Non-focal categories (1a-1f) use the **average symmetric surface distance (ASSD)**: the surface of an
  instance is its voxels with at least one of their 6 face neighbours outside the instance; ASSD is the mean,
  over the surface voxels of both instances, of the distance from each to the nearest surface voxel of the
  other: ``(sum_a d(a, dB) + sum_b d(b, dA)) / (|dA| + |dB|)``.
* A finding whose category is unknown (the evaluator-form dataset has no categories) is treated as focal.
* A pair is a candidate when its distance is <= 2 x the CT's largest voxel spacing. Greedy one-to-one
  matching by distance: candidates in ascending distance (ties: lower GT value, then lower component label),
  a pair is accepted when neither side is matched yet. TP = accepted pairs, FP = unmatched predicted
  instances, FN = unmatched GT instances; precision, recall and F1 are micro-averaged over findings
  (:mod:`rexground.metrics.aggregate`), with 1.0 for a zero denominator as in the official logic.

ASSD is only computed for pairs whose bounding boxes are close enough: every surface distance is at least the
gap between the two boxes, so a pair whose gap exceeds the threshold cannot be a candidate.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

from rexground.categories import DIFFUSE_CATEGORIES
from rexground.metrics.results import DistanceMatch, FindingDistance

if TYPE_CHECKING:
    from rexground.metrics.official import ChannelData

THRESHOLD_SPACINGS = 2.0
_STRUCTURE_6 = ndimage.generate_binary_structure(3, 1)


def distance_kind(category: str) -> str:
    """'assd' for the non-focal categories 1a-1f, 'centroid' for focal and unknown ones."""
    return "assd" if category in DIFFUSE_CATEGORIES else "centroid"


def distance_threshold_mm(spacing: tuple[float, float, float]) -> float:
    return THRESHOLD_SPACINGS * float(max(spacing))


def empty_distance(category: str, spacing: tuple[float, float, float], n_gt: int) -> FindingDistance:
    """The distance result of a finding without any predicted instance."""
    return FindingDistance(
        kind=distance_kind(category), threshold_mm=distance_threshold_mm(spacing), tp=0, fp=0, fn=n_gt
    )  # type: ignore[arg-type]


def _group_coords(
    flat: np.ndarray, groups: np.ndarray, n_groups: int, shape: tuple[int, int, int]
) -> list[np.ndarray]:
    """Voxel coordinates (N_g, 3) of each group 0..n_groups-1."""
    order = np.argsort(groups, kind="stable")
    coords = np.stack(np.unravel_index(flat[order], shape), axis=1)
    bounds = np.searchsorted(groups[order], np.arange(n_groups + 1))
    return [coords[bounds[g] : bounds[g + 1]] for g in range(n_groups)]


def _surface(mask: np.ndarray) -> np.ndarray:
    return mask & ~ndimage.binary_erosion(mask, structure=_STRUCTURE_6, border_value=0)


def assd_mm(coords_a: np.ndarray, coords_b: np.ndarray, spacing: tuple[float, float, float]) -> float:
    """Average symmetric surface distance of two voxel sets given as (N, 3) index coordinates."""
    lo = np.minimum(coords_a.min(axis=0), coords_b.min(axis=0)) - 1
    hi = np.maximum(coords_a.max(axis=0), coords_b.max(axis=0)) + 2
    box = tuple(int(h - lo_) for lo_, h in zip(lo, hi, strict=True))
    masks = []
    for coords in (coords_a, coords_b):
        m = np.zeros(box, dtype=bool)
        m[tuple((coords - lo).T)] = True
        masks.append(_surface(m))
    surf_a, surf_b = masks
    dist_to_b = ndimage.distance_transform_edt(~surf_b, sampling=spacing)
    dist_to_a = ndimage.distance_transform_edt(~surf_a, sampling=spacing)
    total = float(dist_to_b[surf_a].sum()) + float(dist_to_a[surf_b].sum())
    return total / float(surf_a.sum() + surf_b.sum())


def _box_gap_mm(a: np.ndarray, b: np.ndarray, spacing: np.ndarray) -> float:
    """Lower bound of the distance between any voxel of a and any voxel of b, from their bounding boxes."""
    gap = np.maximum(0, np.maximum(b.min(axis=0) - a.max(axis=0), a.min(axis=0) - b.max(axis=0)))
    return float(np.sqrt(((gap * spacing) ** 2).sum()))


def greedy_distance_match(distances: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """One-to-one matching of a (n_gt, n_pred) distance matrix: ascending distance, ties in row-major order,
    only pairs with distance <= threshold (NaN/inf = not a candidate)."""
    rows, cols = np.nonzero(distances <= threshold)
    order = np.lexsort((cols, rows, distances[rows, cols]))
    used_r: set[int] = set()
    used_c: set[int] = set()
    pairs = []
    for k in order:
        i, j = int(rows[k]), int(cols[k])
        if i not in used_r and j not in used_c:
            used_r.add(i)
            used_c.add(j)
            pairs.append((i, j))
    return pairs


def finding_distance(
    data: ChannelData,
    gt_labels: np.ndarray,
    gt_inverse: np.ndarray,
    category: str,
    spacing: tuple[float, float, float],
) -> FindingDistance:
    """Distance-based TP/FP/FN of one finding channel (GT values ``gt_labels``, ``gt_inverse`` mapping each
    GT foreground voxel to its value's index)."""
    kind = distance_kind(category)
    threshold = distance_threshold_mm(spacing)
    n_gt, n_pred = int(gt_labels.size), data.pred.n
    if n_gt == 0 or n_pred == 0:
        return FindingDistance(kind=kind, threshold_mm=threshold, tp=0, fp=n_pred, fn=n_gt)  # type: ignore[arg-type]
    sp = np.asarray(spacing, dtype=np.float64)
    gt_coords = _group_coords(data.gt_flat, gt_inverse, n_gt, data.shape)
    pred_coords = _group_coords(data.pred.flat, data.pred.labels - 1, n_pred, data.shape)
    dist = np.full((n_gt, n_pred), np.inf)
    if kind == "centroid":
        gc = np.stack([c.mean(axis=0) for c in gt_coords]) * sp
        pc = np.stack([c.mean(axis=0) for c in pred_coords]) * sp
        dist = np.sqrt(((gc[:, None, :] - pc[None, :, :]) ** 2).sum(axis=2))
    else:
        for i, a in enumerate(gt_coords):
            for j, b in enumerate(pred_coords):
                if _box_gap_mm(a, b, sp) <= threshold:
                    dist[i, j] = assd_mm(a, b, spacing)
    pairs = greedy_distance_match(dist, threshold)
    matches = tuple(
        DistanceMatch(gt_label=int(gt_labels[i]), pred_label=j + 1, distance_mm=float(dist[i, j]))
        for i, j in pairs
    )
    return FindingDistance(
        kind=kind, threshold_mm=threshold, tp=len(pairs), fp=n_pred - len(pairs), fn=n_gt - len(pairs),
        matches=matches,
    )  # type: ignore[arg-type]  # fmt: skip
