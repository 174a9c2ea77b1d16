"""Zones the finding parser names, as boolean masks on the working grid, from normalised coordinates and
distance transforms of each lung envelope. Definitions (per lung; "height" is the lung's z extent):

* ``apical``: top 20% of the lung's height.  ``upper`` / ``mid`` / ``lower``: thirds of the height.
* ``basal``: within max(25 mm, 15% of the height) above the lung's floor in the same (y, x) column, in the
  lower 45% of the height: the diaphragmatic surface follows the dome, so anterior bases count too.
* ``subpleural``: within 10 mm of the thoracic wall (the per-slice convex hull of both lungs, and the lung's
  top and floor); the mediastinal surface does not count.
* ``peripheral`` / ``central``: ``r = d_hilum / (d_hilum + d_wall)`` is 0 at the hilum and 1 at the wall;
  peripheral is r >= 0.55, central r < 0.45 (the outer and inner halves with a small gap between them).
* ``perihilar``: within max(30 mm, 22% of the height) of the hilum point, in the lung envelope or within
  10 mm of it inside the body (hilar masses sit partly outside the aerated lung).
  The hilum point is the centroid of the main bronchus (airway below the carina) within 6 mm of the lung
  when the airways and the carina were found, otherwise the lung's medial-most voxel at 55% of its height.
* ``anterior`` / ``posterior``: front / back half of the lung in each axial slice.
* ``dependent``: posterior third of the lung in each axial slice (the patient lies supine).
* ``fissural``: within 8 mm of a boundary between two lobes of the model.
* ``pleural``: the pleural envelope.
Everything but ``pleural`` and ``perihilar`` lies inside the lung envelope of the side.
"""

from __future__ import annotations

import numpy as np

from . import morphology as mm

ZONE_NAMES: tuple[str, ...] = (
    "apical", "upper", "mid", "lower", "basal", "subpleural", "peripheral", "central", "perihilar",
    "anterior", "posterior", "dependent", "fissural", "pleural",
)  # fmt: skip
_SUBPLEURAL_MM = 10.0
_FISSURAL_MM = 8.0
_HILUM_BRONCHUS_MM = 6.0


def hilum_point(
    env: np.ndarray, airways: np.ndarray, spacing, carina: int | None = None
) -> tuple[float, float, float] | None:
    """(z, y, x) voxel coordinates of one lung's hilum, see the module docstring."""
    if not env.any():
        return None
    if airways.any() and carina is not None:
        airways = airways.copy()
        airways[carina + 1 :] = False  # below the carina: main bronchi, not the trachea beside the apex
        margin = tuple(int(np.ceil(_HILUM_BRONCHUS_MM / s)) + 1 for s in spacing)
        box = mm._bbox(airways, margin)
        near = airways[box] & ~env[box] & mm.dilate(env[box], _HILUM_BRONCHUS_MM, spacing)
        if near.sum() >= 5:
            centre = np.mean(np.nonzero(near), axis=1) + np.array([b.start for b in box])
            return tuple(float(c) for c in centre)  # type: ignore[return-value]
    zs = np.flatnonzero(env.any(axis=(1, 2)))
    z = round(zs[0] + 0.55 * (zs[-1] - zs[0]))
    sl = env[z]
    if not sl.any():
        return None
    ys, xs = np.nonzero(sl)
    cx = xs.mean()
    # the medial side is towards the other lung: for the right lung (low x) it is the largest x
    medial = xs.max() if cx < env.shape[2] / 2 else xs.min()
    y = ys[xs == medial].mean()
    return (float(z), float(y), float(medial))


