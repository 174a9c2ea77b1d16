"""2e pleural effusion / thickening and 2g pneumothorax: outside the lungs, inside the pleural envelope.

These are never clipped to the lung mask (they lie between the lung and the chest wall). The side is
given by a half-space split at the mid-line between the lungs, since a pleural finding is not in either
lung mask.

* Effusion: water density, read noise-aware on soft tissue only, where the neighbourhood is homogeneous;
  behind the lung (free fluid is dependent in a supine patient), inside the rib ring, joined to the lung by a
  line of fluid; one main collection per side, continued by the thin layer against the lung (see
  ``predict_effusion`` and the constants for each reason). Nothing found: the dependent costophrenic recess.
* Thickening / plaques: soft-tissue or calcified density within 6 mm of the lung surface, outside it.
* Pneumothorax: pure air (below -960 HU smoothed, i.e. no lung markings) in the pleural envelope, in
  pockets that reach the lung's outer surface; emphysema inside the lung is not at its surface as a sheet.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from rexground.anatomy import morphology as mm
from rexground.engines.rules.common import (
    RuleContext,
    RuleOutput,
    band,
    bbox_slices,
    dilate_mm,
    keep_components,
    noise_matched_sigma_mm,
    ramp,
)

# Simple pleural fluid (transudate, most exudates) is water-like: 0-20 HU, up to ~30 HU. Unenhanced muscle,
# liver, spleen and blood are 40-65 HU and fat about -100 HU, so the band ends where muscle begins.
HU_FLUID_LOW, HU_FLUID_HIGH = -20.0, 25.0
_FLUID_SOFT_HU = 12.0
# Fluid and muscle are 30-40 HU apart: the density is read on an average of enough voxels that the noise
# left on it is a fraction of that gap (one standard deviation = 6 HU), whatever the scanner's noise.
_TARGET_NOISE_HU = 6.0
_SIGMA_RANGE_MM = (1.0, 4.0)
# A voxel whose neighbourhood spreads more than a 50 HU step beyond its noise is an interface (fat against
# muscle reads as water on average), not a collection of fluid.
_INTERFACE_STEP_HU = (25.0, 50.0)
_LUNG_CONTACT_MM = 3.0  # a collection lies against the lung: within about two working voxels of it
# The lung-side rim of a collection is partial volume between lung and fluid: its voxels read between the two.
_RIM_HU = (-500.0, 40.0)
_RIM_GROW_MM = 3.0  # experts draw a collection's visible edge: the rim's partial-volume voxels belong to it
_MIN_EFFUSION_ML = 2.0  # below this a "collection" is noise or a recess of partial volume
# Free fluid in one pleural cavity is one body of fluid: pieces smaller than this fraction of the largest on
# the same side are look-alikes (fat and muscle averaging to water, a fluid-filled structure).
_SECONDARY_FRACTION = 0.25
_BONE_HU = 180.0  # cortical and trabecular bone of ribs and vertebrae are above this; no soft tissue is
# Neighbouring ribs' edges are 10-16 mm apart: from any voxel of the chest wall a rib lies within 10 mm along
# z; in-plane 3 mm allows for the wall's slope (chest_wall).
_RIB_WINDOW_MM = (10.0, 3.0, 3.0)
# A line of fluid to the lung may pass anything of roughly water density (noise and partial volume make holes
# in the strict fluid map): from half way to fat (-60 HU) to just below muscle (40 HU).
_PASS_HU = (-60.0, 40.0)
# A layer thinner than the density average (2-4 mm against the lung) continues a collection found beside it:
# single voxels of water density (-80..35 HU, their noise allowed for) within 5 mm of the lung, reached along
# the lung's surface up to 9 mm from the found collection.
_LAYER_HU = (-80.0, 35.0)
_LAYER_MM = 5.0
_LAYER_REACH_MM = 9.0
_FILL_MM = 3.0  # holes the noise leaves inside a collection are up to a few mm across
_PLEURAL_REACH_MM = 60.0  # the ribs of a hemithorax full of fluid are still within this of the lung
_THICKENING_WORDS = ("thicken", "plaque", "pleural-based", "pleural based", "nodular pleura")
# When nothing is found the answer is the most dependent costophrenic recess, where a trace of fluid
# collects first in a supine patient: the pleural space within this radius of the lung's lowest back point.
_RECESS_RADIUS_MM = 10.0


def _touching(mask: np.ndarray, contact: np.ndarray) -> np.ndarray:
    """The components of ``mask`` that reach ``contact`` (pleural collections lie against the lung)."""
    lab, n = ndimage.label(mask, structure=ndimage.generate_binary_structure(3, 2))
    if n == 0:
        return mask
    keep = np.zeros(n + 1, bool)
    hit = np.unique(lab[contact & mask])
    keep[hit[hit > 0]] = True
    return keep[lab]


def _pleural_space(ctx: RuleContext, side: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(the pleural envelope on the named side, outside the mediastinum, the aerated lungs)."""
    f = ctx.features
    anat = ctx.anat
    lungs = np.asarray(anat.lungs, bool)
    env = getattr(anat, "pleural_envelope", None)
    if env is None:
        env = dilate_mm(np.asarray(anat.lung_envelope, bool), 25.0, f.spacing) & np.asarray(anat.body, bool)
    env = np.asarray(env, bool) & f.side_mask(ctx.query.side if side is None else side)
    medi = getattr(anat, "mediastinum", None)
    if medi is not None:
        env = env & ~np.asarray(medi, bool)
    return env, lungs


