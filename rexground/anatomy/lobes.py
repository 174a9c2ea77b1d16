"""Approximate lobes from a geometric model of the fissures fitted to each lung's shape.

Coordinates, per lung envelope: ``zn`` is the height in the lung from its lowest (0) to its highest (1)
slice; ``yn`` is the depth from the lung's most anterior (0) to its most posterior (1) extent over the whole
lung (not per slice, so the small posterior costophrenic recess at the base stays "posterior").

Model (sagittal view, both lungs; the fissures are taken as planes parallel to the x axis):

* Oblique fissure: the curve ``zn = Z_POST * ((yn - Y_ANT) / (1 - Y_ANT)) ** CURVE`` from the
  posterior surface at ``zn = Z_POST`` (about the level of T3-T4: the apex is near T1 and the posterior
  costophrenic recess near T11, so about three quarters of the way up) down to the diaphragm at
  ``yn = Y_ANT`` behind the anterior chest wall. Below/behind it is the lower lobe. ``CURVE`` < 1 bows the
  fissure upwards in the middle, as the lower lobes fill the broad posterior mid-chest: with it the lower
  lobes hold about 45-50% of each lung, as in CT lobar volumetry (RLL about 25% and LLL about 23% of both
  lungs). The left fissure starts a little higher posteriorly than the right.
* Horizontal fissure (right only): a horizontal plane at ``zn = Z_HORIZONTAL`` in front of the oblique
  fissure; below it the middle lobe, above it the upper lobe.
* Lingula: the part of the left upper lobe below ``zn = Z_LINGULA`` (the inferior-anterior tongue).

The constants come from standard anatomy (fissure landmarks against vertebral levels and costal
cartilages) expressed as fractions of the lung's height and depth; nothing is tuned on a scan. A lesion in
the envelope gets the lobe of its place, so a tumour inside the envelope has a lobe too.
"""

from __future__ import annotations

import numpy as np

LOBE_LABELS: dict[str, int] = {"RUL": 1, "RML": 2, "RLL": 3, "LUL": 4, "lingula": 5, "LLL": 6}
LOBES_OF_SIDE: dict[str, tuple[str, ...]] = {
    "right": ("RUL", "RML", "RLL"),
    "left": ("LUL", "lingula", "LLL"),
}

# (Z_POST, Y_ANT) of the oblique fissure per side, and its bow
OBLIQUE_FISSURE = {"right": (0.75, 0.15), "left": (0.78, 0.15)}
CURVE = 0.6
Z_HORIZONTAL = 0.52
Z_LINGULA = 0.47


def normalised_coordinates(env: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(zn, yn) broadcastable arrays for one lung envelope: zn of shape (nz, 1, 1), yn of shape (1, ny, 1)."""
    nz, ny, _ = env.shape
    zs = np.flatnonzero(env.any(axis=(1, 2)))
    ys = np.flatnonzero(env.any(axis=(0, 2)))
    if zs.size == 0:
        return np.zeros((nz, 1, 1), np.float32), np.zeros((1, ny, 1), np.float32)
    zn = (np.arange(nz, dtype=np.float32) - zs[0]) / max(1, zs[-1] - zs[0])
    yn = (np.arange(ny, dtype=np.float32) - ys[0]) / max(1, ys[-1] - ys[0])
    return zn[:, None, None], yn[None, :, None]


def lower_lobe_of(env: np.ndarray, side: str) -> np.ndarray:
    z_post, y_ant = OBLIQUE_FISSURE[side]
    zn, yn = normalised_coordinates(env)
    fissure_z = z_post * np.clip((yn - y_ant) / (1.0 - y_ant), 0.0, 1.0) ** CURVE
    return env & (zn < fissure_z)


def lobe_map(env_r: np.ndarray, env_l: np.ndarray) -> np.ndarray:
    """uint8 label map (LOBE_LABELS) over both lung envelopes."""
    lobes = np.zeros(env_r.shape, dtype=np.uint8)
    for side, env in (("right", env_r), ("left", env_l)):
        if not env.any():
            continue
        lower = lower_lobe_of(env, side)
        zn, _ = normalised_coordinates(env)
        upper_part = env & ~lower
        if side == "right":
            lobes[upper_part & (zn >= Z_HORIZONTAL)] = LOBE_LABELS["RUL"]
            lobes[upper_part & (zn < Z_HORIZONTAL)] = LOBE_LABELS["RML"]
            lobes[lower] = LOBE_LABELS["RLL"]
        else:
            lobes[upper_part & (zn >= Z_LINGULA)] = LOBE_LABELS["LUL"]
            lobes[upper_part & (zn < Z_LINGULA)] = LOBE_LABELS["lingula"]
            lobes[lower] = LOBE_LABELS["LLL"]
    return lobes
