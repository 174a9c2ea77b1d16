"""1d septal thickening / reticulation and 2f honeycombing: subpleural, basal reticular density.

Both are textures, not shapes: a lung region whose mean density is raised (but below soft tissue) and
whose density varies strongly over a few millimetres (lines, cysts). Where the sentence names no place,
the prior is the typical one of fibrosis, the subpleural lung of the bases; otherwise the named place,
still favouring its subpleural part. Honeycombing asks for stronger variation (air cysts with walls).
"""

from __future__ import annotations

import numpy as np

from rexground.engines.rules.common import RuleContext, RuleOutput, band, keep_components, ramp, soft_prior

_SUBPLEURAL_MM = 15.0


def _zone(ctx: RuleContext, name: str, side: str) -> np.ndarray | None:
    try:
        z = ctx.anat.zone(name, side)
    except Exception:  # the anatomy may not model this zone: the rule then goes without it
        return None
    return None if z is None else np.asarray(z, bool)


def local_std(ctx: RuleContext, sigma_mm: float) -> np.ndarray:
    f = ctx.features
    key = ("std", sigma_mm)
    if key not in f._cache:
        from scipy import ndimage

        sig = [sigma_mm / s for s in f.spacing]
        m = f.smooth(sigma_mm)
        m2 = ndimage.gaussian_filter(f.hu * f.hu, sig, mode="nearest", truncate=3.0)
        f._cache[key] = np.sqrt(np.maximum(m2 - m * m, 0.0)).astype(np.float32)
    return f._cache[key]


def predict(ctx: RuleContext) -> RuleOutput:
    f = ctx.features
    lungs = np.asarray(ctx.anat.lungs, bool)
    honeycomb = ctx.query.category == "2f" or "honeycomb" in ctx.text
    subpleural = f.depth_mm(lungs, key="lungs") <= _SUBPLEURAL_MM
    if ctx.region_is_named:
        place = soft_prior(ctx, decay_mm=8.0, within=lungs) * np.where(subpleural, 1.0, 0.6)
    else:
        basal = _zone(ctx, "basal", ctx.query.side)
        place = (subpleural & (basal if basal is not None else lungs)).astype(np.float32)
    mean = f.smooth(2.0)
    std = local_std(ctx, 2.0)
    if honeycomb:
        like = band(mean, -850.0, -400.0, 80.0) * ramp(std, 150.0, 280.0)
    else:
        like = band(mean, -800.0, -350.0, 80.0) * ramp(std, 80.0, 180.0)
    score = (like * place * lungs).astype(np.float32)
    min_vox = max(3, int(np.ceil(50.0 / float(np.prod(f.spacing)))))
    found = keep_components(score >= 0.5, min_vox)
    score = np.where(found, np.maximum(score, 0.5), np.minimum(score, 0.49)).astype(np.float32)
    fallback = (place > 0.5) & lungs if (place > 0.5).any() else ctx.region
    return RuleOutput(
        score=score, fallback=fallback, notes={"rule": "interstitial", "honeycombing": honeycomb}
    )