def _side_region(ctx: RuleContext, space: np.ndarray) -> np.ndarray:
    """The pleural space of the named side (or of both), outside the aerated lung."""
    return space & ~np.asarray(ctx.anat.lungs, bool)


def smoothing_sigma_mm(f) -> float:
    """The Gaussian width (mm) whose average leaves ``_TARGET_NOISE_HU`` of this scan's soft-tissue noise."""
    return noise_matched_sigma_mm(f.noise_hu(), _TARGET_NOISE_HU, f.spacing, _SIGMA_RANGE_MM)


def fluid_likelihood(ctx: RuleContext) -> np.ndarray:
    """Water density, read noise-aware on soft tissue only, where the neighbourhood is homogeneous."""
    f = ctx.features
    mean, std = f.tissue_mean_std(smoothing_sigma_mm(f))
    noise = f.noise_hu()
    lo, hi = (float(np.hypot(noise, step)) for step in _INTERFACE_STEP_HU)
    return band(mean, HU_FLUID_LOW, HU_FLUID_HIGH, soft=_FLUID_SOFT_HU) * ramp(std, hi, lo)


def chest_wall(ctx: RuleContext) -> np.ndarray:
    """Voxels at or beyond the inner surface of the rib cage: no closer to the lung than the nearest bone
    within ``_RIB_WINDOW_MM`` (in every direction) is. The parietal pleura lines the inner surface of the ribs
    and spine; the intercostal muscle between two ribs lies at the ribs' depth even where its own slice shows
    no bone, and the paraspinal and subscapular muscles lie deeper still. Where no bone is that near (the
    costal cartilages in front), nothing is excluded."""
    f = ctx.features
    key = ("chest-wall",)
    if key not in f._cache:
        lungs = np.asarray(ctx.anat.lungs, bool)
        d_lung = f.distance_mm(lungs, key="lungs-out")
        bone = (f.hu > _BONE_HU) & np.asarray(ctx.anat.body, bool)
        depth_of_bone = np.where(bone, d_lung, np.inf).astype(np.float32)
        size = [max(1, round(2.0 * w / s) | 1) for w, s in zip(_RIB_WINDOW_MM, f.spacing, strict=True)]
        ring = ndimage.minimum_filter(depth_of_bone, size=size, mode="nearest")
        f._cache[key] = (d_lung >= ring) & ~lungs
    return f._cache[key]


def _above_aerated_lung(lungs: np.ndarray, shape) -> np.ndarray:
    """Voxels with aerated lung behind them (posterior, in the same axial row): free fluid cannot rest on top
    of air-filled lung, which floats on it; in a supine patient fluid lies behind (dependent to) the lung.
    Fluid-density tissue in front of the lung (the heart border, pericardial fat and fluid, a collapsed
    lingula) is therefore not a free pleural effusion."""
    return np.flip(np.maximum.accumulate(np.flip(lungs, axis=1), axis=1), axis=1) & ~lungs


