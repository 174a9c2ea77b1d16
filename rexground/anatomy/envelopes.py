"""Envelopes around the lungs: the lung envelope (where a lung finding may be) and the pleural envelope.

Lung envelope, per lung: a 3D closing with a ball of 25 mm radius (on a 3 mm grid, adding only blocks
mostly outside the lung), then a per-slice hole fill. The costal
surface of a lung is convex, so the closing leaves it where it is, while concavities up to about 5 cm
across made by something dense that replaced lung (a tumour touching the pleura or the hilum, a
consolidation, a pleural-based mass) are bridged over and become part of the lung; the much wider
impressions of the heart and the aortic arch are mostly not. A pleural effusion, a crescent along a
convex surface, stays outside. Weak spot: a deep bite out of the costal surface (a large pleural-based
mass) is only partly bridged, since the ball enters it from the chest wall side. The result is kept
inside the body, off the other lung and off the trachea and main bronchi outside the lungs; voxels that
both lungs' envelopes claim go to the nearer lung.

Mediastinum (approximate, per axial slice): between the two lungs, i.e. the voxels of the thoracic hull
(convex hull of both lung envelopes) whose x lies between the right lung's and the left lung's medial
borders on the same row, or between the two lungs' medial-most columns on rows that lack one lung; it
never overlaps either lung envelope (a hilar tumour inside an envelope is not mediastinum).

Pleural envelope: the thoracic cage (per-slice convex hull of both lungs and of the bone within 25 mm of
them, i.e. ribs, spine and sternum, not the arms) within 60 mm of a lung, minus the lungs' cores (two
in-plane voxels, ~3 mm, inside their envelope) and the mediastinum. Fluid and free air collect there; the ribs and intercostal
muscles are inside it, so engines still need density (fluid 0-30 HU, air below -900 HU) to find either.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from . import morphology as mm

_CLOSE_MM = 25.0
BONE_HU = 180.0
_BONE_NEAR_LUNG_MM = 25.0
_PLEURAL_REACH_MM = 60.0
_CROSS = ndimage.generate_binary_structure(2, 1)[None]  # in-plane cross: the rim is kept in each slice
_CORE_STEPS = 2


def lung_envelope_side(lung: np.ndarray, spacing) -> np.ndarray:
    return mm.fill_holes_per_slice(mm.fill_concavities(lung, _CLOSE_MM, spacing))


def lung_envelopes(
    right: np.ndarray, left: np.ndarray, body: np.ndarray, airways: np.ndarray, spacing
) -> tuple[np.ndarray, np.ndarray]:
    """(right envelope, left envelope), disjoint, inside the body, off the extrapulmonary airways."""
    env_r = lung_envelope_side(right, spacing) & body & ~left
    env_l = lung_envelope_side(left, spacing) & body & ~right
    both = env_r & env_l
    if both.any():
        box = mm._bbox(both, (2, 2, 2))
        nearer_right = np.zeros(both.shape, dtype=bool)
        nearer_right[box] = mm.distance_to(right[box], spacing) <= mm.distance_to(left[box], spacing)
        env_r &= ~(both & ~nearer_right)
        env_l &= ~(both & nearer_right)
    outside_airways = airways & ~(right | left)
    return env_r & ~outside_airways, env_l & ~outside_airways


def _medial_borders(env_r: np.ndarray, env_l: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per (z, y) row: the right lung's largest x and the left lung's smallest x (-1 / nx where absent)."""
    nx = env_r.shape[2]
    r_max = np.where(env_r.any(axis=2), nx - 1 - np.argmax(env_r[:, :, ::-1], axis=2), -1)
    l_min = np.where(env_l.any(axis=2), np.argmax(env_l, axis=2), nx)
    return r_max, l_min


def mediastinum(env_r: np.ndarray, env_l: np.ndarray, thorax: np.ndarray) -> np.ndarray:
    """Approximate mediastinum inside the per-slice thoracic hull (see the module docstring)."""
    r_max, l_min = _medial_borders(env_r, env_l)
    nx = env_r.shape[2]
    # the medial-most columns of each lung in each slice, for rows where a lung is absent
    r_slice = np.where(env_r.any(axis=(1, 2)), r_max.max(axis=1), -1)
    l_slice = np.where(env_l.any(axis=(1, 2)), l_min.min(axis=1), nx)
    both_rows = (r_max >= 0) & (l_min < nx)
    lo = np.where(both_rows, r_max, r_slice[:, None])
    hi = np.where(both_rows, l_min, l_slice[:, None])
    xs = np.arange(nx)[None, None, :]
    between = (xs > lo[..., None]) & (xs < hi[..., None])
    valid_slice = (r_slice >= 0) & (l_slice < nx)
    return between & thorax & valid_slice[:, None, None]


def thoracic_hull(env_r: np.ndarray, env_l: np.ndarray) -> np.ndarray:
    return mm.convex_hull_per_slice(env_r | env_l)


def pleural_envelope(
    hu: np.ndarray, body: np.ndarray, env_r: np.ndarray, env_l: np.ndarray, medi: np.ndarray, spacing
) -> np.ndarray:
    lungs_env = env_r | env_l
    if not lungs_env.any():
        return np.zeros(hu.shape, dtype=bool)
    near = mm.dilate_coarse(lungs_env, _PLEURAL_REACH_MM, spacing)
    bone = (hu > BONE_HU) & body & mm.dilate_coarse(lungs_env, _BONE_NEAR_LUNG_MM, spacing)
    cage = mm.convex_hull_per_slice(bone | lungs_env) & body
    core = ndimage.binary_erosion(lungs_env, _CROSS, iterations=_CORE_STEPS)
    return cage & near & ~core & ~medi
