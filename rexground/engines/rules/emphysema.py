"""1c emphysema, bullae: lung voxels below -950 HU (the LAA-950 convention) in the named place.

The airways (also below -950) are excluded. A lightly smoothed image is used so single noisy voxels of
normal lung do not count; bullae (the words bulla, bullous, bleb) keep only air pockets of 1 mL or more.
"""

from __future__ import annotations

import numpy as np

from rexground.engines.rules.common import (
    HU_EMPHYSEMA,
    RuleContext,
    RuleOutput,
    dilate_mm,
    keep_components,
    ramp,
    soft_prior,
)

_BULLA_WORDS = ("bulla", "bullae", "bullous", "bleb")


def predict(ctx: RuleContext) -> RuleOutput:
    f = ctx.features
    anat = ctx.anat
    lungs = np.asarray(anat.lungs, bool)
    if getattr(anat, "airways", None) is not None and np.asarray(anat.airways).any():
        lungs = lungs & ~dilate_mm(np.asarray(anat.airways, bool), 2.0, f.spacing)
    sm = f.smooth(0.7)
    score = ramp(sm, HU_EMPHYSEMA + 25.0, HU_EMPHYSEMA - 25.0) * soft_prior(ctx, decay_mm=5.0, within=lungs)
    bullous = any(w in ctx.text for w in _BULLA_WORDS)
    min_ml = 1.0 if bullous else 0.01
    min_vox = max(2, int(np.ceil(min_ml * 1000.0 / float(np.prod(f.spacing)))))
    found = keep_components(score >= 0.5, min_vox)
    score = np.where(found, np.maximum(score, 0.5), np.minimum(score, 0.49)).astype(np.float32)
    return RuleOutput(score=score, fallback=ctx.region, notes={"rule": "emphysema", "bullous": bullous})