def _cut_off_from_lung(
    ctx: RuleContext, cand: np.ndarray, lungs: np.ndarray, passable: np.ndarray
) -> np.ndarray:
    """Candidate voxels whose straight line to the nearest aerated lung leaves ``passable`` (fluid, or the
    partial-volume rim against the lung) or crosses bone. An effusion is one body of fluid against the lung,
    so from any of its voxels the way to the lung is fluid. The parietal pleura lines the inner surface of the
    ribs and spine, so tissue behind a rib or a vertebra is chest wall; and fluid-looking tissue behind an
    interface (the extrapleural fat line, the edge of a muscle) is not the same collection."""
    f = ctx.features
    out = np.zeros(f.shape, bool)
    if not cand.any() or not lungs.any():
        return out
    box = bbox_slices(cand | lungs, pad=2)
    bone = ndimage.binary_dilation(f.hu[box] > _BONE_HU)  # one voxel more: a thin cortex stays a barrier
    barrier = bone | ~passable[box]
    _, idx = ndimage.distance_transform_edt(~lungs[box], sampling=f.spacing, return_indices=True)
    pts = np.argwhere(cand[box])
    target = idx[:, pts[:, 0], pts[:, 1], pts[:, 2]].T
    crossed = np.zeros(len(pts), bool)
    for t in np.linspace(0.1, 0.9, 9):
        q = np.rint(pts + t * (target - pts)).astype(np.int64)
        hit = barrier[q[:, 0], q[:, 1], q[:, 2]] & ~lungs[box][q[:, 0], q[:, 1], q[:, 2]]
        crossed |= hit
    sub = np.zeros(cand[box].shape, bool)
    sub[tuple(pts[crossed].T)] = True
    out[box] = sub
    return out


def _main_collections(ctx: RuleContext, found: np.ndarray) -> np.ndarray:
    """Per side, the largest collection and those at least ``_SECONDARY_FRACTION`` of it: free fluid in one
    pleural cavity is one body of fluid; pieces far smaller than it elsewhere in the chest are look-alikes
    (fat and muscle averaging to water density, a fluid-filled structure), not a second effusion."""
    f = ctx.features
    lab, n = ndimage.label(found, structure=ndimage.generate_binary_structure(3, 2))
    if n <= 1:
        return found
    sizes = np.bincount(lab.ravel(), minlength=n + 1).astype(np.float64)
    keep = np.zeros(n + 1, bool)
    for side in ("right", "left"):
        on_side = np.bincount(lab[f.side_mask(side)].ravel(), minlength=n + 1).astype(np.float64)
        mine = (on_side >= 0.5 * sizes) & (np.arange(n + 1) > 0)
        if mine.any():
            biggest = sizes[mine].max()
            keep |= mine & (sizes >= _SECONDARY_FRACTION * biggest)
    return keep[lab]


def costophrenic_recess(ctx: RuleContext, space: np.ndarray) -> np.ndarray:
    """A few mL of pleural space at the most dependent point of each named lung's base (see above)."""
    f = ctx.features
    anat = ctx.anat
    side = ctx.query.side
    sides = ("right", "left") if side not in ("right", "left") else (side,)
    out = np.zeros(f.shape, bool)
    for s in sides:
        lung = np.asarray(anat.lung_right if s == "right" else anat.lung_left, bool)
        zs = np.flatnonzero(lung.any(axis=(1, 2)))
        if zs.size == 0:
            continue
        low = lung.copy()
        low[zs[0] + max(1, int(0.15 * (zs[-1] - zs[0] + 1))) :] = False  # the lowest 15% of the lung
        pts = np.argwhere(low)
        p = pts[np.argmax(pts[:, 1])]  # its most posterior (dependent, the patient lies supine) voxel
        grids = np.ogrid[tuple(slice(0, n) for n in f.shape)]
        d2 = sum(((g - c) * sp) ** 2 for g, c, sp in zip(grids, p, f.spacing, strict=True))
        ball = (d2 <= _RECESS_RADIUS_MM**2) & ~np.asarray(anat.lungs, bool) & f.side_mask(s)
        out |= ball & space if (ball & space).any() else ball & np.asarray(anat.body, bool)
    return out if out.any() else space & ~np.asarray(anat.lungs, bool)


