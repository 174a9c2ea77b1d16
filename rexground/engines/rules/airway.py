"""1a bronchial wall thickening and 1b bronchiectasis: along the airway tree.

The central airways come from the anatomy (trachea, main and lobar bronchi); the intrapulmonary bronchi
are found as dark tubes: at a scale near the lumen radius, an air-filled tube has two strongly positive
Hessian eigenvalues across it and one near zero along it. Bronchiectasis means wide bronchi (larger
scales) and is marked as lumen plus wall; wall thickening is marked as the solid ring around the lumen.
"""

from __future__ import annotations

import numpy as np

from rexground.engines.rules.common import RuleContext, RuleOutput, dilate_mm, keep_components, soft_prior

_WALL_MM = 1.5


def dark_tubeness(ctx: RuleContext, sigmas_mm: tuple[float, ...], where: np.ndarray) -> np.ndarray:
    f = ctx.features
    out = np.zeros(f.shape, np.float32)
    if not where.any():
        return out
    best = np.zeros(int(where.sum()), np.float32)
    for s in sigmas_mm:
        ev = f.hessian_eigenvalues(max(s, 0.5 * min(f.spacing)), where)
        l1, l2 = np.abs(ev[:, 0]), ev[:, 1]  # ascending: the smallest magnitude is along the tube
        t = np.where((l2 > 0) & (ev[:, 2] > 0), l2 * np.clip(1.0 - l1 / np.maximum(l2, 1e-6), 0, 1), 0.0)
        best = np.maximum(best, t.astype(np.float32))
    out[where] = best
    return out


def predict(ctx: RuleContext) -> RuleOutput:
    f = ctx.features
    anat = ctx.anat
    lungs = np.asarray(anat.lungs, bool)
    wide = ctx.query.category == "1b" or "bronchiecta" in ctx.text
    sigmas = (1.5, 2.5, 3.5) if wide else (1.0, 1.75)
    prior = soft_prior(ctx, decay_mm=8.0, within=lungs)
    lumen = lungs & (f.smooth(0.5) < -880.0) & (prior > 0.3)
    tube = dark_tubeness(ctx, sigmas, lumen)
    top = float(np.percentile(tube[lumen], 99.5)) if lumen.any() else 0.0
    found = tube >= 0.4 * top if top > 0 else np.zeros(f.shape, bool)
    central = np.asarray(getattr(anat, "airways", np.zeros(f.shape, bool)), bool)
    central &= dilate_mm(ctx.region, 15.0, f.spacing) if ctx.region_is_named else central
    found |= central
    wall_mm = max(_WALL_MM, f.inplane)
    grown = dilate_mm(found, wall_mm, f.spacing) & (lungs | dilate_mm(central, wall_mm, f.spacing))
    # Bronchiectasis: the widened bronchus, lumen and wall; wall thickening: the solid ring around the lumen.
    found = grown if wide else grown & ~found & (f.hu > -600.0)
    min_vox = max(3, int(np.ceil(30.0 / float(np.prod(f.spacing)))))
    found = keep_components(found, min_vox)
    score = np.where(found, np.maximum(prior, 0.5), 0.0).astype(np.float32)
    return RuleOutput(score=score, fallback=ctx.region, notes={"rule": "airway", "bronchiectasis": wide})
