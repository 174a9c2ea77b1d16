"""2d nodules and masses: compact dense (or ground-glass) blobs in the lung, not vessels, not the chest wall.

Masses (the word "mass", or one solid lesion of 3 cm or more): solid voxels inside the lung envelope are opened
by a ball a few millimetres wide, which removes vessels and keeps what is thick enough to be a tumour; the
component with the most volume in the named place wins (the largest lesion there), and is grown back to
the solid voxels near it and refined at the CT's own resolution. The lung envelope, not a threshold, is its
outer boundary: tumour and mediastinal blood have the same density, only anatomy separates them.

Nodules: candidates are scale-space blobs (3 mm to 5 cm) on a near-isotropic resampling of the lungs, in the
density window of the sentence's texture (``blobs``: why each step). Each candidate is scored by factors near 1
for a nodule and near 0 for what mimics one (``_quality``): its shape (sphere, not tube or branching), what
leaves it (a vessel continues with its own calibre), what surrounds it (aerated lung, not the chest wall),
its density for the texture (partial volume of thick slices allowed for), its compactness, its size against
the stated one and the named place, both as priors that decay, never as clips. A singular sentence answers
the best candidate; a plural one every convincing candidate up to the count it implies. Each answer is
segmented at the CT's own resolution at its half-contrast level, inside a ball around it, so a touching vessel
is cut at its surface.
"""

from __future__ import annotations

import re

import numpy as np
from scipy import ndimage

