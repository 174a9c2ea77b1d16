"""Lungs (air inside the body, without the trachea and main bronchi) and their left/right separation.

* Candidates: voxels below -300 HU inside the body (outside air is excluded because the body is filled per
  slice), minus the airway lumen grown from the trachea and a thin shell around it (the partial-volume
  shell of a bronchial wall would otherwise bridge the two lungs).
* Selection: 3D components large enough (at least 10% of the largest and 30 mL) whose top reaches the
  upper part of the largest one; stomach and bowel gas never reach the lung apices. Smaller pieces (from
  5 mL) high in the chest join when they are parenchyma (mean above -975 HU: not the pure gas of the
  trachea or oesophagus) and wide (mean cross-section at least 6 cm^2: not a tube). Smaller pieces within
  4 mm of a selected lung whose middle is above the lowest 30% of the lungs are lung cut off by the airway
  shell or a thin septum, and rejoin.
* Left/right: components whose centroid lies clearly on one side of the body's midline are that side.
  A component straddling the midline (lungs touching at the anterior or posterior junction line) is
  eroded in growing steps until it falls into two large parts, one each side, and every voxel then goes to
  the nearer part; if no erosion separates them, each axial slice is cut at the column with the fewest
  lung voxels near the midline.
* Finally each lung is filled per axial slice, so vessels, intrapulmonary bronchi and nodules surrounded by
  lung are part of it (as in expert lung contours), while a mass at the hilum is not.
Canonical x runs patient right -> left, so the right lung has the lower x.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from . import morphology as mm

LUNG_HU = -300.0  # expert lung contours include the partial-volume rim; -300 keeps it, fat stays out
_AIRWAY_SHELL_MM = 2.5
_MIN_LUNG_ML = 30.0
_MIN_FRACTION_OF_LARGEST = 0.10
_TOP_REACH = 0.35
_MIN_PIECE_ML = 5.0
_PIECE_MAX_GAS_HU = -975.0
_PIECE_MIN_AREA_MM2 = 600.0
_REATTACH_MM = 4.0
_REATTACH_ABOVE = 0.3  # a reattached piece's middle lies above this fraction of the lungs' height
_REATTACH_MIN_ML = 0.5  # a lung's top lies within this fraction of the largest lung's height from its top
_SPLIT_STEPS_MM = (1.5, 3.0, 4.5, 6.0, 8.0, 10.0, 13.0, 16.0)
_SIDE_MARGIN = 0.04  # fraction of body width: centroid this far from the midline decides the side


def lung_candidates(hu: np.ndarray, body: np.ndarray, airways: np.ndarray, spacing) -> np.ndarray:
    cand = (hu < LUNG_HU) & body
    if airways.any():
        cand &= ~mm.dilate(airways, _AIRWAY_SHELL_MM, spacing)
    return cand


def select_lungs(cand: np.ndarray, spacing, hu: np.ndarray | None = None) -> np.ndarray:
    """The components of ``cand`` that are lungs."""
    labels, n = ndimage.label(cand)
    if n == 0:
        return np.zeros(cand.shape, dtype=bool)
    sizes = mm.component_sizes(labels, n)
    voxel_ml = float(np.prod(spacing)) / 1000.0
    order = np.argsort(-sizes)
    largest = order[0]
    objs = ndimage.find_objects(labels)
    top_l = objs[largest - 1][0].stop - 1
    height_l = objs[largest - 1][0].stop - objs[largest - 1][0].start
    mean_hu = ndimage.mean(hu, labels, np.arange(1, n + 1)) if hu is not None else None
    keep = [largest]
    for lab in order[1:]:
        if sizes[lab] * voxel_ml < _MIN_PIECE_ML:
            break
        sl = objs[lab - 1]
        if sl[0].stop - 1 < top_l - _TOP_REACH * height_l:
            continue
        if sizes[lab] >= _MIN_FRACTION_OF_LARGEST * sizes[largest] and sizes[lab] * voxel_ml >= _MIN_LUNG_ML:
            keep.append(lab)
            continue
        # A smaller piece high in the chest is lung cut off by a septum or scar if it is parenchyma (not
        # pure gas, which the trachea or oesophagus would be) and wide (not a tube).
        area_mm2 = sizes[lab] * voxel_ml * 1000.0 / ((sl[0].stop - sl[0].start) * spacing[0])
        if mean_hu is not None and mean_hu[lab - 1] > _PIECE_MAX_GAS_HU and area_mm2 >= _PIECE_MIN_AREA_MM2:
            keep.append(lab)
    lungs = np.isin(labels, keep)
    # Pieces cut off by the airway shell or a fissure-thin septum lie right against a lung and above its
    # lower part; gas in the stomach or bowel lies under the diaphragm, below that.
    zs = np.flatnonzero(lungs.any(axis=(1, 2)))
    z_floor = zs[0] + _REATTACH_ABOVE * (zs[-1] - zs[0])
    near = mm.dilate(lungs, _REATTACH_MM, spacing)
    touching = np.unique(labels[near & ~lungs & (labels > 0)])
    extra = [
        lab for lab in touching
        if sizes[lab] * voxel_ml >= _REATTACH_MIN_ML
        and 0.5 * (objs[lab - 1][0].start + objs[lab - 1][0].stop - 1) >= z_floor
    ]  # fmt: skip
    return lungs | np.isin(labels, extra) if extra else lungs


def body_midline_x(body: np.ndarray, z_range: tuple[int, int]) -> float:
    """Mean over the slices in ``z_range`` of the body's left-right bounding-box centre (voxel x)."""
    centres, widths = [], []
    for z in range(z_range[0], z_range[1]):
        xs = np.flatnonzero(body[z].any(axis=0))
        if xs.size:
            centres.append(0.5 * (xs[0] + xs[-1]))
            widths.append(xs[-1] - xs[0] + 1)
    if not centres:
        return 0.5 * (body.shape[2] - 1)
    return float(np.median(centres))


