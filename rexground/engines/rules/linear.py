"""2a linear opacities (linear / plate atelectasis, scars, fibrotic bands): thin dense plates in the lung.

At a 1.5 mm scale a plate has one strongly negative Hessian eigenvalue (across it) and two small ones; a
vessel has two strong ones, a nodule three. Plateness keeps the first and rejects the others. Fissures
are plates too, but thinner and fainter than a band of atelectasis, so the plate must also be solid
(above -500 HU at its centre). The strongest plates in the named place are kept: one for a single
finding, a few or more as the sentence's multiplicity says.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from rexground.engines.rules.common import RuleContext, RuleOutput, keep_components, soft_prior

_N_WANTED = {"single": 1, "few": 3, "multiple": 8, "diffuse": 20}


def predict(ctx: RuleContext) -> RuleOutput:
    f = ctx.features
    lungs = np.asarray(ctx.anat.lungs, bool)
    prior = soft_prior(ctx, decay_mm=8.0, within=lungs)
    where = lungs & (f.smooth(0.7) > -500.0) & (prior > 0.2)
    score = np.zeros(f.shape, np.float32)
    if not where.any():
        return RuleOutput(score=score, fallback=ctx.region, notes={"rule": "linear", "voxels": 0})
    plate = np.zeros(int(where.sum()), np.float32)
    for sigma in (1.0, 2.0):
        ev = f.hessian_eigenvalues(max(sigma, 0.5 * min(f.spacing)), where)
        l1 = -ev[:, 0]  # the strongest negative curvature, across the plate
        others = np.maximum(np.abs(ev[:, 1]), np.abs(ev[:, 2]))
        p = np.where(l1 > 0, l1 * np.clip(1.0 - others / np.maximum(l1, 1e-6), 0, 1) ** 2, 0.0)
        plate = np.maximum(plate, p.astype(np.float32))
    raw = np.zeros(f.shape, np.float32)
    raw[where] = plate
    raw *= prior
    top = float(np.percentile(raw[where], 99.5))
    if top <= 0:
        return RuleOutput(score=score, fallback=ctx.region, notes={"rule": "linear", "voxels": 0})
    score = np.clip(raw / top, 0, 1).astype(np.float32)
    min_vox = max(3, int(np.ceil(30.0 / float(np.prod(f.spacing)))))
    found = keep_components(score >= 0.5, min_vox)
    found = _strongest_plates(found, score, _N_WANTED.get(ctx.query.multiplicity, 1))
    score = np.where(found, np.maximum(score, 0.5), np.minimum(score, 0.49)).astype(np.float32)
    return RuleOutput(score=score, fallback=ctx.region, notes={"rule": "linear", "voxels": int(found.sum())})


def _strongest_plates(found: np.ndarray, score: np.ndarray, n_keep: int) -> np.ndarray:
    """The ``n_keep`` plates with the most plate evidence (sum of score): a report names the band it saw,
    and the many faint plate-like bits (fissure pieces, vessel walls) cost precision."""
    lab, n = ndimage.label(found, structure=ndimage.generate_binary_structure(3, 2))
    if n <= n_keep:
        return found
    idx = np.arange(1, n + 1)
    evidence = ndimage.sum_labels(score, lab, idx)
    keep = np.zeros(n + 1, bool)
    keep[idx[np.argsort(-evidence)[:n_keep]]] = True
    return keep[lab]
