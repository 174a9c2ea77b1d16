"""The official ReXGrounding evaluation of one case, exact and fast.

Per finding channel (``../shared/docs/CHALLENGE.md``, "The official evaluation logic"):

1. Prediction = voxels > 0 after a uint8 cast (``pred.astype(np.uint8)``: floats in (0, 1) become 0,
   integers of 256 and more wrap). 18-connected components; components under 10 voxels removed, the rest
   relabelled in scan order, the 50 largest kept (a tie keeps the lower label): the filter of
   :mod:`rexground.components`, here computed on the foreground voxels only
   (:mod:`rexground.metrics.sparse_components`).
2. Global Dice of the filtered prediction A against (GT > 0) = B: ``(2|A and B| + 1e-6) / (|A| + |B| + 1e-6)``,
   and 1.0 when both are empty. Hit = Dice >= 0.1.
3. GT instances = the distinct non-zero values of the channel (not its connected components); predicted
   instances = the kept components. The Dice of every (GT instance, component) pair uses the same formula.
   Greedy one-to-one matching: repeatedly take the unmatched pair with the highest Dice (a tie goes to the
   lower GT value, then the lower component label: row-major ``argmax``) while it is >= 0.2.
   TP = matches, FN = unmatched GT instances, FP = unmatched components.

Speed: nothing per instance touches the full volume. The foreground voxels of all channels are found in
one pass in memory order; GT and prediction are intersected on their sorted flat indices, and one
``bincount`` over (GT instance, component) codes of the shared voxels gives every pairwise intersection.
Shapes must match exactly (raw array order, no reorientation), otherwise the case is an error.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from rexground.metrics.distances import finding_distance
from rexground.metrics.results import CaseResult, FindingResult, InstanceMatch
from rexground.metrics.sparse_components import SparseLabels, filter_foreground, flat_nonzero

DICE_EPS = 1e-6
HIT_THRESHOLD = 0.1
MATCH_THRESHOLD = 0.2


class ShapeMismatchError(ValueError):
    """Prediction and ground truth of a case do not have the same array shape."""


def dice_score(intersection: float, size_a: float, size_b: float) -> float:
    """The official Dice with its epsilon; 1.0 when both masks are empty."""
    if size_a == 0 and size_b == 0:
        return 1.0
    return (2.0 * intersection + DICE_EPS) / (size_a + size_b + DICE_EPS)


def cast_prediction(pred: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """The official cast of a prediction to uint8, with a warning for anything that is not already a 0/1
    mask (floats, wider integers, values other than 0 and 1)."""
    pred = np.asarray(pred)
    notes: list[str] = []
    if pred.dtype == np.bool_:
        return pred.view(np.uint8), notes
    if pred.dtype != np.uint8:
        notes.append(f"prediction dtype is {pred.dtype}, cast to uint8 as the official script does "
                     "(values in (0, 1) become 0, values >= 256 wrap)")  # fmt: skip
        with warnings.catch_warnings(), np.errstate(invalid="ignore", over="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            pred = pred.astype(np.uint8, order="K")
    if pred.size and int(pred.max()) > 1:
        notes.append(f"prediction has values up to {int(pred.max())}; every value > 0 counts as foreground")
    return pred, notes


def channel_foreground(volume: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """For each channel of an (F, H, W, D) array: the ascending C-order flat indices of its non-zero voxels
    in (H, W, D) and their values. One pass over the data in memory order, whatever the layout."""
    volume = np.asarray(volume)
    n_channels, spatial = volume.shape[0], tuple(volume.shape[1:])
    out: list[tuple[np.ndarray, np.ndarray]] = []
    if volume.flags.f_contiguous and not volume.flags.c_contiguous:
        # SimpleITK-read raw arrays are transposed views: scan the (D, W, H, F) memory order instead.
        buffer = volume.T.reshape(-1)
        memory_flat = flat_nonzero(buffer)
        values = buffer[memory_flat]
        f = memory_flat % n_channels
        d, w, h = np.unravel_index(memory_flat // n_channels, spatial[::-1])
        flat = np.ravel_multi_index((h, w, d), spatial)
        order = np.lexsort((flat, f))
        f, flat, values = f[order], flat[order], values[order]
        bounds = np.searchsorted(f, np.arange(n_channels + 1))
        for c in range(n_channels):
            out.append((flat[bounds[c] : bounds[c + 1]].astype(np.int64), values[bounds[c] : bounds[c + 1]]))
        return out
    for c in range(n_channels):
        channel = volume[c]
        flat = flat_nonzero(np.ascontiguousarray(channel).reshape(-1))
        out.append((flat, channel.reshape(-1)[flat] if flat.size else channel.reshape(-1)[:0]))
    return out


@dataclass(frozen=True)
class ChannelData:
    """What one finding channel's metrics need: the GT foreground and the filtered predicted components."""

    shape: tuple[int, int, int]
    gt_flat: np.ndarray  # ascending flat indices of non-zero GT voxels
    gt_values: np.ndarray  # their values
    pred: SparseLabels  # kept components


