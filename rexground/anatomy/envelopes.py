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
never overlaps either lung envelope (a hilar tumour inside an envelope is not mediastinum). It ends 8 mm
behind the front of the vertebral body (found per slice as the most anterior bone near the mid-line in the
back half of the thorax) beyond 18 mm of the mid-line: there lie the spine and the paravertebral gutters,
which are pleural space.

Pleural envelope: the thoracic cage (per-slice convex hull of both lungs and of the bone within 25 mm of
them, i.e. ribs, spine and sternum, not the arms; 50 mm in the lowest third of the lungs and below, where an
effusion pushes the lung off its ribs and the costophrenic recess lies below the lung base) within 60 mm of a
lung, never more than 5 mm above the lung apex (the cupola), minus the lungs' cores (two
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
# Fluid collects from the base up (it is dependent), pushing the lower lung away from its ribs and filling the
# costophrenic recess below the lung base: there the ribs of the cage may lie this far from the lung.
_BONE_NEAR_BASE_MM = 50.0
_BASE_FRACTION = 0.35  # "the base": the lowest third or so of the lungs' height, and everything below it
_CUPOLA_MM = 5.0  # the pleura over the apex (cupola) hugs the lung: no pleural space above it
_PLEURAL_REACH_MM = 60.0
_CROSS = ndimage.generate_binary_structure(2, 1)[None]  # in-plane cross: the rim is kept in each slice
_CORE_STEPS = 2
_SPINE_BAND_MM = (
    15.0  # half-width of the mid-line band searched for the vertebral body (vertebrae: 30-50 mm wide)
)
_SPINE_MEDIAN_MM = 25.0  # about one vertebra
# The descending aorta and the oesophagus lie in front of the vertebral body and beside its front half.
_MEDIASTINUM_BEHIND_SPINE_MM = 8.0
_SPINE_HALF_WIDTH_MM = 18.0  # thoracic vertebral bodies are 30-45 mm wide


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


def mediastinum(
    env_r: np.ndarray,
    env_l: np.ndarray,
    thorax: np.ndarray,
    spine_y: np.ndarray | None = None,
    spacing=None,
    body: np.ndarray | None = None,
) -> np.ndarray:
    """Approximate mediastinum inside the per-slice thoracic hull (see the module docstring). With
    ``spine_y`` (from :func:`spine_front`) it ends a few mm behind the vertebral body's front: behind that,
    between the lungs, lie the spine and the paravertebral gutters, which are pleural space (an effusion
    pushing a lung away from the spine would otherwise be read as mediastinum)."""
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
    out = between & thorax & valid_slice[:, None, None]
    if spine_y is not None and spacing is not None:
        limit = np.where(np.isfinite(spine_y), spine_y + _MEDIASTINUM_BEHIND_SPINE_MM / spacing[1], np.inf)
        behind = np.arange(env_r.shape[1])[None, :, None] > limit[:, None, None]
        # In front of the vertebral body's middle (the oesophagus, azygos and the retrocrural space) it is
        # still mediastinum: the gutters are beside the vertebral body, beyond half its width.
        mid = (
            np.array([body_centre_x(b) for b in body])
            if body is not None
            else np.full(len(r_slice), nx / 2.0)
        )
        central = np.abs(xs - mid[:, None, None]) <= _SPINE_HALF_WIDTH_MM / spacing[2]
        out &= ~(behind & ~central)
    return out


def body_centre_x(body_slice: np.ndarray) -> float:
    """The mid-line of one axial slice: the centre of the body's left-right extent (the body is symmetric
    even where an effusion or a collapsed lobe has moved a lung, or the mediastinum)."""
    xs = np.flatnonzero(body_slice.any(axis=0))
    return 0.5 * (xs[0] + xs[-1]) if xs.size else 0.5 * (body_slice.shape[1] - 1)


def spine_front(
    hu: np.ndarray, body: np.ndarray, env_r: np.ndarray, env_l: np.ndarray, spacing
) -> np.ndarray:
    """Per axial slice, the y index of the vertebral body's anterior surface (nan where none is found): the
    most anterior bone voxel within 15 mm of the body's mid-line (:func:`body_centre_x`), in the back half of the
    thorax (the sternum is in front). Smoothed along z by a running median (a vertebra is 20-30 mm tall)."""
    nz = hu.shape[0]
    out = np.full(nz, np.nan)
    both = env_r | env_l
    half_band = max(1, round(_SPINE_BAND_MM / spacing[2]))
    for z in range(nz):
        if not both[z].any():
            continue
        mid = round(body_centre_x(body[z]))
        ys = np.flatnonzero(both[z].any(axis=1))
        y_half = int(0.5 * (ys[0] + ys[-1]))
        box = (z, slice(y_half, None), slice(max(0, mid - half_band), mid + half_band + 1))
        band = (hu[box] > BONE_HU) & body[box]
        rows = np.flatnonzero(band.any(axis=1))
        if rows.size:
            out[z] = y_half + rows[0]
    k = max(1, round(_SPINE_MEDIAN_MM / spacing[0])) | 1
    valid = np.isfinite(out)
    if valid.sum() >= 1:
        filled = np.interp(np.arange(nz), np.flatnonzero(valid), out[valid])
        out = np.where(both.any(axis=(1, 2)), ndimage.median_filter(filled, size=k, mode="nearest"), np.nan)
    return out


def thoracic_hull(env_r: np.ndarray, env_l: np.ndarray) -> np.ndarray:
    return mm.convex_hull_per_slice(env_r | env_l)


def pleural_envelope(
    hu: np.ndarray, body: np.ndarray, env_r: np.ndarray, env_l: np.ndarray, medi: np.ndarray, spacing
) -> np.ndarray:
    lungs_env = env_r | env_l
    if not lungs_env.any():
        return np.zeros(hu.shape, dtype=bool)
    near = mm.dilate_coarse(lungs_env, _PLEURAL_REACH_MM, spacing)
    zs = np.flatnonzero(lungs_env.any(axis=(1, 2)))
    base_top = int(zs[0] + _BASE_FRACTION * (zs[-1] - zs[0]))
    reach = mm.dilate_coarse(lungs_env, _BONE_NEAR_LUNG_MM, spacing)
    reach[: base_top + 1] = mm.dilate_coarse(lungs_env, _BONE_NEAR_BASE_MM, spacing)[: base_top + 1]
    bone = (hu > BONE_HU) & body & reach
    cage = mm.convex_hull_per_slice(bone | lungs_env) & body
    core = ndimage.binary_erosion(lungs_env, _CROSS, iterations=_CORE_STEPS)
    out = cage & near & ~core & ~medi
    out[zs[-1] + 1 + int(np.ceil(_CUPOLA_MM / spacing[0])) :] = False
    return out
