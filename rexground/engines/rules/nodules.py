"""2d nodules and masses: dense blobs inside the lung envelope, sized by the sentence.

Masses (the word "mass", or a stated size of 3 cm or more): solid voxels inside the lung envelope are opened
by a ball a few millimetres wide, which removes vessels and keeps what is thick enough to be a tumour; the
component with the most volume in the named place wins (the largest lesion there), and is grown back to
the solid voxels near it and refined at the CT's own resolution. The lung envelope, not a threshold, is its
outer boundary: tumour and mediastinal blood have the same density, only anatomy separates them.

Nodules: a multi-scale Hessian blob measure at the scales the stated size implies (a sphere of diameter d
answers best at sigma = d / (2 sqrt 3)); tubes (vessels) have one eigenvalue near zero and score low.
The best peaks in the named place (one, a few or many, by the sentence's multiplicity) are each segmented
at full CT resolution inside a small box: the solid voxels connected to the peak, within a ball of the
nodule's scale, so a vessel touching the nodule is cut at its surface.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from rexground.engines.rules.common import (
    HU_DENSE,
    RuleContext,
    RuleOutput,
    ball_opening,
    bbox_slices,
    ct_box_of,
    dilate_mm,
    soft_prior,
    work_to_ct_crop,
)

MASS_MIN_MM = 30.0  # radiology: a lesion of 3 cm or more is a mass
_DEFAULT_MASS_MM = 45.0
_LARGE_MASS_MM = 60.0
_DEFAULT_NODULE_MM = 8.0
_SUBSOLID_WORDS = ("ground", "subsolid", "sub-solid", "part-solid", "part solid", "semisolid", "semi-solid")
_LARGE_WORDS = ("large", "bulky", "huge", "big", "extensive", "giant", "sizable", "sizeable")
_MIN_VOXELS = 10  # the official component filter drops anything smaller
_STRUCT26 = ndimage.generate_binary_structure(3, 3)


def expected_diameter_mm(ctx: RuleContext, is_mass: bool) -> float:
    q = ctx.query
    if q.size_mm:
        return float(q.size_mm) * (0.7 if q.size_is_upper_bound else 1.0)
    if is_mass:
        return _LARGE_MASS_MM if any(w in ctx.text for w in _LARGE_WORDS) else _DEFAULT_MASS_MM
    if any(w in ctx.text for w in ("micronodul", "tiny", "small")):
        return 5.0
    return _DEFAULT_NODULE_MM


def is_mass(ctx: RuleContext) -> bool:
    q = ctx.query
    if q.size_mm is not None and not q.size_is_upper_bound and q.size_mm >= MASS_MIN_MM:
        return True
    return "mass" in ctx.text or "tumour" in ctx.text or "tumor" in ctx.text or "carcinoma" in ctx.text


def _n_wanted(ctx: RuleContext) -> int:
    return {"single": 1, "few": 3, "multiple": 8, "diffuse": 20}.get(ctx.query.multiplicity, 1)


def _envelope(ctx: RuleContext) -> np.ndarray:
    """The lung envelope without the airways and without what the anatomy calls mediastinum (the two
    may overlap at the hilum; a lung lesion is never the heart or the great vessels)."""
    anat = ctx.anat
    env = np.asarray(anat.lung_envelope, bool)
    for name in ("airways", "mediastinum"):
        other = getattr(anat, name, None)
        if other is not None:
            env = env & ~np.asarray(other, bool)
    return env


def predict_mass(ctx: RuleContext) -> RuleOutput:
    f = ctx.features
    env = _envelope(ctx)
    diameter = expected_diameter_mm(ctx, True)
    solid = (f.smooth(1.0) > HU_DENSE) & env
    # Vessels are thinner than a ball of this radius; a tumour is not. Kept modest so small masses survive.
    prior = soft_prior(ctx, decay_mm=15.0, within=env, region=_mass_place(ctx))
    # A smaller lesion than expected ("mass" for a 2 cm lesion) vanishes in the opening: retry narrower.
    for r_open in dict.fromkeys((float(np.clip(0.15 * diameter, 3.0, 8.0)), 3.0)):
        core = ball_opening(solid, r_open, f.spacing)
        if (core & (prior > 0.05)).any():
            break
    labels, n = ndimage.label(core, structure=_STRUCT26)
    score = np.zeros(f.shape, np.float32)
    notes: dict = {"rule": "mass", "diameter_mm": diameter, "opening_mm": r_open, "candidates": int(n)}
    if n == 0:
        return RuleOutput(score=score, fallback=ctx.region, notes=notes)
    idx = np.arange(1, n + 1)
    support = ndimage.sum_labels(prior, labels, idx) * float(np.prod(f.spacing))  # mm^3 in the named place
    order = np.argsort(-support)
    best = float(support[order[0]])
    chosen = [int(idx[order[0]])]
    if ctx.query.multiplicity != "single":
        chosen += [int(idx[i]) for i in order[1 : _n_wanted(ctx)] if support[i] >= 0.25 * best]
    grown = np.zeros(f.shape, bool)
    radii = []
    for lab in chosen:
        lesion, r_lesion = _lesion_body(solid, labels == lab, r_open, f.spacing)
        grown |= lesion
        radii.append(round(r_lesion, 1))
    if grown.any():
        box = bbox_slices(grown, pad=1)
        grown[box] = ndimage.binary_fill_holes(grown[box]) & env[box]
    score[grown] = 1.0
    # Other candidates keep a weaker score, so a caller that lowers the threshold sees them.
    rel = np.zeros(n + 1, np.float32)
    rel[idx] = (support / max(best, 1e-6)).astype(np.float32)
    others = core & ~grown
    score[others] = 0.4 * rel[labels[others]]
    mask_ct = _refine_solid_at_ct(ctx, grown, env, hu_threshold=HU_DENSE)
    notes.update(
        chosen=len(chosen), body_opening_mm=radii, volume_ml=float(grown.sum() * np.prod(f.spacing) / 1000.0)
    )
    return RuleOutput(score=score, fallback=ctx.region, mask_ct=mask_ct, notes=notes)


# A tumour is the thickest solid body of its neighbourhood. Tissue attached to it that is less than this
# fraction as thick (vessels, bronchial walls, a band of collapsed lung, a bridge to the mediastinum) is
# another structure, so the lesion is opened at this fraction of its own largest inscribed radius, and
# grown back by half that radius to recover its lobulated edge.
_BODY_FRACTION = 0.6
_REGROW_FRACTION = 0.5


def _lesion_body(
    solid: np.ndarray, candidate: np.ndarray, r_open: float, spacing
) -> tuple[np.ndarray, float]:
    """The body of one candidate lesion: an opening scaled to the lesion's own thickness (see above)."""
    near = solid & dilate_mm(candidate, 2.0 * r_open, spacing)
    box = bbox_slices(near, pad=1)
    depth = ndimage.distance_transform_edt(near[box], sampling=spacing)
    inner = np.where(candidate[box], depth, 0.0)
    deepest = np.unravel_index(int(np.argmax(inner)), inner.shape)
    r_body = max(r_open, _BODY_FRACTION * float(inner[deepest]))
    body = ball_opening(near[box], r_body, spacing)
    labels, _ = ndimage.label(body, structure=_STRUCT26)
    # The deepest voxel survives unless the ball at r_open does not fit there (a lesion thinner than
    # r_open, possible after the narrower retry): then the candidate itself is the body.
    body = candidate[box] if labels[deepest] == 0 else labels == labels[deepest]
    out = np.zeros(solid.shape, bool)
    out[box] = near[box] & dilate_mm(body, _REGROW_FRACTION * r_body, spacing)
    return out, r_body


