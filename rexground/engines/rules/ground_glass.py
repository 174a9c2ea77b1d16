"""2c ground-glass opacity: lung voxels between -750 and -300 HU that are not the partial-volume rim of a
vessel, a bronchial wall or the chest wall.

Ground glass is hazy: denser than aerated lung, lighter than soft tissue, with vessels still visible
through it. A vessel's own edge passes through the same densities, so voxels within a couple of
millimetres of anything solid (> -300 HU) are dropped, as is the outermost lung rim; what is left is
smoothed at 1.5 mm so speckle noise does not count, and only patches of a few voxels or more are kept;
the patch edge is then taken from the lightly smoothed image, so the smoothing does not widen it.
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
    keep_components,
    soft_prior,
)

_VESSEL_MARGIN_MM = 2.0
_RIM_MM = 3.0
_MIN_PATCH_MM3 = 200.0  # a reported opacity is at least about 7 mm across
_OPEN_MM = 2.25  # patches at least 4.5 mm thick: vessel rims and septal lines are thinner
_BAND_MM = 6.0
_BAND_FRACTION = 0.7


def ggo_likelihood(ctx: RuleContext, lo: float = HU_GGO_LOW, hi: float = HU_GGO_HIGH) -> np.ndarray:
    """Per-voxel ground-glass likelihood in the lungs (no place prior)."""
    f = ctx.features
    lungs = np.asarray(ctx.anat.lungs, bool)
    solid = f.hu > HU_GGO_HIGH
    near_solid = f.distance_mm(solid, key="solid-300") <= _VESSEL_MARGIN_MM
    rim = f.depth_mm(lungs, key="lungs") <= _RIM_MM
    like = band(f.smooth(1.5), lo, hi, soft=60.0)
    like[~lungs | near_solid | rim] = 0.0
    return like


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
    like = ggo_likelihood(ctx)
    prior = soft_prior(ctx, decay_mm=8.0, within=lungs)
    score = like * prior
    patch = ball_opening(score >= 0.5, _OPEN_MM, f.spacing)
    min_vox = max(3, int(np.ceil(_MIN_PATCH_MM3 / float(np.prod(f.spacing)))))
    patch = keep_components(patch, min_vox)
    patch = _drop_dependent_bands(f, patch, lungs)
    # Detected on the smoothed image, delineated on the sharp one: smoothing widens a patch by its rim.
    patch &= f.smooth(0.5) > HU_GGO_LOW - 50.0
    score = np.where(patch, np.maximum(score, 0.5), np.minimum(score, 0.49)).astype(np.float32)
    return RuleOutput(
        score=score, fallback=ctx.region, notes={"rule": "ground_glass", "voxels": int(patch.sum())}
    )
