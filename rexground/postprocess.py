"""From a score map (or a raw mask) to the mask a finding is answered with, shared by every engine.

The steps mirror what the official evaluation does to a prediction, so that what we output is exactly what
gets scored: threshold, 18-connected components, drop those under 10 voxels, keep the 50 largest
(``rexground.components``). Every ground truth of the challenge is non-empty, so an empty answer is never
right: when nothing survives, fall back, in order, to

1. the best part of the score map itself (voxels within ``relative_fallback`` of its maximum, inside the
   fallback region when one is given): the engine found *something*, only below its threshold;
2. when that part is smaller than the filter keeps (a small nodule seen on a coarse grid), the score grown
   from its peak: the peak's connected component at ever lower fractions of the peak, until it holds
   ``min_size`` voxels, or, when the score falls too steeply for that, the ``min_size`` voxels nearest to
   the peak (the smallest answer the filter keeps). The place the engine found beats any place guessed
   without it;
3. the fallback region (the most likely place for the finding, e.g. the lobe the sentence names);
4. a small ball at the centre of the fallback region, or of the volume, so the answer is never empty.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from rexground.components import MAX_COMPONENTS, MIN_COMPONENT_VOXELS, STRUCTURE_18, filter_components


def _filtered(mask: np.ndarray, min_size: int, max_keep: int) -> np.ndarray:
    """The official filter, run on the bounding box of the mask only (components never leave it, and
    raster order inside the box is the raster order of the volume, so ties resolve identically)."""
    out = np.zeros(mask.shape, dtype=np.uint8)
    nz = [
        np.flatnonzero(np.asarray(mask).any(axis=tuple(a for a in range(3) if a != axis)))
        for axis in range(3)
    ]
    if any(idx.size == 0 for idx in nz):
        return out
    box = tuple(slice(int(idx[0]), int(idx[-1]) + 1) for idx in nz)
    labels, n = filter_components(mask[box], min_size=min_size, max_keep=max_keep)
    if n:
        out[box] = labels > 0
    return out


# Fractions of the score's peak tried, in order, when growing the peak's component (step 2), and how far from
# the peak it may grow (voxels): a few times the filter's minimum, so a grown answer stays a small blob.
GROW_FRACTIONS = (0.5, 0.35, 0.25, 0.15, 0.1, 0.05)
GROW_RADIUS = 6


def _grown_from_peak(scope: np.ndarray, peak: float, min_size: int) -> np.ndarray:
    """The 18-connected component of ``scope >= fraction * peak`` holding the peak voxel, for the first
    fraction of ``GROW_FRACTIONS`` that gives at least ``min_size`` voxels within ``GROW_RADIUS`` of it;
    failing that, the ``min_size`` voxels nearest to the peak."""
    centre = np.unravel_index(int(np.nanargmax(scope)), scope.shape)
    window = tuple(
        slice(max(0, c - GROW_RADIUS), min(n, c + GROW_RADIUS + 1))
        for c, n in zip(centre, scope.shape, strict=True)
    )
    local = scope[window]
    at = tuple(c - w.start for c, w in zip(centre, window, strict=True))
    for fraction in GROW_FRACTIONS:
        labels, _ = ndimage.label(local >= peak * fraction, structure=STRUCTURE_18)
        component = labels == labels[at]
        if int(component.sum()) >= max(min_size, 1):
            out = np.zeros(scope.shape, dtype=np.uint8)
            out[window] = component
            return out
    return _ball_at(scope.shape, np.asarray(centre, dtype=float), max(min_size, 1))


def _ball_at(shape: tuple[int, ...], centre: np.ndarray, n_voxels: int) -> np.ndarray:
    """The ``n_voxels`` voxels nearest to ``centre`` (ties in raster order; the whole volume when it has no
    more). One 6-connected blob: every voxel's neighbour one step towards the centre is nearer, so it is in."""
    out = np.zeros(shape, dtype=np.uint8)
    total = int(np.prod(shape))
    if total <= n_voxels:
        out[...] = 1
        return out
    radius = 1
    centre = np.clip(np.round(centre).astype(int), 0, np.asarray(shape) - 1)
    while True:
        lo = np.maximum(centre - radius, 0)
        hi = np.minimum(centre + radius + 1, shape)
        grids = np.ogrid[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))]
        d2 = sum((g - c) ** 2 for g, c in zip(grids, centre, strict=True))
        ball = d2 <= radius**2
        if int(ball.sum()) >= n_voxels or radius > max(shape):
            nearest = np.argsort(np.where(ball, d2, np.iinfo(np.int64).max).ravel(), kind="stable")[:n_voxels]
            keep = np.zeros(ball.size, dtype=bool)
            keep[nearest] = True
            out[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))] = keep.reshape(ball.shape) & ball
            return out
        radius += 1


def _centre_of(region: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    """A voxel of ``region`` near its centre of mass (the centroid itself may lie outside a curved region)."""
    if region is None or not region.any():
        return (np.asarray(shape) - 1) / 2.0
    com = np.asarray(ndimage.center_of_mass(region))
    idx = np.argwhere(region)
    return idx[np.argmin(((idx - com) ** 2).sum(axis=1))].astype(float)


def postprocess(
    score_or_mask: np.ndarray,
    threshold: float = 0.5,
    *,
    fallback_region: np.ndarray | None = None,
    relative_fallback: float = 0.5,
    min_size: int = MIN_COMPONENT_VOXELS,
    max_keep: int = MAX_COMPONENTS,
    info: dict | None = None,
) -> np.ndarray:
    """Threshold ``score_or_mask`` and apply the official component filter; never returns an empty mask.

    ``score_or_mask``: a float score in [0, 1] (thresholded at ``threshold``, inclusive) or a bool/integer
    mask (non-zero counts). ``fallback_region``: bool mask of the place the finding most likely is, same
    shape. ``info``, when given, receives ``{"fallback": <which step answered>}``. Returns uint8 0/1.
    """
    arr = np.asarray(score_or_mask)
    if arr.ndim != 3:
        raise ValueError(f"postprocess expects a 3D array, got shape {arr.shape}")
    if fallback_region is not None:
        fallback_region = np.asarray(fallback_region, dtype=bool)
        if fallback_region.shape != arr.shape:
            raise ValueError(f"fallback region shape {fallback_region.shape} differs from {arr.shape}")
    is_score = np.issubdtype(arr.dtype, np.floating)
    raw = arr >= threshold if is_score else arr != 0
    out = _filtered(raw, min_size, max_keep)
    step = "none"
    if not out.any() and is_score:
        # 1. The strongest part of the score, where the engine saw something below its threshold.
        scope = (
            arr if fallback_region is None or not fallback_region.any() else np.where(fallback_region, arr, 0)
        )
        peak = float(np.nanmax(scope)) if scope.size else 0.0
        if peak > 0:
            out = _filtered(scope >= peak * relative_fallback, min_size, max_keep)
            step = "score_peak"
            if not out.any():
                # 2. Too small for the filter: grow it from the peak rather than answer somewhere else.
                out, step = _grown_from_peak(scope, peak, min_size), "score_grow"
    if not out.any() and fallback_region is not None and fallback_region.any():
        out = _filtered(fallback_region, min_size, max_keep)
        step = "region"
    if not out.any():
        out = _ball_at(arr.shape, _centre_of(fallback_region, arr.shape), max(min_size, 1) * 3)
        step = "ball"
    if info is not None:
        info["fallback"] = step
    return out