def _mass_place(ctx: RuleContext) -> np.ndarray:
    """Where a mass may be: the named lobes OR the named zones ("in the left upper lobe extending to the
    hilum", "perihilar mass extending into the right lower lobe" name two places a mass spans), not their
    intersection."""
    q = ctx.query
    if not (q.lobes and q.zones):
        return ctx.region
    side = q.side if q.side in ("left", "right", "bilateral") else "unspecified"
    place = np.zeros(ctx.features.shape, bool)
    for kwargs in ({"lobes": tuple(q.lobes)}, {"zones": tuple(q.zones)}):
        try:
            place |= np.asarray(ctx.anat.region(side=side, **kwargs), bool)
        except (KeyError, ValueError):
            continue
    return place if place.any() else ctx.region


def _refine_solid_at_ct(
    ctx: RuleContext, lesion_work: np.ndarray, env: np.ndarray, hu_threshold: float
) -> np.ndarray | None:
    """The lesion at the CT's resolution: solid CT voxels within one working voxel of the working-grid
    lesion and inside the envelope, holes (necrosis, air bronchograms) filled."""
    f = ctx.features
    if not lesion_work.any():
        return None
    limit = dilate_mm(lesion_work, f.inplane, f.spacing) & dilate_mm(env, f.inplane, f.spacing)
    box = ct_box_of(f, limit, pad_mm=2.0)
    hu = f.ct_crop(box)
    sig = [min(0.7 / s, 1.0) if s < 1.5 else 0.0 for s in f.ct_spacing]
    hu = ndimage.gaussian_filter(hu, sig, mode="nearest")
    crop = (hu > hu_threshold) & work_to_ct_crop(f, limit, box)
    # Cut vessels and spicules thinner than 3 mm where they leave the lesion, keeping its body.
    trimmed = ball_opening(crop, 1.5, f.ct_spacing)
    if trimmed.any():
        crop = trimmed
    if not crop.any():
        return None
    crop = ndimage.binary_fill_holes(crop)
    out = np.zeros(f.ct_shape, bool)
    out[box] = crop
    return out


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


