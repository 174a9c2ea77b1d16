"""2b consolidation and atelectasis: dense parenchyma (soft-tissue density replacing air) in the named place.

Solid voxels in the lung envelope are opened with a 3 mm ball (vessels and bronchial walls are thinner),
grown back to the solid voxels next to them, and weighted by the named place. Atelectasis without a
named place is usually dependent (posterior, basal): the prior then favours the posterior lung. A
collapsed lobe is simply a large dense component of that lobe, which the same rule returns whole.
"""

from __future__ import annotations

import numpy as np

from rexground.engines.rules.common import (
    RuleContext,
    RuleOutput,
    ball_opening,
    dilate_mm,
    keep_components,
    ramp,
    soft_prior,
)

_OPEN_MM = 3.0
_MIN_ML = 0.3
HU_CONSOLIDATION = -300.0


def dependent_weight(ctx: RuleContext, mask: np.ndarray) -> np.ndarray:
    """0.5 at the front of the lungs rising to 1 at the back: gravity puts fluid and collapse posteriorly."""
    f = ctx.features
    ys = np.flatnonzero(mask.any(axis=(0, 2)))
    w = np.ones(f.shape, np.float32)
    if ys.size:
        y = np.arange(f.shape[1], dtype=np.float32)
        t = np.clip((y - ys[0]) / max(ys[-1] - ys[0], 1), 0, 1)
        w *= (0.5 + 0.5 * t)[None, :, None]
    return w


def predict(ctx: RuleContext) -> RuleOutput:
    f = ctx.features
    anat = ctx.anat
    env = np.asarray(anat.lung_envelope, bool)
    if getattr(anat, "airways", None) is not None:
        env &= ~np.asarray(anat.airways, bool)
    sm = f.smooth(1.0)
    solid = (sm > HU_CONSOLIDATION) & env
    core = ball_opening(solid, _OPEN_MM, f.spacing)
    grown = solid & dilate_mm(core, _OPEN_MM + f.inplane, f.spacing)
    prior = soft_prior(ctx, decay_mm=10.0, within=env)
    dependent = "dependent" in ctx.query.zones or (
        not ctx.region_is_named and any(w in ctx.text for w in ("atelecta", "collapse"))
    )
    if dependent:
        prior = prior * dependent_weight(ctx, env)
    score = ramp(sm, -500.0, HU_CONSOLIDATION) * prior
    min_vox = max(3, int(np.ceil(_MIN_ML * 1000.0 / float(np.prod(f.spacing)))))
    found = keep_components(grown & (score >= 0.5), min_vox)
    score = np.where(found, np.maximum(score, 0.5), np.minimum(score, 0.49)).astype(np.float32)
    return RuleOutput(
        score=score, fallback=ctx.region, notes={"rule": "consolidation", "dependent": dependent}
    )