def _split_by_erosion(comp: np.ndarray, midline: float, spacing) -> tuple[np.ndarray, np.ndarray] | None:
    """Split one straddling component into (right, left) by erosion and nearest-seed regrowth, both on the
    coarse grid (the junction is all that the coarse grid blurs)."""
    f = mm.coarse_factors(spacing)
    sp_c = mm.coarse_spacing(spacing, f)
    box = mm._bbox(comp, tuple(2 * k for k in f))
    sub = comp[box]
    comp_c = mm.down_majority(sub, f)
    inside = mm.distance_inside(comp_c, sp_c)
    total = comp_c.sum()
    mid_c = (midline - box[2].start) / f[2]
    for r in _SPLIT_STEPS_MM:
        core = inside > r
        labels, n = ndimage.label(core)
        if n < 2:
            if core.sum() < 0.05 * total:
                return None
            continue
        sizes = mm.component_sizes(labels, n)
        a, b = np.argsort(-sizes)[:2]
        if sizes[b] < 0.08 * total:
            continue
        xa = ndimage.center_of_mass(labels == a)[2]
        xb = ndimage.center_of_mass(labels == b)[2]
        if (xa - mid_c) * (xb - mid_c) >= 0:  # both on one side: a lobe pinched off, not the other lung
            continue
        seeds = np.where(labels == a, 1, 0) + np.where(labels == b, 2, 0)
        # every voxel goes to the nearer seed (Euclidean, in mm)
        idx = ndimage.distance_transform_edt(
            seeds == 0, sampling=sp_c, return_distances=False, return_indices=True
        )
        owner = mm.up(seeds[tuple(idx)], f, sub.shape)
        first = np.zeros(comp.shape, dtype=bool)
        second = np.zeros(comp.shape, dtype=bool)
        first[box] = sub & (owner == 1)
        second[box] = sub & (owner == 2)
        return (first, second) if xa < xb else (second, first)
    return None


def _split_per_slice(comp: np.ndarray, midline: float, body: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cut each axial slice of ``comp`` at the column with the fewest lung voxels near the midline."""
    right = np.zeros_like(comp)
    left = np.zeros_like(comp)
    nx = comp.shape[2]
    for z in np.flatnonzero(comp.any(axis=(1, 2))):
        xs = np.flatnonzero(body[z].any(axis=0))
        width = (xs[-1] - xs[0] + 1) if xs.size else nx
        lo = max(0, int(midline - 0.15 * width))
        hi = min(nx, int(midline + 0.15 * width) + 1)
        counts = comp[z].sum(axis=0)
        band = counts[lo:hi]
        cut = lo + int(np.argmin(band)) if band.size else int(midline)
        right[z, :, : cut + 1] = comp[z, :, : cut + 1]
        left[z, :, cut + 1 :] = comp[z, :, cut + 1 :]
    return right, left


def split_left_right(lungs: np.ndarray, body: np.ndarray, spacing) -> tuple[np.ndarray, np.ndarray, str]:
    """(right, left, method) where method says how the split was made (for reports and tests)."""
    right = np.zeros_like(lungs)
    left = np.zeros_like(lungs)
    if not lungs.any():
        return right, left, "empty"
    zs = np.flatnonzero(lungs.any(axis=(1, 2)))
    midline = body_midline_x(body, (int(zs[0]), int(zs[-1]) + 1))
    xs = np.flatnonzero(body.any(axis=(0, 1)))
    width = (xs[-1] - xs[0] + 1) if xs.size else lungs.shape[2]
    labels, _n = ndimage.label(lungs)
    method = "components"
    for lab, sl in enumerate(ndimage.find_objects(labels), start=1):
        comp = np.zeros_like(lungs)
        comp[sl] = labels[sl] == lab
        xs_c = np.flatnonzero(comp.any(axis=(0, 1)))
        cx = ndimage.center_of_mass(comp)[2]
        straddles = xs_c[0] < midline - _SIDE_MARGIN * width and xs_c[-1] > midline + _SIDE_MARGIN * width
        straddles = straddles and min(midline - xs_c[0], xs_c[-1] - midline) > 0.2 * width
        if not straddles:
            (right if cx < midline else left)[comp] = True
            continue
        parts = _split_by_erosion(comp, midline, spacing)
        if parts is None:
            parts = _split_per_slice(comp, midline, body)
            method = "per-slice cut"
        else:
            method = "erosion" if method == "components" else method
        right |= parts[0]
        left |= parts[1]
    return right, left, method
