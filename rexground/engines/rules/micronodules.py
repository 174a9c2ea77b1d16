"""1e micronodules (centrilobular, tree-in-bud, perilymphatic, miliary): many small bright blobs.

The Hessian blob measure at 2-5 mm scales, in the named place; every local peak that stands out (at least
a third of the strongest, a ratio, not a scan-specific HU level) becomes a small ball. Vessels in cross
section also look like dots in one slice but are tubes in 3D, so the 3D blob measure rejects them.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from rexground.engines.rules.common import RuleContext, RuleOutput, dilate_mm, soft_prior

_DIAMETERS_MM = (2.5, 4.0, 6.0)
_MAX_PEAKS = 300


def _blobness(ctx: RuleContext, diameters: list[float], where: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Max over scales of a bright-blob measure (all three eigenvalues negative; the weakest one decides,
    so tubes and plates score near zero) and the diameter of the best scale, on the working grid."""
    f = ctx.features
    best = np.zeros(int(where.sum()), np.float32)
    best_d = np.zeros_like(best)
    for d in diameters:
        sigma = d / (2.0 * np.sqrt(3.0))
        sigma = max(sigma, 0.5 * min(f.spacing))
        ev = f.hessian_eigenvalues(sigma, where)
        weakest = ev[:, 2]  # ascending, so the largest (least negative) eigenvalue
        b = np.where(weakest < 0, -weakest, 0.0).astype(np.float32)
        better = b > best
        best[better] = b[better]
        best_d[better] = d
    out = np.zeros(f.shape, np.float32)
    out_d = np.zeros(f.shape, np.float32)
    out[where] = best
    out_d[where] = best_d
    return out, out_d


def predict(ctx: RuleContext) -> RuleOutput:
    f = ctx.features
    lungs = np.asarray(ctx.anat.lungs, bool)
    prior = soft_prior(ctx, decay_mm=5.0, within=lungs)
    where = lungs & (f.smooth(0.7) > -750.0) & (prior > 0.2)
    blob, _ = _blobness(ctx, list(_DIAMETERS_MM), where)
    raw = blob * prior
    score = np.zeros(f.shape, np.float32)
    if not (raw > 0).any():
        return RuleOutput(score=score, fallback=ctx.region, notes={"rule": "micronodules", "peaks": 0})
    size = [max(3, int(np.rint(4.0 / s)) | 1) for s in f.spacing]
    peaks = (raw == ndimage.maximum_filter(raw, size=size, mode="constant")) & (raw > 0)
    vals = raw[peaks]
    top = float(np.percentile(vals, 99)) if vals.size > 20 else float(vals.max())
    strong = peaks & (raw >= top / 3.0)
    if int(strong.sum()) > _MAX_PEAKS:
        cut = np.sort(raw[strong])[-_MAX_PEAKS]
        strong &= raw >= cut
    # Each micronodule at least 2 mm in radius and at least 10 CT voxels, so the official filter keeps it.
    ct_voxel = float(np.prod(f.ct_spacing))
    radius = max(2.0, (10.0 * ct_voxel * 3.0 / (4.0 * np.pi)) ** (1.0 / 3.0), f.inplane)
    balls = dilate_mm(strong, radius, f.spacing) & lungs
    score = np.clip(raw / max(top, 1e-6), 0, 1).astype(np.float32) * 0.45
    score[balls] = 1.0
    return RuleOutput(
        score=score, fallback=ctx.region, notes={"rule": "micronodules", "peaks": int(strong.sum())}
    )
