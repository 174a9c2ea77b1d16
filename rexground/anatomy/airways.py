"""Trachea and main/lobar bronchi by seeded region growing with leak control.

The seed is the trachea near the top of the scan: a small, round, air-filled 2D component close to the
body's left-right centre in the anterior two thirds of the body, that continues as a tube over the next
slices. From it the lumen is grown in 3D at a rising threshold (-950 HU upwards); growth stops at the last
threshold before the volume "explodes" (doubles at once or passes a size no airway tree has), which is
the moment the front leaks through a bronchial wall into the parenchyma.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

AIR_SEED_HU = -900.0
GROW_THRESHOLDS_HU = (-950.0, -925.0, -900.0, -875.0, -850.0, -825.0, -800.0)
_TRACHEA_AREA_MM2 = (60.0, 900.0)  # lumen of an adult trachea is about 1.5-2.5 cm across
_MAX_TREE_ML = 350.0  # larger means the growth leaked into a lung
_LEAK_RATIO = 1.8
_LEAK_MIN_ML = 80.0  # below this a doubling is the growth reaching the bronchi, not a leak
_TUBE_SLICES_MM = 12.0  # the seed must continue as a tube for this length below it


def _slice_candidates(
    air2d: np.ndarray, body2d: np.ndarray, spacing_yx: tuple[float, float]
) -> list[np.ndarray]:
    """2D components of one axial slice that look like the trachea's lumen."""
    if not body2d.any():
        return []
    ys, xs = np.nonzero(body2d)
    y0, y1, x0, x1 = ys.min(), ys.max(), xs.min(), xs.max()
    cx_body = 0.5 * (x0 + x1)
    width = x1 - x0 + 1
    labels, n = ndimage.label(air2d & body2d)
    if n == 0:
        return []
    pix = spacing_yx[0] * spacing_yx[1]
    found = []
    for lab, sl in enumerate(ndimage.find_objects(labels), start=1):
        comp = labels[sl] == lab
        area = comp.sum() * pix
        if not (_TRACHEA_AREA_MM2[0] <= area <= _TRACHEA_AREA_MM2[1]):
            continue
        cy, cx = ndimage.center_of_mass(comp)
        cy += sl[0].start
        cx += sl[1].start
        if abs(cx - cx_body) > 0.12 * width:
            continue
        if cy > y0 + 0.75 * (y1 - y0):
            continue
        h, w = comp.shape
        if comp.sum() < 0.45 * h * w or max(h, w) > 2.5 * min(h, w):  # round-ish, not a slit
            continue
        full = np.zeros_like(air2d)
        full[sl] = comp
        found.append(full)
    return found


def find_trachea_seed(
    hu: np.ndarray, body: np.ndarray, spacing: tuple[float, float, float]
) -> np.ndarray | None:
    """A few voxels inside the trachea near the top of the scan, or None if no trachea is in view."""
    nz = hu.shape[0]
    air = hu < AIR_SEED_HU
    tube = max(1, round(_TUBE_SLICES_MM / spacing[0]))
    body_z = np.flatnonzero(body.any(axis=(1, 2)))
    if body_z.size == 0:
        return None
    lowest = body_z[0] + int(0.4 * (body_z[-1] - body_z[0]))  # the trachea is in the upper 60% of the scan
    for z in range(min(nz - 1, body_z[-1]), lowest - 1, -1):
        for cand in _slice_candidates(air[z], body[z], spacing[1:]):
            ok = True
            prev = cand
            for dz in range(1, tube + 1):  # follow the tube downwards, overlapping slice to slice
                if z - dz < 0:
                    break
                nxt = ndimage.binary_dilation(prev, iterations=2) & air[z - dz]
                lab, n = ndimage.label(nxt)
                if n == 0:
                    ok = False
                    break
                sizes = np.bincount(lab.ravel())
                sizes[0] = 0
                nxt = lab == np.argmax(sizes)
                if nxt.sum() > 3 * max(cand.sum(), 1):  # it opened into something big: not a tube
                    ok = False
                    break
                prev = nxt
            if ok:
                seed = np.zeros(hu.shape, dtype=bool)
                seed[z] = cand
                return seed
    return None


def airway_mask(
    hu: np.ndarray, body: np.ndarray, spacing: tuple[float, float, float]
) -> tuple[np.ndarray, dict[str, float]]:
    """Airway lumen (trachea, main and lobar bronchi) and a few facts about the growth (for reports)."""
    seed = find_trachea_seed(hu, body, spacing)
    empty = np.zeros(hu.shape, dtype=bool)
    if seed is None:
        return empty, {"found": 0.0}
    voxel_ml = float(np.prod(spacing)) / 1000.0
    seed_idx = tuple(int(i[0]) for i in np.nonzero(seed))
    best, best_t, prev_v = None, float("nan"), None
    for t in GROW_THRESHOLDS_HU:
        labels, _ = ndimage.label((hu < t) & body)
        lab = labels[seed_idx]
        if lab == 0:
            continue
        region = labels == lab
        v = region.sum() * voxel_ml
        if v > _MAX_TREE_ML or (prev_v is not None and v > _LEAK_RATIO * prev_v and v > _LEAK_MIN_ML):
            break
        best, best_t, prev_v = region, t, v
    if best is None:
        return empty, {"found": 0.0}
    return best, {"found": 1.0, "threshold_hu": best_t, "volume_ml": float(best.sum() * voxel_ml)}


def carina_z(airways: np.ndarray, spacing) -> int | None:
    """The highest axial slice where the airway tree has split into two large branches side by side (the
    main bronchi), or None. Small side branches (under a fifth of the larger part's area) do not count."""
    zs = np.flatnonzero(airways.any(axis=(1, 2)))
    if zs.size == 0:
        return None
    for z in zs[::-1]:
        labels, n = ndimage.label(airways[z])
        if n < 2:
            continue
        sizes = np.bincount(labels.ravel())[1:]
        order = np.argsort(-sizes)
        if sizes[order[1]] * 5 < sizes[order[0]]:
            continue
        xa = np.nonzero(labels == order[0] + 1)[1].mean()
        xb = np.nonzero(labels == order[1] + 1)[1].mean()
        if abs(xa - xb) * spacing[2] >= 10.0:  # two lumina at least 1 cm apart left-right
            return int(z)
    return None
