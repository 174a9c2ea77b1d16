"""1c emphysema, bullae: lung below -950 HU (the LAA-950 convention), read noise-aware, away from the lung edge.

* Noise: on a noisy scan normal lung (about -860 HU) reaches -950 in single voxels. The image is averaged over
  enough voxels that the noise left is ``_TARGET_NOISE_HU`` (normal lung then sits six of those above the
  threshold), measured in the scan's own parenchyma; emphysematous spaces (centrilobular 3-10 mm, bullae
  larger) are wider than that average and keep their density.
* Edges: the reconstruction kernel's undershoot next to a dense edge (heart border, chest wall, diaphragm)
  and the partial volume of a thick slice make a band of artificially low or mixed density along the lung's
  boundary; the band within ``_EDGE_MM`` of the lung's surface is never emphysema by itself (a real
  paraseptal or subpleural emphysema reaches deeper and keeps its inner part).
* Airways: their lumen is air (below -950): the trachea and bronchi, with a margin, are excluded.
* Place: the named lobes and sides ("both upper lobes" is the two upper lobes), softly; bullae (the words
  bulla, bullous, bleb) keep only air pockets of 1 mL or more.
When nothing is below the threshold, the darkest part of the named place answers (postprocessing).
"""

from __future__ import annotations

import numpy as np

from rexground.engines.rules.common import (
    HU_EMPHYSEMA,
    RuleContext,
    RuleOutput,
    dilate_mm,
    keep_components,
    local_mean_sd_inplane,
    noise_matched_sigma_mm,
    ramp,
    soft_prior,
)

_BULLA_WORDS = ("bulla", "bullae", "bullous", "bleb")
_TARGET_NOISE_HU = 15.0
_SIGMA_RANGE_MM = (0.5, 2.5)
_EDGE_MM = 3.0  # a kernel's undershoot and a slice's partial volume reach 1-2 voxels (up to ~3 mm)
_AIRWAY_MARGIN_MM = 2.0
_FALLBACK_ML = 0.5


def lung_noise_hu(ctx: RuleContext) -> float:
    """Noise of the lung parenchyma (HU): the median local standard deviation (4.5 mm windows in-plane) in
    the lung's interior where its mean is that of normal lung (-950 to -750 HU)."""
    f = ctx.features
    key = ("lung-noise",)
    if key not in f._cache:
        lungs = np.asarray(ctx.anat.lungs, bool)[f.roi]
        sub = f.hu[f.roi]
        m, sd = local_mean_sd_inplane(sub, 4.5, f.spacing)
        where = lungs & (m > -950.0) & (m < -750.0)
        vals = sd[where]
        f._cache[key] = float(np.clip(np.percentile(vals, 25), 3.0, 150.0)) if vals.size > 1000 else 30.0
    return f._cache[key]


def smoothing_sigma_mm(ctx: RuleContext) -> float:
    """The Gaussian width whose average leaves ``_TARGET_NOISE_HU`` of the parenchyma's noise."""
    return noise_matched_sigma_mm(lung_noise_hu(ctx), _TARGET_NOISE_HU, ctx.features.spacing, _SIGMA_RANGE_MM)


def predict(ctx: RuleContext) -> RuleOutput:
    f = ctx.features
    anat = ctx.anat
    lungs = np.asarray(anat.lungs, bool)
    inner = lungs & (f.depth_mm(lungs, key="lungs") > _EDGE_MM)
    if getattr(anat, "airways", None) is not None and np.asarray(anat.airways).any():
        inner &= ~dilate_mm(np.asarray(anat.airways, bool), _AIRWAY_MARGIN_MM, f.spacing)
    sigma = smoothing_sigma_mm(ctx)
    sm = f.smooth(sigma)
    # 0 at -900 HU (normal lung is denser), 0.5 at the -950 HU threshold, 1 at -1000.
    score = ramp(sm, HU_EMPHYSEMA + 50.0, HU_EMPHYSEMA - 50.0) * soft_prior(ctx, decay_mm=5.0, within=inner)
    bullous = any(w in ctx.text for w in _BULLA_WORDS)
    min_ml = 1.0 if bullous else 0.01
    min_vox = max(2, int(np.ceil(min_ml * 1000.0 / float(np.prod(f.spacing)))))
    found = keep_components(score >= 0.5, min_vox)
    score = np.where(found, np.maximum(score, 0.5), np.minimum(score, 0.49)).astype(np.float32)
    notes = {
        "rule": "emphysema", "bullous": bullous, "sigma_mm": sigma, "lung_noise_hu": round(lung_noise_hu(ctx), 1),
        "volume_ml": round(float(found.sum() * np.prod(f.spacing) / 1000.0), 2),
    }  # fmt: skip
    place = ctx.region & inner if (ctx.region & inner).any() else ctx.region
    return RuleOutput(score=score, fallback=_darkest(sm, place, f), notes=notes)


def _darkest(sm: np.ndarray, place: np.ndarray, f) -> np.ndarray:
    """The never-empty answer when no lung is below the threshold: the ``_FALLBACK_ML`` of lowest density in
    the named place, not a share of the whole place (which on a lung without emphysema would be litres)."""
    vals = sm[place]
    n = max(1, int(np.ceil(_FALLBACK_ML * 1000.0 / float(np.prod(f.spacing)))))
    if vals.size <= n:
        return place
    cut = np.partition(vals, n - 1)[n - 1]
    return place & (sm <= cut)
