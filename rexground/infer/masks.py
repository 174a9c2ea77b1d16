"""After the network: averaged logits at the model's spacing -> each finding's mask on the CT grid.

The one route from network output to a mask, used by the network engine (onnxruntime), by training
validation and by the export's parity check (torch): the logits are resampled linearly onto the crop's
exact CT grid (``linear_resize``, voxel edges aligned as ``rexground.io.resample_zyx`` aligns them), turned
into probabilities, thresholded and filtered by the shared postprocessing (``rexground.postprocess``:
official component filter, never empty), and pasted into the whole CT grid. Only a box of the crop is
resampled: the part where the probability can reach the threshold, or, when nothing does, where it can
reach the postprocessing's first fallback; every voxel the postprocessing keeps lies inside, so the answer
is the one the whole map would give.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from rexground.infer.preprocess import PreparedVolume
from rexground.infer.scan import ScanLogits
from rexground.postprocess import postprocess

RELATIVE_FALLBACK = 0.5  # postprocess's first fallback: voxels within this fraction of the score's peak
Box = tuple[slice, slice, slice]


def _axis_taps(n_in: int, n_out: int, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # Output voxel i samples input coordinate (i + 0.5) * n_in / n_out - 0.5 (voxel edges aligned, as
    # ``resample_zyx``'s grid_mode zoom does), clamped to the edge voxels (its mode="nearest").
    i = np.arange(lo, hi, dtype=np.float64)
    c = np.clip((i + 0.5) * (n_in / n_out) - 0.5, 0, n_in - 1)
    i0 = np.floor(c).astype(np.intp)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, (c - i0).astype(np.float32)


def linear_resize(
    array: np.ndarray, out_shape: Sequence[int], box: tuple[slice, ...] | None = None
) -> np.ndarray:
    """``resample_zyx(array, ..., order=1, shape=out_shape)[box]`` (equal up to float32 rounding), computed
    axis by axis and only for ``box``: about ten times faster than ``ndimage.zoom`` on a whole crop, and
    a finding's small box costs next to nothing."""
    out = np.asarray(array, dtype=np.float32)
    box = box or tuple(slice(0, int(n)) for n in out_shape)
    for axis in range(3):
        i0, i1, w = _axis_taps(out.shape[axis], int(out_shape[axis]), box[axis].start, box[axis].stop)
        shape = [1, 1, 1]
        shape[axis] = -1
        lo = np.take(out, i0, axis=axis)
        hi = np.take(out, i1, axis=axis)
        hi -= lo
        hi *= w.reshape(shape)
        lo += hi
        out = lo
    return out


def above_threshold_box(
    logits: np.ndarray, out_shape: Sequence[int], threshold_logit: float, margin: float = 1e-3
) -> Box | None:
    """The part of the output grid where ``linear_resize(logits, out_shape)`` can reach ``threshold_logit``.

    A linearly interpolated value is a convex combination of its 8 input neighbours, so it can only reach
    the threshold where a neighbour does: the output voxels whose neighbours along some axis all lie
    outside the input box of voxels at or above ``threshold_logit - margin`` are below it. None when no
    input voxel is (the finding then needs the whole map for its fallback).
    """
    above = logits >= threshold_logit - margin
    if not above.any():
        return None
    box = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        idx = np.flatnonzero(above.any(axis=other))
        box.append(_output_span(int(idx[0]), int(idx[-1]), logits.shape[axis], int(out_shape[axis])))
    return tuple(box)  # type: ignore[return-value]


def _output_span(a: int, b: int, n_in: int, n_out: int) -> slice:
    """The output voxels (of ``n_out``) that input voxels ``a``..``b`` (of ``n_in``) reach by linear
    interpolation along one axis, with a voxel to spare on each side."""
    r = n_out / n_in
    return slice(max(0, int(np.floor((a - 1.5) * r)) - 1), min(n_out, int(np.ceil((b + 1.5) * r)) + 1))


def to_crop_grid(
    logits: np.ndarray, prepared: PreparedVolume, box: tuple[slice, ...] | None = None
) -> np.ndarray:
    """One finding's (Z, Y, X) logits at the model spacing -> float32 logits on the CT crop's exact grid
    (or on ``box`` of it)."""
    return linear_resize(logits, prepared.crop_shape, box)


def sigmoid_(x: np.ndarray) -> np.ndarray:
    """In-place logistic function on a float32 array (no full-size temporaries beyond the input)."""
    with np.errstate(over="ignore"):  # exp(-x) -> inf for very negative logits gives exactly 0
        np.negative(x, out=x)
        np.exp(x, out=x)
        x += np.float32(1.0)
        np.reciprocal(x, out=x)
    return x


