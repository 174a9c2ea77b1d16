"""2c ground-glass opacity: lung voxels between -750 and -300 HU that are not the partial-volume rim of a
vessel, a bronchial wall or the chest wall.

Ground glass is hazy: denser than aerated lung, lighter than soft tissue, with vessels still visible
through it. A vessel's own edge passes through the same densities, so voxels within a couple of
millimetres of anything solid (> -300 HU) are dropped, as is the outermost lung rim; what is left is
smoothed at 1.5 mm so speckle noise does not count, and only patches of a few voxels or more are kept;
the patch edge is then taken from the lightly smoothed image, so the smoothing does not widen it.

Patches are detected away from the dependent (posterior) and diaphragmatic lung surfaces: a supine lung
is denser along its back by gravity, and the oblique diaphragm dome adds partial volume over a slice
thickness, so a thin band there reads as ground glass on almost every chest CT. A band alone therefore
never makes a patch; a patch found deeper, or a consolidation thicker than a vessel, takes back the band
next to it (a subpleural opacity and the ground-glass rim of a consolidation keep their full extent).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from rexground.engines.rules.common import (
    HU_GGO_HIGH,
    HU_GGO_LOW,
    RuleContext,
    RuleOutput,
    ball_opening,
    band,
    dilate_mm,
    keep_components,
    soft_prior,
)

_VESSEL_MARGIN_MM = 2.0
_RIM_MM = 3.0
# Along the dependent (posterior, the patient lies supine) and diaphragmatic lung surfaces a wider layer
# is dropped: there the normal lung is denser by gravity (dependent hypoventilation, a few mm thick), and
# the diaphragm dome runs obliquely through the axial slices, so its partial volume reaches about one slice
# thickness into the lung. Real subpleural opacities there are thicker than this layer and keep their core.
_DEPENDENT_RIM_MM = 5.0
_MIN_PATCH_MM3 = 200.0  # a reported opacity is at least about 7 mm across
_OPEN_MM = 2.25  # patches at least 4.5 mm thick: vessel rims and septal lines are thinner
_DENSE_OPEN_MM = 3.0  # consolidation at least 6 mm thick: thicker than the peripheral vessels
_BAND_MM = 6.0
_BAND_FRACTION = 0.7


def ggo_likelihood(
    ctx: RuleContext, lo: float = HU_GGO_LOW, hi: float = HU_GGO_HIGH, *, dependent: bool = False
) -> np.ndarray:
    """Per-voxel ground-glass likelihood in the lungs (no place prior); ``dependent=True`` also zeroes the
    wider dependent and diaphragmatic layer (:func:`dependent_rim`)."""
    f = ctx.features
    lungs = np.asarray(ctx.anat.lungs, bool)
    solid = f.hu > HU_GGO_HIGH
    near_solid = f.distance_mm(solid, key="solid-300") <= _VESSEL_MARGIN_MM
    rim = f.depth_mm(lungs, key="lungs") <= _RIM_MM
    if dependent:
        rim |= dependent_rim(f, lungs)
    like = band(f.smooth(1.5), lo, hi, soft=60.0)
    like[~lungs | near_solid | rim] = 0.0
    return like


def dependent_rim(f, lungs: np.ndarray) -> np.ndarray:
    """Lung voxels within ``_DEPENDENT_RIM_MM`` (at least one slice spacing plus the in-plane rim) of the
    lung's posterior surface or of its floor (the diaphragm), inside the lungs."""
    key = ("ggo-dependent-rim",)
    if key in f._cache:
        return f._cache[key]
    # Outside voxels directly behind a lung voxel (axis 1 runs anterior -> posterior) or directly below
    # one (axis 0 runs inferior -> superior): the dependent chest wall and the diaphragm.
    surface = np.zeros_like(lungs)
    surface[:, 1:, :] |= lungs[:, :-1, :] & ~lungs[:, 1:, :]
    surface[:-1, :, :] |= lungs[1:, :, :] & ~lungs[:-1, :, :]
    margin = max(_DEPENDENT_RIM_MM, f.spacing[0] + _RIM_MM)
    rim = lungs & (f.distance_mm(surface) <= margin)
    f._cache[key] = rim
    return rim


def _drop_dependent_bands(f, patch: np.ndarray, lungs: np.ndarray) -> np.ndarray:
    """Drop patches that are thin bands hugging the pleura (most of their voxels within a few mm of the
    lung surface): gravity-dependent hypoventilation and partial volume at the pleura and diaphragm look
    like that; a reported opacity reaches deeper into the lung."""
    labels, n = ndimage.label(patch, structure=ndimage.generate_binary_structure(3, 2))
    if n == 0:
        return patch
    near_surface = f.depth_mm(lungs, key="lungs") <= _BAND_MM
    idx = np.arange(1, n + 1)
    frac = ndimage.mean(near_surface, labels, idx)
    keep = np.zeros(n + 1, bool)
    keep[idx] = frac < _BAND_FRACTION
    return keep[labels]


def predict(ctx: RuleContext) -> RuleOutput:
    f = ctx.features
    lungs = np.asarray(ctx.anat.lungs, bool)
    prior = soft_prior(ctx, decay_mm=8.0, within=lungs)
    score = ggo_likelihood(ctx) * prior
    # Patches are detected without the dependent/diaphragmatic layer, so a band of hypoventilated lung
    # along the back or the diaphragm never makes (or joins) a patch; a detected patch then takes back the
    # part of that layer next to it, so a subpleural opacity keeps its full extent.
    core = ggo_likelihood(ctx, dependent=True) * prior
    patch = ball_opening(core >= 0.5, _OPEN_MM, f.spacing)
    min_vox = max(3, int(np.ceil(_MIN_PATCH_MM3 / float(np.prod(f.spacing)))))
    patch = keep_components(patch, min_vox)
    patch = _drop_dependent_bands(f, patch, lungs)
    # A dense opacity (consolidation, thicker than vessels) in that layer is a lesion, not hypoventilation:
    # the ground-glass rim around it is taken back as well.
    dense = ball_opening(
        (f.smooth(0.5) > HU_GGO_HIGH)
        & np.asarray(ctx.anat.lung_envelope, bool)
        & (soft_prior(ctx, 8.0) > 0.5),
        _DENSE_OPEN_MM,
        f.spacing,
    )
    seeds = patch | dense
    if seeds.any():
        near = dilate_mm(seeds, _DEPENDENT_RIM_MM + f.inplane, f.spacing)
        patch |= near & ball_opening(score >= 0.5, _OPEN_MM, f.spacing)
    # Detected on the smoothed image, delineated on the sharp one: smoothing widens a patch by its rim.
    patch &= f.smooth(0.5) > HU_GGO_LOW - 50.0
    score = np.where(patch, np.maximum(score, 0.5), np.minimum(score, 0.49)).astype(np.float32)
    return RuleOutput(
        score=score, fallback=ctx.region, notes={"rule": "ground_glass", "voxels": int(patch.sum())}
    )