def greedy_match(scores: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """Greedy one-to-one matching on a (n_gt, n_pred) score matrix: repeatedly take the highest unmatched
    score (first in row-major order on ties) while it is >= ``threshold``."""
    scores = np.array(scores, dtype=np.float64, copy=True)
    pairs: list[tuple[int, int]] = []
    if scores.size == 0:
        return pairs
    for _ in range(min(scores.shape)):
        flat = int(np.argmax(scores))
        i, j = divmod(flat, scores.shape[1])
        if not scores[i, j] >= threshold:
            break
        pairs.append((i, j))
        scores[i, :] = -np.inf
        scores[:, j] = -np.inf
    return pairs


def evaluate_channel(
    data: ChannelData,
    index: int,
    key: str,
    category: str,
    spacing: tuple[float, float, float] | None = None,
    global_only: bool = False,
) -> FindingResult:
    """The official metrics (and, with a spacing, the distance metrics) of one finding channel."""
    pred = data.pred
    gt_fg = data.gt_values > 0
    gt_size = int(np.count_nonzero(gt_fg))
    pred_size = int(pred.flat.size)
    _, in_pred, in_gt = np.intersect1d(pred.flat, data.gt_flat, assume_unique=True, return_indices=True)
    intersection = int(np.count_nonzero(gt_fg[in_gt]))
    dice = dice_score(intersection, pred_size, gt_size)
    common = {
        "index": index,
        "key": key,
        "category": category,
        "dice": dice,
        "hit": dice >= HIT_THRESHOLD,
        "gt_voxels": gt_size,
        "pred_voxels": pred_size,
        "n_pred_instances": pred.n,
    }
    if global_only:
        return FindingResult(**common)
    gt_labels, gt_inverse = np.unique(data.gt_values, return_inverse=True)
    gt_inverse = gt_inverse.reshape(-1)
    gt_sizes = np.bincount(gt_inverse, minlength=gt_labels.size).astype(np.int64)
    n_pred = pred.n
    codes = gt_inverse[in_gt].astype(np.int64) * (n_pred + 1) + pred.labels[in_pred]
    inter = np.bincount(codes, minlength=gt_labels.size * (n_pred + 1)).reshape(gt_labels.size, n_pred + 1)[
        :, 1:
    ]
    denom = gt_sizes[:, None] + pred.sizes[None, :] + DICE_EPS
    pair_dice = (2.0 * inter + DICE_EPS) / denom
    pairs = greedy_match(pair_dice, MATCH_THRESHOLD)
    matches = tuple(
        InstanceMatch(gt_label=int(gt_labels[i]), pred_label=j + 1, dice=float(pair_dice[i, j]))
        for i, j in pairs
    )
    distance = None
    if spacing is not None:
        distance = finding_distance(data, gt_labels, gt_inverse, category, spacing)
    return FindingResult(
        **common,
        n_gt_instances=int(gt_labels.size),
        tp=len(pairs),
        fp=n_pred - len(pairs),
        fn=int(gt_labels.size) - len(pairs),
        matches=matches,
        distance=distance,
    )


def _category_list(categories: Sequence[str] | Mapping[str, str] | None, keys: Sequence[str]) -> list[str]:
    if categories is None:
        return ["unknown"] * len(keys)
    if isinstance(categories, Mapping):
        return [str(categories.get(k, "unknown")) for k in keys]
    cats = [str(c) for c in categories]
    if len(cats) != len(keys):
        raise ValueError(f"{len(cats)} categories for {len(keys)} finding channels")
    return cats


def as_channels(array: np.ndarray, what: str) -> np.ndarray:
    """(F, H, W, D) view of a mask array; a 3D array is one channel."""
    array = np.asarray(array)
    if array.ndim == 3:
        return array[None]
    if array.ndim != 4:
        raise ShapeMismatchError(f"{what} has shape {array.shape}; expected (F, H, W, D)")
    return array


def evaluate_case(
    gt_raw: np.ndarray,
    pred_raw: np.ndarray,
    categories: Sequence[str] | Mapping[str, str] | None = None,
    spacing: Sequence[float] | None = None,
    *,
    name: str = "",
    keys: Sequence[str] | None = None,
    global_only: bool = False,
) -> CaseResult:
    """Score one scan: ``gt_raw`` and ``pred_raw`` are (F, H, W, D) arrays in the same raw order (a 3D array
    is one finding). ``categories`` per channel (a list, or a mapping from finding key); ``spacing`` is the
    CT's voxel spacing in mm in raw (i, j, k) order, which enables the distance metrics.
    Raises :class:`ShapeMismatchError` when the shapes differ."""
    if np.shape(gt_raw) != np.shape(
        pred_raw
    ):  # exactly, as the official script: no squeezing or broadcasting
        raise ShapeMismatchError(
            f"prediction shape {np.shape(pred_raw)} != ground truth shape {np.shape(gt_raw)}"
        )
    gt = as_channels(gt_raw, "ground truth")
    pred_in = as_channels(pred_raw, "prediction")
    pred, notes = cast_prediction(pred_in)
    keys = [str(k) for k in (keys if keys is not None else range(gt.shape[0]))]
    if len(keys) != gt.shape[0]:
        raise ValueError(f"{len(keys)} finding keys for {gt.shape[0]} channels")
    cats = _category_list(categories, keys)
    spatial = tuple(int(s) for s in gt.shape[1:])
    spacing_t = tuple(float(s) for s in spacing) if spacing is not None else None
    if spacing_t is not None and len(spacing_t) != 3:
        raise ValueError(f"spacing must have 3 values in raw (i, j, k) order, got {spacing_t}")
    gt_fg = channel_foreground(gt)
    pred_fg = channel_foreground(pred)
    findings = []
    for c in range(gt.shape[0]):
        data = ChannelData(spatial, gt_fg[c][0], gt_fg[c][1], filter_foreground(pred_fg[c][0], spatial))  # type: ignore[arg-type]
        findings.append(evaluate_channel(data, c, keys[c], cats[c], spacing_t, global_only))  # type: ignore[arg-type]
    return CaseResult(name=name, warnings=tuple(notes), spacing_mm=spacing_t, findings=tuple(findings))  # type: ignore[arg-type]


def missing_case(
    name: str,
    gt_raw: np.ndarray,
    categories: Sequence[str] | Mapping[str, str] | None = None,
    spacing: Sequence[float] | None = None,
    *,
    keys: Sequence[str] | None = None,
    global_only: bool = False,
) -> CaseResult:
    """A scan without a prediction file: every finding scores Dice 0, no hit, all GT instances missed."""
    gt = as_channels(gt_raw, "ground truth")
    keys = [str(k) for k in (keys if keys is not None else range(gt.shape[0]))]
    cats = _category_list(categories, keys)
    spacing_t = tuple(float(s) for s in spacing) if spacing is not None else None
    findings = []
    for c, (_, values) in enumerate(channel_foreground(gt)):
        n_gt = int(np.unique(values).size)
        extra: dict = {}
        if not global_only:
            extra = {"n_gt_instances": n_gt, "tp": 0, "fp": 0, "fn": n_gt}
            if spacing_t is not None:
                from rexground.metrics.distances import empty_distance

                extra["distance"] = empty_distance(cats[c], spacing_t, n_gt)
        findings.append(
            FindingResult(
                index=c,
                key=keys[c],
                category=cats[c],
                dice=0.0,
                hit=False,
                gt_voxels=int(np.count_nonzero(values > 0)),
                pred_voxels=0,
                n_pred_instances=0,
                **extra,
            )
        )
    return CaseResult(name=name, status="missing", spacing_mm=spacing_t, findings=tuple(findings))  # type: ignore[arg-type]