def paste(crop_array: np.ndarray, prepared: PreparedVolume, *, fill: float = 0, dtype=None) -> np.ndarray:
    """Put an array of the crop's shape back into a CT-sized array (``fill`` outside the crop)."""
    out = np.full(prepared.ct_shape, fill, dtype=dtype or crop_array.dtype)
    out[prepared.crop] = crop_array
    return out


def logit_of(threshold: float) -> float:
    return math.log(threshold / (1.0 - threshold))


def crop_probability(scan: ScanLogits, finding: int) -> np.ndarray:
    """Finding ``finding``'s probability (float32) on the CT crop's grid (``scan.prepared.crop``)."""
    return sigmoid_(to_crop_grid(scan.logits[finding], scan.prepared))


def finding_score(scan: ScanLogits, finding: int) -> np.ndarray:
    """Finding ``finding``'s probability (float32) on the whole CT grid (0 outside the crop)."""
    return paste(crop_probability(scan, finding), scan.prepared, fill=0.0, dtype=np.float32)


def finding_probability(
    scan: ScanLogits, finding: int, threshold: float, relative_fallback: float = RELATIVE_FALLBACK
) -> tuple[np.ndarray, Box, str]:
    """Probability on a box of the crop grid that holds everything the postprocessing looks at.

    When some voxel reaches ``threshold``: the box of voxels that can (``above_threshold_box``). When none
    does, the postprocessing answers with the voxels at or above ``relative_fallback`` x the map's peak;
    the peak is at least L, the best value next to the strongest model voxel, so the box of voxels that can
    reach ``relative_fallback * L`` holds them all, and the peak itself.
    Returns (probability, box, which box: "threshold", "peak" or "full").
    """
    logits = scan.logits[finding]
    shape = scan.prepared.crop_shape
    full = tuple(slice(0, n) for n in shape)
    box = above_threshold_box(logits, shape, logit_of(threshold))
    kind = "threshold"
    if box is None:
        kind = "peak"
        centre = np.unravel_index(int(np.argmax(logits)), logits.shape)
        near = tuple(
            _output_span(int(i), int(i), n_in, n_out)
            for i, n_in, n_out in zip(centre, logits.shape, shape, strict=True)
        )
        lower = float(sigmoid_(to_crop_grid(logits, scan.prepared, near)).max())
        target = relative_fallback * lower
        box = above_threshold_box(logits, shape, logit_of(target)) if 0.0 < target < 1.0 else None
    if box is None or box == full:
        box, kind = full, "full"
    return sigmoid_(to_crop_grid(logits, scan.prepared, box)), box, kind  # type: ignore[return-value]


def finding_mask(scan: ScanLogits, finding: int, threshold: float) -> tuple[np.ndarray, str]:
    """Finding ``finding``'s postprocessed mask (uint8 0/1, the CT's canonical grid) and the fallback the
    postprocessing used ("none" when the threshold answered). Only a box of the crop is resampled (see
    ``finding_probability``); when the postprocessing needs a later fallback, which looks at the whole map,
    the whole crop is resampled and postprocessed instead."""
    prob, box, kind = finding_probability(scan, finding, threshold)
    pp: dict = {}
    mask_box = postprocess(prob, threshold, relative_fallback=RELATIVE_FALLBACK, info=pp)
    answered = {"none"} if kind == "threshold" else {"none", "score_peak"}
    if pp.get("fallback", "none") not in answered and kind != "full":
        prob = crop_probability(scan, finding)
        box = tuple(slice(0, n) for n in scan.prepared.crop_shape)  # type: ignore[assignment]
        mask_box = postprocess(prob, threshold, relative_fallback=RELATIVE_FALLBACK, info=pp)
    del prob
    mask = np.zeros(scan.prepared.ct_shape, dtype=np.uint8)
    mask[scan.prepared.crop][box] = mask_box
    return mask, str(pp.get("fallback", "none"))


def scan_masks(scan: ScanLogits, threshold: float) -> np.ndarray:
    """(F, z, y, x) uint8 masks of every finding of the scan on the CT's canonical grid (``finding_mask``)."""
    out = np.zeros((len(scan.logits), *scan.prepared.ct_shape), np.uint8)
    for f in range(len(scan.logits)):
        out[f] = finding_mask(scan, f, threshold)[0]
    return out
