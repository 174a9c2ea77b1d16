"""1f other diffuse, 2h other focal, and findings the parser could not categorise: the region prior, made
sharper by density where the sentence says what to look for.

* Calcification (calcified granuloma, calcified nodule): voxels above 150 HU in the named place of the
  lung envelope (bone is outside it).
* Focal findings otherwise: abnormal solid density (above -500 HU, opened by 2 mm to drop vessels).
* Diffuse findings otherwise: lung of abnormal density (between -800 and -200 HU, smoothed at 2 mm),
  more than 3 mm inside the lung (the partial-volume band along its boundary reads the same).
When none of that is there, the engine falls back to the named place itself.
"""

from __future__ import annotations

import numpy as np

from rexground.engines.rules.common import (
    RuleContext,
    RuleOutput,
    ball_opening,
    band,
    keep_components,
    ramp,
    soft_prior,
)

_EDGE_MM = 3.0


def predict(ctx: RuleContext) -> RuleOutput:
    f = ctx.features
    anat = ctx.anat
    env = np.asarray(anat.lung_envelope, bool)
    lungs = np.asarray(anat.lungs, bool)
    if "calcif" in ctx.text or "granuloma" in ctx.text:
        like = ramp(f.hu, 100.0, 200.0) * soft_prior(ctx, decay_mm=5.0, within=env)
        kind = "calcification"
        min_vox = 1
    elif ctx.query.is_focal or ctx.query.category == "unknown":
        solid = ball_opening((f.smooth(1.0) > -500.0) & env, 2.0, f.spacing)
        like = ramp(f.smooth(1.0), -600.0, -400.0) * solid * soft_prior(ctx, decay_mm=5.0, within=env)
        kind = "focal"
        min_vox = max(3, int(np.ceil(50.0 / float(np.prod(f.spacing)))))
    else:
        # Abnormal density (-800..-200 HU) is also what the partial-volume band along the lung's boundary
        # reads, on every CT: the band within 3 mm of the lung's surface does not count by itself.
        inner = lungs & (f.depth_mm(lungs, key="lungs") > _EDGE_MM)
        like = band(f.smooth(2.0), -800.0, -200.0, 60.0) * soft_prior(ctx, decay_mm=5.0, within=inner)
        kind = "diffuse"
        min_vox = max(3, int(np.ceil(100.0 / float(np.prod(f.spacing)))))
    found = keep_components(like >= 0.5, min_vox)
    score = np.where(found, np.maximum(like, 0.5), np.minimum(like, 0.49)).astype(np.float32)
    return RuleOutput(score=score, fallback=ctx.region, notes={"rule": f"other_{kind}"})
