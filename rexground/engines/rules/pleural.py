"""2e pleural effusion / thickening and 2g pneumothorax: outside the lungs, inside the pleural envelope.

These are never clipped to the lung mask (they lie between the lung and the chest wall). The side is
given by a half-space split at the mid-line between the lungs, since a pleural finding is not in either
lung mask.

* Effusion: water density (-15..+28 HU, smoothed at 2 mm; muscle, liver and spleen are denser on an
  unenhanced CT) in the pleural envelope but not in the aerated lung, in collections that lie against the
  lung, weighted towards the dependent (posterior) side where fluid collects.
* Thickening / plaques: soft-tissue or calcified density within 6 mm of the lung surface, outside it.
* Pneumothorax: pure air (below -960 HU smoothed, i.e. no lung markings) in the pleural envelope, in
  pockets that reach the lung's outer surface; emphysema inside the lung is not at its surface as a sheet.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from rexground.engines.rules.common import (
    RuleContext,
    RuleOutput,
    band,
    dilate_mm,
    keep_components,
    ramp,
)
from rexground.engines.rules.consolidation import dependent_weight

HU_FLUID_LOW, HU_FLUID_HIGH = -15.0, 28.0  # simple (transudate / exudate) pleural fluid, unenhanced
_THICKENING_WORDS = ("thicken", "plaque", "pleural-based", "pleural based", "nodular pleura")


def _touching(mask: np.ndarray, contact: np.ndarray) -> np.ndarray:
    """The components of ``mask`` that reach ``contact`` (pleural collections lie against the lung)."""
    lab, n = ndimage.label(mask, structure=ndimage.generate_binary_structure(3, 2))
    if n == 0:
        return mask
    keep = np.zeros(n + 1, bool)
    hit = np.unique(lab[contact & mask])
    keep[hit[hit > 0]] = True
    return keep[lab]


def _pleural_space(ctx: RuleContext) -> tuple[np.ndarray, np.ndarray]:
    """(the pleural envelope restricted to the named side, the aerated lungs)."""
    f = ctx.features
    anat = ctx.anat
    lungs = np.asarray(anat.lungs, bool)
    env = getattr(anat, "pleural_envelope", None)
    if env is None:
        env = dilate_mm(np.asarray(anat.lung_envelope, bool), 25.0, f.spacing) & np.asarray(anat.body, bool)
    env = np.asarray(env, bool) & f.side_mask(ctx.query.side)
    return env, lungs


def _side_region(ctx: RuleContext, space: np.ndarray) -> np.ndarray:
    """Fallback: the pleural space of the named side (or of both), outside the aerated lung."""
    return space & ~np.asarray(ctx.anat.lungs, bool)


def predict_effusion(ctx: RuleContext) -> RuleOutput:
    f = ctx.features
    space, lungs = _pleural_space(ctx)
    outside = space & ~lungs
    if any(w in ctx.text for w in _THICKENING_WORDS) and "effusion" not in ctx.text:
        near = f.distance_mm(lungs, key="lungs-out") <= 6.0
        like = ramp(f.smooth(1.0), -300.0, -100.0) * (near & outside)
        kind = "thickening"
        min_ml = 0.1
    else:
        # Water density, not muscle (40-60 HU) nor liver or spleen (45-65 HU) that the envelope also holds.
        like = (
            band(f.smooth(2.0), HU_FLUID_LOW, HU_FLUID_HIGH, soft=15.0)
            * outside
            * dependent_weight(ctx, space)
        )
        kind = "effusion"
        min_ml = 2.0
    min_vox = max(3, int(np.ceil(min_ml * 1000.0 / float(np.prod(f.spacing)))))
    found = keep_components(like >= 0.5, min_vox)
    found = _touching(found, f.distance_mm(lungs, key="lungs-out") <= 2.0 * f.inplane)
    score = np.where(found, np.maximum(like, 0.5), np.minimum(like, 0.49)).astype(np.float32)
    return RuleOutput(score=score, fallback=_side_region(ctx, space), notes={"rule": f"pleural_{kind}"})


def predict_pneumothorax(ctx: RuleContext) -> RuleOutput:
    f = ctx.features
    space, lungs = _pleural_space(ctx)
    anat = ctx.anat
    air = (f.smooth(1.5) < -960.0) & (space | lungs) & f.side_mask(ctx.query.side)
    if getattr(anat, "airways", None) is not None:
        air &= ~dilate_mm(np.asarray(anat.airways, bool), 3.0, f.spacing)
    # Pockets that reach the outer surface of the pleural space (the chest wall side).
    outer = f.depth_mm(space | lungs, key="pleural-or-lungs") <= max(6.0, 2.0 * f.inplane)
    min_vox = max(3, int(np.ceil(2000.0 / float(np.prod(f.spacing)))))
    pockets = keep_components(air, min_vox)
    lab, n = ndimage.label(pockets)
    if n:
        touching = np.unique(lab[outer & pockets])
        keep = np.zeros(n + 1, bool)
        keep[touching[touching > 0]] = True
        pockets = keep[lab]
    score = np.where(pockets, 1.0, 0.4 * air).astype(np.float32)
    # Fallback: the non-dependent (anterior) third of the pleural space, where free air rises.
    ys = np.flatnonzero(space.any(axis=(0, 2)))
    fallback = space.copy()
    if ys.size:
        cut = ys[0] + (ys[-1] - ys[0]) // 3
        fallback[:, cut:, :] = False
        fallback &= f.distance_mm(~(space | lungs), key="outside-pleural") <= 10.0
    return RuleOutput(score=score, fallback=fallback, notes={"rule": "pneumothorax"})


def predict(ctx: RuleContext) -> RuleOutput:
    if ctx.query.category == "2g" or "pneumothora" in ctx.text:
        return predict_pneumothorax(ctx)
    return predict_effusion(ctx)