def predict_nodules(ctx: RuleContext) -> RuleOutput:
    f = ctx.features
    env = _envelope(ctx)
    diameter = expected_diameter_mm(ctx, False)
    subsolid = any(w in ctx.text for w in _SUBSOLID_WORDS)
    hu_contour = -650.0 if subsolid else HU_DENSE
    if ctx.query.size_mm and ctx.query.size_is_upper_bound:
        diameters = sorted({max(3.0, ctx.query.size_mm * k) for k in (0.35, 0.6, 1.0)})
    elif ctx.query.size_mm:
        diameters = sorted({max(3.0, diameter * k) for k in (0.75, 1.0, 1.3)})
    else:
        diameters = [4.0, 7.0, 12.0, 20.0]
    # Candidate voxels: denser than aerated lung, inside the envelope (the chest wall is outside it).
    sm = f.smooth(0.5 * min(diameters) / np.sqrt(3.0))
    prior = soft_prior(ctx, decay_mm=10.0, within=env)
    # Only near the named place: the Hessian is the costly part, and far candidates would score ~0 anyway.
    where = env & (sm > (-750.0 if subsolid else -650.0)) & (prior > 0.05)
    blob, blob_d = _blobness(ctx, diameters, where)
    size_match = np.exp(-0.5 * (np.log(np.maximum(blob_d, 1e-3) / diameter) / 0.5) ** 2)
    raw = blob * prior * np.where(blob_d > 0, size_match, 0.0)
    notes: dict = {"rule": "nodule", "diameter_mm": diameter, "scales_mm": diameters}
    if not (raw > 0).any():
        return RuleOutput(score=np.zeros(f.shape, np.float32), fallback=ctx.region, notes=notes)
    # Peaks: local maxima over a neighbourhood of the nodule's own size.
    size_vox = [max(3, int(np.rint(0.8 * diameter / s)) | 1) for s in f.spacing]
    peaks = (raw == ndimage.maximum_filter(raw, size=size_vox, mode="constant")) & (raw > 0)
    coords = np.argwhere(peaks)
    vals = raw[peaks]
    order = np.argsort(-vals)
    top = float(vals[order[0]])
    n_want = _n_wanted(ctx)
    chosen = [i for i in order[: n_want * 3] if vals[i] >= (0.35 if n_want > 1 else 0.0) * top][:n_want]
    score = np.clip(raw / max(top, 1e-6), 0.0, 1.0).astype(np.float32) * 0.45  # below threshold: a hint only
    mask_ct = np.zeros(f.ct_shape, bool)
    for i in chosen:
        c = coords[i]
        d = float(blob_d[tuple(c)]) or diameter
        seg = _segment_nodule_at_ct(ctx, c, d, hu_contour, env)
        if seg is not None:
            box, crop = seg
            mask_ct[box] |= crop
            score[tuple(c)] = 1.0
    notes.update(n_peaks=len(coords), chosen=len(chosen))
    return RuleOutput(
        score=score, fallback=ctx.region, mask_ct=mask_ct if mask_ct.any() else None, notes=notes
    )


def _segment_nodule_at_ct(ctx: RuleContext, peak_work: np.ndarray, diameter: float, hu_contour: float, env):
    """Solid CT voxels connected to the peak inside a ball of radius 0.75 x diameter (at least 2 voxels)."""
    f = ctx.features
    # The peak's centre in CT voxel coordinates.
    centre = np.array(
        [(p + 0.5) * nc / nw - 0.5 for p, nc, nw in zip(peak_work, f.ct_shape, f.shape, strict=True)]
    )
    radius = max(0.75 * diameter, 2.0 * max(f.ct_spacing[1:]))
    half = [int(np.ceil(radius / s)) + 1 for s in f.ct_spacing]
    lo = [max(0, int(np.rint(c)) - h) for c, h in zip(centre, half, strict=True)]
    hi = [min(n, int(np.rint(c)) + h + 1) for c, n, h in zip(centre, f.ct_shape, half, strict=True)]
    box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    hu = f.ct_crop(box)
    grids = np.ogrid[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))]
    d2 = sum(((g - c) * s) ** 2 for g, c, s in zip(grids, centre, f.ct_spacing, strict=True))
    ball = d2 <= radius**2
    inside_env = work_to_ct_crop(f, dilate_mm(env, f.inplane, f.spacing) if env.any() else env, box)
    solid = (hu > hu_contour) & ball & inside_env
    if not solid.any():
        return None
    labels, _ = ndimage.label(solid, structure=_STRUCT26)
    # The component nearest the peak.
    d2s = np.where(solid, d2, np.inf)
    nearest = np.unravel_index(np.argmin(d2s), solid.shape)
    comp = labels == labels[nearest]
    comp = ndimage.binary_fill_holes(comp)
    if comp.sum() < _MIN_VOXELS:  # too small to survive the official filter: the faint rim counts too
        comp = ball & (hu > -800.0)
        if comp.sum() < _MIN_VOXELS:
            comp = ball
    return box, comp


def predict(ctx: RuleContext) -> RuleOutput:
    """Category 2d."""
    if is_mass(ctx):
        out = predict_mass(ctx)
        if out.mask_ct is not None or out.score.any():
            return out
    return predict_nodules(ctx)


__all__ = ["predict", "predict_mass", "predict_nodules"]