def predict_effusion(ctx: RuleContext) -> RuleOutput:
    f = ctx.features
    space, lungs = _pleural_space(ctx)
    outside = space & ~lungs
    notes: dict = {}
    if any(w in ctx.text for w in _THICKENING_WORDS) and "effusion" not in ctx.text:
        near = f.distance_mm(lungs, key="lungs-out") <= 6.0
        like = ramp(f.smooth(1.0), -300.0, -100.0) * (near & outside)
        found = keep_components(like >= 0.5, max(3, int(np.ceil(100.0 / float(np.prod(f.spacing))))))
        found = _touching(found, f.distance_mm(lungs, key="lungs-out") <= 2.0 * f.inplane)
        score = np.where(found, np.maximum(like, 0.5), np.minimum(like, 0.49)).astype(np.float32)
        return RuleOutput(
            score=score, fallback=_side_region(ctx, space), notes={"rule": "pleural_thickening"}
        )
    like = fluid_likelihood(ctx) * outside
    fluid = like >= 0.5
    # Contact: within a couple of mm of the lung, and never less than the next voxel (coarse grids).
    near_lung = f.distance_mm(lungs, key="lungs-out") <= max(_LUNG_CONTACT_MM, 1.1 * f.inplane)
    rim = (f.hu > _RIM_HU[0]) & (f.hu < _RIM_HU[1]) & near_lung & outside
    wall = chest_wall(ctx)
    in_front_of_lung = _above_aerated_lung(lungs, f.shape)
    fluid &= ~in_front_of_lung & ~wall
    mean, _ = f.tissue_mean_std(smoothing_sigma_mm(f))
    # What a line of fluid may pass: anything of roughly water density (noise and partial volume make holes
    # in the strict fluid map); fat (-100 HU), muscle and bone are barriers.
    passable = ((mean > _PASS_HU[0]) & (mean < _PASS_HU[1])) | rim | fluid
    fluid &= ~_cut_off_from_lung(ctx, fluid, lungs, passable)
    min_vox = max(3, int(np.ceil(_MIN_EFFUSION_ML * 1000.0 / float(np.prod(f.spacing)))))
    found = _main_collections(ctx, keep_components(_touching(fluid, near_lung), min_vox))
    if found.any():
        # Holes the noise left inside the collection are fluid too (a closing as wide as the smoothing), and the
        # partial-volume rim towards the lung belongs to it (experts draw its visible edge).
        found = mm.close(found, _FILL_MM, f.spacing) & outside & ~wall
        if _LAYER_REACH_MM > 0:
            # A thin layer against the lung is too thin for the averaged density: single voxels of water
            # density within a few mm of the lung continue the collection along the lung's surface.
            layer = (
                outside
                & ~wall
                & (f.hu > _LAYER_HU[0])
                & (f.hu < _LAYER_HU[1])
                & (f.distance_mm(lungs, key="lungs-out") <= _LAYER_MM)
                & ~in_front_of_lung
            )
            steps = max(1, round(_LAYER_REACH_MM / f.inplane))
            found = ndimage.binary_dilation(found, iterations=steps, mask=layer | found)
        found |= dilate_mm(found, max(_RIM_GROW_MM, 1.1 * f.inplane), f.spacing) & rim
    notes.update(
        rule="pleural_effusion", noise_hu=round(f.noise_hu(), 1), sigma_mm=smoothing_sigma_mm(f),
        volume_ml=round(float(found.sum() * np.prod(f.spacing) / 1000.0), 1),
    )  # fmt: skip
    score = np.where(found, np.maximum(like, 0.5), np.minimum(like, 0.49)).astype(np.float32)
    return RuleOutput(score=score, fallback=costophrenic_recess(ctx, space), notes=notes)


def predict_pneumothorax(ctx: RuleContext) -> RuleOutput:
    f = ctx.features
    space, lungs = _pleural_space(ctx)
    anat = ctx.anat
    air = (f.smooth(1.5) < -960.0) & (space | lungs) & f.side_mask(ctx.query.side)
    if getattr(anat, "airways", None) is not None:
        air &= ~dilate_mm(np.asarray(anat.airways, bool), 3.0, f.spacing)
    # Pockets that reach the outer surface of the pleural space (the chest wall side).
    outer = f.depth_mm(space | lungs, key="pleural-or-lungs") <= max(6.0, 2.0 * f.inplane)
    min_vox = max(3, int(np.ceil(2000.0 / float(np.prod(f.spacing)))))
    pockets = keep_components(air, min_vox)
    lab, n = ndimage.label(pockets)
    if n:
        touching = np.unique(lab[outer & pockets])
        keep = np.zeros(n + 1, bool)
        keep[touching[touching > 0]] = True
        pockets = keep[lab]
    score = np.where(pockets, 1.0, 0.4 * air).astype(np.float32)
    # Fallback: the non-dependent (anterior) third of the pleural space, where free air rises.
    ys = np.flatnonzero(space.any(axis=(0, 2)))
    fallback = space.copy()
    if ys.size:
        cut = ys[0] + (ys[-1] - ys[0]) // 3
        fallback[:, cut:, :] = False
        fallback &= f.distance_mm(~(space | lungs), key="outside-pleural") <= 10.0
    return RuleOutput(score=score, fallback=fallback, notes={"rule": "pneumothorax"})


def predict(ctx: RuleContext) -> RuleOutput:
    if ctx.query.category == "2g" or "pneumothora" in ctx.text:
        return predict_pneumothorax(ctx)
    return predict_effusion(ctx)