def _slice_depth(env: np.ndarray) -> np.ndarray:
    """Per axial slice, 0 at the envelope's anterior extent and 1 at its posterior extent (nan elsewhere)."""
    ny = env.shape[1]
    rows = env.any(axis=2)  # (z, y)
    ys = np.arange(ny, dtype=np.float32)
    first = np.where(rows.any(axis=1), np.argmax(rows, axis=1), 0).astype(np.float32)
    last = np.where(rows.any(axis=1), ny - 1 - np.argmax(rows[:, ::-1], axis=1), 0).astype(np.float32)
    depth = (ys[None, :] - first[:, None]) / np.maximum(1.0, last - first)[:, None]
    return depth[:, :, None]


def side_zones(
    name: str,
    env: np.ndarray,
    other_env: np.ndarray,
    thorax: np.ndarray,
    lobes: np.ndarray,
    pleural_side: np.ndarray,
    body: np.ndarray,
    hilum: tuple[float, float, float] | None,
    spacing,
) -> np.ndarray:
    """The zone ``name`` for one lung (envelope ``env``)."""
    if name not in ZONE_NAMES:
        raise ValueError(f"unknown zone {name!r}; known: {', '.join(ZONE_NAMES)}")
    if name == "pleural":
        return pleural_side.copy()
    empty = np.zeros(env.shape, dtype=bool)
    if not env.any():
        return empty
    zs = np.flatnonzero(env.any(axis=(1, 2)))
    z0, z1 = int(zs[0]), int(zs[-1])
    height_mm = (z1 - z0 + 1) * spacing[0]
    zn = ((np.arange(env.shape[0], dtype=np.float32) - z0) / max(1, z1 - z0))[:, None, None]
    if name == "apical":
        return env & (zn >= 0.8)
    if name == "upper":
        return env & (zn >= 2.0 / 3.0)
    if name == "mid":
        return env & (zn >= 1.0 / 3.0) & (zn < 2.0 / 3.0)
    if name == "lower":
        return env & (zn < 1.0 / 3.0)
    if name == "basal":
        floor = np.argmax(env, axis=0)  # lowest z of the lung in each (y, x) column
        above = (np.arange(env.shape[0])[:, None, None] - floor[None]) * spacing[0]
        return env & (above <= max(25.0, 0.15 * height_mm)) & (zn < 0.45)
    if name in ("anterior", "posterior", "dependent"):
        depth = _slice_depth(env)
        if name == "anterior":
            return env & (depth < 0.5)
        if name == "posterior":
            return env & (depth >= 0.5)
        return env & (depth >= 2.0 / 3.0)
    if name == "fissural":
        # voxels of the envelope with a face neighbour of another lobe form the fissure surfaces
        lab = np.where(env, lobes, 0)
        surface = np.zeros(env.shape, dtype=bool)
        for axis in range(3):
            a = np.take(lab, range(1, lab.shape[axis]), axis=axis)
            b = np.take(lab, range(lab.shape[axis] - 1), axis=axis)
            differ = (a != b) & (a > 0) & (b > 0)
            lo = [slice(None)] * 3
            lo[axis] = slice(0, lab.shape[axis] - 1)
            surface[tuple(lo)] |= differ
        return env & mm.dilate(surface, _FISSURAL_MM, spacing)
    wall = mm.distance_inside(thorax, spacing)
    if name == "subpleural":
        return env & (wall <= _SUBPLEURAL_MM)
    if hilum is None:
        return env.copy() if name == "central" else empty
    zz, yy, xx = np.ogrid[: env.shape[0], : env.shape[1], : env.shape[2]]
    d_hilum = np.sqrt(
        ((zz - hilum[0]) * spacing[0]) ** 2
        + ((yy - hilum[1]) * spacing[1]) ** 2
        + ((xx - hilum[2]) * spacing[2]) ** 2
    ).astype(np.float32)
    if name == "perihilar":
        reach = max(30.0, 0.22 * height_mm)
        place = env | (mm.dilate(env, 10.0, spacing) & body & ~other_env)
        return place & (d_hilum <= reach)
    r = d_hilum / np.maximum(d_hilum + wall, 1e-3)
    if name == "peripheral":
        return env & (r >= 0.55)
    return env & (r < 0.45)  # central