from rexground.engines.rules.blobs import (
    LOOKS,
    Candidate,
    IsoVolume,
    Look,
    blob_peaks,
    describe,
    iso_mask,
    iso_volume,
    raw_iso,
)
from rexground.engines.rules.common import (
    HU_DENSE,
    RuleContext,
    RuleOutput,
    ball_opening,
    bbox_slices,
    ct_box_of,
    dilate_mm,
    ramp,
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
    """A mass: the sentence says so ("mass", "tumour", "carcinoma"), or one solid lesion of 3 cm or more.
    A plural sentence's size is its largest instance ("nodules ..., the largest 30 mm"): those are nodules,
    and a ground-glass or part-solid lesion is never segmented as solid tissue, whatever its size."""
    q = ctx.query
    if any(w in ctx.text for w in ("mass", "tumour", "tumor", "carcinoma")):
        return True
    texture = getattr(q, "texture", None)
    return (
        q.size_mm is not None
        and not q.size_is_upper_bound
        and q.size_mm >= MASS_MIN_MM
        and q.multiplicity == "single"
        and texture in (None, "solid")
    )


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


# --- nodules ------------------------------------------------------------------------------------------------
# How many instances a sentence asks for: one ("a nodule"), a few, or many ("nodules in both lungs").
_N_WANTED = {"single": 1, "few": 4, "multiple": 10, "diffuse": 20}
# A candidate whose quality (everything but the place) is below this is not taken as a further instance of a
# plural sentence: the factors below are each near 1 for a clear nodule, so 0.2 means "about half as
# convincing on two of them". The best candidate always answers, however weak (the answer is never empty).
_MIN_QUALITY_EXTRA = 0.2
# Further instances need at least this fraction of the best one's score: weaker ones are more often vessels.
_EXTRA_FRACTION = 0.25
_PLACE_DECAY_MM = 15.0  # the lobe model is approximate and nodules sit on fissures: a preference, not a wall
_SMALL_WORDS = ("small", "tiny", "punctate", "micronod", "millimetric")
_MAX_DESCRIBED = 1500  # peaks described per finding (strongest by contrast and place first)


def _density_factor(c: Candidate, look: Look, lung_hu: float, slice_mm: float) -> float:
    """How well the candidate's density fits the texture, allowing for partial volume: a sphere of diameter d
    on slices of thickness T fills at most min(1, d / T) of its central voxel, so its core contrast shrinks by
    that much; the requirement shrinks with it (a 5 mm nodule on 5 mm slices is not soft-tissue dense)."""
    fill = float(np.clip(c.diameter_mm / max(slice_mm, 1e-3), 0.3, 1.0))
    if look.name == "ground-glass":
        # Denser than lung by at least ~70 HU (noise in a 5 mm blob averages well below that), and the bulk
        # of it below solid tissue (a solid nodule is not what "ground glass" describes).
        raised = ramp(c.mean_hu, lung_hu + 40.0 * fill, lung_hu + 100.0 * fill)
        return float(raised * ramp(c.mean_hu, -250.0, -400.0))
    need_lo = lung_hu + fill * (look.core_min_hu - lung_hu) * 0.6
    need_hi = lung_hu + fill * (look.core_min_hu - lung_hu)
    return float(ramp(c.core_hu, need_lo, need_hi))


def _size_factor(ctx: RuleContext, c: Candidate) -> float:
    """The stated size as a prior. A stated size is the largest dimension, the equivalent diameter of a real
    (irregular, partly vessel-cut) lesion is smaller, so the size is compared with 0.8 x the stated one on a
    log scale (factor 0.6 at 1.5x off). An upper bound ("subcentimeter", "small") and a plural sentence's size
    (its largest instance) only penalise larger candidates. Without a size, the more conspicuous lesion is the
    one a report names: the factor rises from 0.35 at 3 mm to 1 at 10 mm, and falls beyond 3 cm (a nodule is
    under 3 cm by definition; larger is a mass)."""
    q = ctx.query
    d = c.diameter_mm
    if q.size_mm:
        target = 0.8 * float(q.size_mm)
        if q.size_is_upper_bound or q.multiplicity != "single":
            return float(np.exp(-0.5 * (max(0.0, np.log(d / target)) / 0.45) ** 2))
        return float(np.exp(-0.5 * (np.log(d / target) / 0.45) ** 2))
    if any(w in ctx.text for w in _SMALL_WORDS):
        return float(np.exp(-0.5 * (max(0.0, np.log(d / 8.0)) / 0.45) ** 2))  # "small": under a centimetre
    # Ground glass under about 6 mm is rarely reported (it needs no follow-up), and a vessel's partial volume
    # on a thick slice reads as a ground-glass dot of that size: the rise starts later for that texture.
    lo, hi = (5.0, 15.0) if getattr(q, "texture", None) == "ground-glass" else (3.0, 10.0)
    small = 0.35 + 0.65 * float(ramp(d, lo, hi))
    large = 0.4 + 0.6 * float(ramp(d, 40.0, 28.0))
    return small * large


# The textures a candidate may show for each texture a sentence states, with the weight of each: a sentence
# that states none most often means a solid nodule, but a subsolid one is a nodule too; a calcified nodule's
# density may be diluted below calcium by partial volume (then it is a solid-looking dot).
ACCEPTED_LOOKS: dict[str | None, dict[str, float]] = {
    None: {"solid": 1.0, "part-solid": 0.7},
    "solid": {"solid": 1.0},
    "part-solid": {"part-solid": 1.0},
    "ground-glass": {"ground-glass": 1.0},
    "calcified": {"calcified": 1.0, "solid": 0.3},
}


def _quality(
    c: Candidate, looks: dict[str, float], window: Look, lung_hu: float, slice_mm: float, grid_mm: float = 1.5
) -> dict[str, float]:
    """The shape and density factors of one candidate, each in [0, 1] (see the module docstring)."""
    return {
        # A sphere curves the same in all directions (ratio 1); a vessel does not curve along its axis (0).
        # Spheres inserted into real CTs measure 0.6-0.95 at 2.5-5 mm slices, juxtapleural and irregular real
        # nodules 0.5-0.7; vessel branchings and the cut end of a vessel at the pleura 0.25-0.45.
        "shape": float(ramp(c.eigen_ratio, 0.2, 0.5)),
        # Dense tissue leaving through the shell, per own volume: a vessel continues with its own calibre on
        # both sides (about 1 or more), a branching in three or four (0.5 and more); a nodule is fed by
        # vessels far thinner than itself (0-0.4).
        "continuity": float(ramp(c.exit_ratio, 0.8, 0.3)),
        # A bump of the chest wall, mediastinum or diaphragm has mostly non-lung around it; a juxtapleural
        # nodule protrudes into the lung and has at most about half.
        "wall": float(ramp(c.wall_share, 0.65, 0.4)),
        "density": max(w * _density_factor(c, LOOKS[name], lung_hu, slice_mm) for name, w in looks.items()),
        # The LoG's peak is about 0.9 of a sphere's contrast over the window; a faint bump is noise.
        "contrast": float(ramp(c.peak.response / max(window.top_hu - lung_hu, 1.0), 0.06, 0.2)),
        # ... and about 0.9 of the candidate's own contrast (its core over the lung) if it is one compact body;
        # a loose cluster of vessels, or a dense strip at the edge of a wide blob, answers far below that.
        # Shape needs about three voxels across the blob to be measured at all: a smaller blob cannot be told
        # from a vessel's cross-section or a clump of noise, so it counts at most half.
        "resolved": 0.5 + 0.5 * float(ramp(c.diameter_mm / max(grid_mm, 1e-3), 1.5, 3.0)),
        "compact": float(
            ramp(c.peak.response / max(0.9 * (min(c.core_hu, window.top_hu) - lung_hu), 1.0), 0.25, 0.45)
        ),
    }


def nodule_candidates(ctx: RuleContext, look: Look) -> tuple[list[Candidate], IsoVolume]:
    f = ctx.features
    env = _envelope(ctx)
    iso = iso_volume(f, env, look.top_hu)
    contrast = look.top_hu - iso.lung_hu
    peaks = blob_peaks(iso, f, min_response=0.1 * contrast)
    raw = raw_iso(f, iso)
    lungs = iso_mask(f, iso, ctx.anat.lungs, "lungs")
    # Describe the strongest peaks near the named place first (the place decays, it does not clip).
    prior = soft_prior(ctx, decay_mm=_PLACE_DECAY_MM, within=env)

    def place(p) -> float:
        mm = iso.to_mm(p.index)
        w = np.clip(np.floor(mm / np.asarray(f.spacing)).astype(int), 0, np.asarray(f.shape) - 1)
        return float(prior[tuple(w)])

    # Every size class gets its share: strength is compared within a class (a large faint ground-glass
    # nodule is weaker than many vessels at small scales, but the strongest blob at its own scale).
    by_scale: dict[float, list] = {}
    for p in peaks:
        by_scale.setdefault(p.diameter_mm, []).append(p)
    quota = _MAX_DESCRIBED // max(len(by_scale), 1)
    ranked = [
        p
        for group in by_scale.values()
        for p in sorted(group, key=lambda p: -p.response * (0.1 + place(p)))[:quota]
    ]
    cands = []
    for p in ranked:
        c = describe(iso, f, p, raw, look, lungs)
        if c is not None:
            c.notes["place"] = place(p)
            cands.append(c)
    return cands, iso


def predict_nodules(ctx: RuleContext) -> RuleOutput:
    f = ctx.features
    stated = getattr(ctx.query, "texture", None)
    looks = ACCEPTED_LOOKS[stated if stated in ACCEPTED_LOOKS else None]
    # One density window per texture family: ground glass is looked for in its own, faint window.
    window = LOOKS["ground-glass"] if stated == "ground-glass" else LOOKS["solid"]
    notes: dict = {"rule": "nodule", "texture": stated, "window": window.name}
    cands, iso = nodule_candidates(ctx, window)
    slice_mm = f.ct_spacing[0]
    for c in cands:
        q = _quality(c, looks, window, iso.lung_hu, slice_mm, grid_mm=max(iso.spacing))
        q["size"] = _size_factor(ctx, c)
        c.notes.update({k: round(v, 3) for k, v in q.items()})
        c.notes["quality"] = float(np.prod(list(q.values())))
        c.score = c.notes["quality"] * c.notes["place"]
    cands = [c for c in cands if c.score > 0]
    notes["candidates"] = len(cands)
    score = np.zeros(f.shape, np.float32)
    if not cands:
        return RuleOutput(score=score, fallback=ctx.region, notes=notes)
    cands.sort(key=lambda c: -c.score)
    chosen = _choose(ctx, cands)
    mask_ct = np.zeros(f.ct_shape, bool)
    for c in chosen:
        seg = segment_at_ct(ctx, c)
        if seg is not None:
            box, crop = seg
            mask_ct[box] |= crop
    notes["chosen"] = [
        {"centre_mm": [round(float(v), 1) for v in c.centre_mm], "diameter_mm": round(c.diameter_mm, 1),
         "score": round(c.score, 3), **{k: v for k, v in c.notes.items() if k != "quality"}}
        for c in chosen
    ]  # fmt: skip
    return RuleOutput(
        score=score, fallback=ctx.region, mask_ct=mask_ct if mask_ct.any() else None, notes=notes
    )


_COUNT_WORDS = {"two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "2": 2, "3": 3, "4": 4, "5": 5, "6": 6}
_COUNT = re.compile(
    r"\b(two|three|four|five|six|[2-6](?!\s*(?:mm|cm|\.\d|x\b)))\s+(?:[a-z0-9.-]+\s+){0,3}?"
    r"(?:nodules|masses|lesions|opacities)\b"
)


def _stated_count(text: str) -> int | None:
    """A count stated before the plural noun ("two nodules", "3 small pulmonary nodules"), else None."""
    m = _COUNT.search(text)
    return _COUNT_WORDS[m.group(1)] if m else None


def _choose(ctx: RuleContext, cands: list[Candidate]) -> list[Candidate]:
    """The best candidate; for plural sentences also every other one that is convincing on its own and not
    much weaker than the best, up to the count the sentence implies; overlapping candidates count once."""
    best = cands[0]
    chosen = [best]
    n_want = _stated_count(ctx.text) or _N_WANTED.get(ctx.query.multiplicity, 1)
    if n_want == 1:
        return chosen
    for c in cands[1:]:
        if len(chosen) >= n_want:
            break
        if c.notes["quality"] < _MIN_QUALITY_EXTRA or c.score < _EXTRA_FRACTION * best.score:
            continue
        if any(
            np.linalg.norm(c.centre_mm - o.centre_mm) < 0.5 * (c.diameter_mm + o.diameter_mm) for o in chosen
        ):
            continue
        chosen.append(c)
    return chosen


def segment_at_ct(ctx: RuleContext, c: Candidate):
    """The candidate at the CT's resolution: voxels above its half-contrast contour, connected to its centre,
    within 0.8 of its equivalent diameter from the centre (so a vessel touching it is cut at its surface),
    with vessels thinner than about a third of it trimmed off, holes filled, inside the lung envelope."""
    f = ctx.features
    sp = np.asarray(f.ct_spacing)
    centre = c.centre_mm / sp - 0.5  # CT voxel coordinates (extent coordinates are grid-independent)
    radius = max(0.8 * c.diameter_mm, 0.5 * c.peak.diameter_mm * 1.3, 2.0 * float(sp[1:].max()))
    half = np.ceil(radius / sp).astype(int) + 1
    lo = np.maximum(np.rint(centre).astype(int) - half, 0)
    hi = np.minimum(np.rint(centre).astype(int) + half + 1, f.ct_shape)
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    hu = f.ct_crop(box)
    grids = np.ogrid[box]
    d2 = sum(((g - cc) * s) ** 2 for g, cc, s in zip(grids, centre, sp, strict=True))
    ball = d2 <= radius**2
    env = _envelope(ctx)
    inside_env = work_to_ct_crop(f, dilate_mm(env, f.inplane, f.spacing), box)
    solid = (hu > c.contour_hu) & ball & inside_env
    if not solid.any():
        return None
    labels, _ = ndimage.label(solid, structure=_STRUCT26)
    nearest = np.unravel_index(np.argmin(np.where(solid, d2, np.inf)), solid.shape)
    comp = labels == labels[nearest]
    if c.diameter_mm >= 6.0:
        trimmed = ball_opening(comp, min(1.5, c.diameter_mm / 6.0), tuple(sp))
        labels, _ = ndimage.label(trimmed, structure=_STRUCT26)
        if labels.max():
            near = np.unravel_index(np.argmin(np.where(trimmed, d2, np.inf)), trimmed.shape)
            comp = labels == labels[near]
    comp = ndimage.binary_fill_holes(comp)
    if comp.sum() < _MIN_VOXELS:  # too small to survive the official filter: the voxels nearest the centre
        order = np.argsort(np.where(ball, d2, np.inf), axis=None)[:_MIN_VOXELS]
        comp = np.zeros(ball.shape, bool)
        comp.flat[order] = True
    return box, comp


def predict(ctx: RuleContext) -> RuleOutput:
    """Category 2d."""
    if is_mass(ctx):
        out = predict_mass(ctx)
        if out.mask_ct is not None or out.score.any():
            return out
    return predict_nodules(ctx)


__all__ = ["predict", "predict_mass", "predict_nodules"]
