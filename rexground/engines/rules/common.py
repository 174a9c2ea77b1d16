"""What every zero-shot rule shares: the per-CT feature cache, the rule's input and output, and helpers.

Rules work on the anatomy's working grid (about 1.5 mm) and may refine at the CT's full resolution inside
a candidate's bounding box. The working grid tiles the CT's extent exactly, so CT voxel ``i`` lies in
working voxel ``floor((i + 0.5) * n_work / n_ct)`` on every axis (``rexground.anatomy.grid``); this module
uses that same map for crops, so a refined mask and the working-grid mask agree on where things are.

Density thresholds are physical (HU) and scale parameters are in millimetres, never in voxels, so a rule
behaves the same at 0.6 mm and at 1.5 mm, and on 8 mm slices.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from rexground.text.query import FindingQuery

# Physical densities (HU) that the rules share. Soft tissue and fluid sit near 0-60 HU, ground glass
# between aerated lung (about -850) and soft tissue, emphysema below -950 (the LAA-950 convention).
HU_DENSE = -400.0  # half way between aerated lung (-850) and soft tissue (+40): the contour of a solid lesion
HU_GGO_LOW = -750.0
HU_GGO_HIGH = -300.0
HU_EMPHYSEMA = -950.0
_ROI_MARGIN_MM = 15.0
# Soft tissue for density averages: fat (-100) to unenhanced organs and muscle, neither air (lung) nor bone.
# Voxels below -150 HU are mostly lung partial volume (fat is -100 +- noise), above 200 HU bone or contrast-filled vessels.
TISSUE_HU = (-150.0, 200.0)


@dataclass
class RuleOutput:
    """What a rule returns. ``score`` is on the working grid, in [0, 1]; ``mask_ct``, when set, is a
    refined bool mask on the CT grid that replaces ``score >= threshold``. ``fallback`` is the working-grid
    region used when nothing survives postprocessing (the most likely place of the finding)."""

    score: np.ndarray
    fallback: np.ndarray
    threshold: float = 0.5
    mask_ct: np.ndarray | None = None
    notes: dict = field(default_factory=dict)


class Features:
    """Per-CT computations shared by all findings and rules of one scan (computed lazily, cached)."""

    def __init__(self, anat, ct_hu: np.ndarray, ct_spacing: tuple[float, float, float]):
        self.anat = anat
        self.hu = np.asarray(anat.hu, dtype=np.float32)
        self.spacing = tuple(float(s) for s in anat.spacing_zyx)
        self.shape = self.hu.shape
        # In-plane working spacing: the step for "one voxel more" margins. Never the slice spacing, which
        # can be 5-8 mm and would add whole slices above and below a lesion.
        self.inplane = float(max(self.spacing[1:]))
        self.ct_hu = ct_hu  # canonical CT grid, as stored (int16 usually); clipped on use
        self.ct_shape = tuple(ct_hu.shape)
        self.ct_spacing = tuple(float(s) for s in ct_spacing)
        self._cache: dict = {}
        # Heavy filters and distance maps run only inside the chest (the pleural envelope's box plus a
        # margin): the rules never look elsewhere, and it halves the work on a typical field of view.
        chest = getattr(anat, "pleural_envelope", None)
        if chest is None or not np.asarray(chest).any():
            chest = anat.lung_envelope
        margin = [int(np.ceil(_ROI_MARGIN_MM / s)) for s in self.spacing]
        self.roi = bbox_slices(np.asarray(chest, bool), pad=tuple(margin))  # type: ignore[arg-type]
        if self.roi[0].stop <= self.roi[0].start:
            self.roi = tuple(slice(0, n) for n in self.shape)

    # -- density --------------------------------------------------------------------------------
    def smooth(self, sigma_mm: float) -> np.ndarray:
        key = ("smooth", round(sigma_mm, 3))
        if key not in self._cache:
            sig = [sigma_mm / s for s in self.spacing]
            out = self.hu.copy()
            out[self.roi] = ndimage.gaussian_filter(self.hu[self.roi], sig, mode="nearest", truncate=3.0)
            self._cache[key] = out
        return self._cache[key]

    def noise_hu(self) -> float:
        """The image noise (HU, one standard deviation on the working grid), measured where the body is
        homogeneous: the median local standard deviation (7.5 mm windows in-plane) over muscle and organs
        outside the lungs (local mean 0-80 HU). Scanners, doses and kernels differ by a factor of five in
        noise; rules that separate densities 30-40 HU apart (fluid from muscle) must know it."""
        key = ("noise",)
        if key not in self._cache:
            sub = self.hu[self.roi]
            m, sd = local_mean_sd_inplane(sub, 7.5, self.spacing)
            body = (
                np.asarray(self.anat.body, bool)[self.roi]
                & ~np.asarray(self.anat.lung_envelope, bool)[self.roi]
            )
            where = body & (m > 0.0) & (m < 80.0) & (np.abs(sub - m) < 150.0)
            vals = sd[where]
            self._cache[key] = float(np.clip(np.median(vals), 3.0, 80.0)) if vals.size > 1000 else 20.0
        return self._cache[key]

    def tissue_mean_std(self, sigma_mm: float) -> tuple[np.ndarray, np.ndarray]:
        """Gaussian-weighted local mean and standard deviation of HU over soft-tissue voxels only
        (``TISSUE_HU``: neither air nor bone), so a fluid layer against the lung or a rib keeps its own density
        instead of being averaged with them (normalised convolution). Outside the chest box: the HU, 0."""
        key = ("tissue", round(sigma_mm, 3))
        if key not in self._cache:
            sub = self.hu[self.roi]
            w = ((sub > TISSUE_HU[0]) & (sub < TISSUE_HU[1])).astype(np.float32)
            sig = [sigma_mm / s for s in self.spacing]
            gw = ndimage.gaussian_filter(w, sig, mode="nearest", truncate=3.0)
            g1 = ndimage.gaussian_filter(sub * w, sig, mode="nearest", truncate=3.0)
            g2 = ndimage.gaussian_filter(sub * sub * w, sig, mode="nearest", truncate=3.0)
            ok = gw > 0.05
            mean_s = np.where(ok, g1 / np.maximum(gw, 1e-6), sub)
            std_s = np.where(ok, np.sqrt(np.maximum(g2 / np.maximum(gw, 1e-6) - mean_s * mean_s, 0.0)), 0.0)
            mean = self.hu.copy()
            std = np.zeros(self.shape, np.float32)
            mean[self.roi] = mean_s
            std[self.roi] = std_s
            self._cache[key] = (mean, std)
        return self._cache[key]

    def ct_crop(self, slices: tuple[slice, slice, slice]) -> np.ndarray:
        """Clipped float32 HU of a CT-grid crop."""
        return np.clip(self.ct_hu[slices].astype(np.float32), -1024.0, 3071.0)

    # -- geometry -------------------------------------------------------------------------------
    def side_mask(self, side: str) -> np.ndarray:
        """Half-space of one side of the patient (per axial slice, split at the mid-line between the lungs),
        so pleural and chest-wall findings, which lie outside the lungs, can still be given a side."""
        if side not in ("left", "right"):
            return np.ones(self.shape, dtype=bool)
        key = ("side", side)
        if key not in self._cache:
            right, left = np.asarray(self.anat.lung_right, bool), np.asarray(self.anat.lung_left, bool)
            nx = self.shape[2]
            x = np.arange(nx)
            r_any, l_any = right.any(axis=1), left.any(axis=1)  # (z, x)
            r_med = np.where(r_any, x[None, :], -1).max(axis=1)  # medial edge of the right lung (low x)
            l_med = np.where(l_any, x[None, :], nx).min(axis=1)
            both = (r_med >= 0) & (l_med < nx)
            mid = np.full(self.shape[0], nx / 2.0)
            if both.any():
                mids = (r_med + l_med) / 2.0
                mid[:] = np.median(mids[both])
                mid[both] = mids[both]
            xx = x[None, None, :]
            halves = {"right": xx < mid[:, None, None], "left": xx >= mid[:, None, None]}
            self._cache[("side", "right")] = np.broadcast_to(halves["right"], self.shape).copy()
            self._cache[("side", "left")] = np.broadcast_to(halves["left"], self.shape).copy()
        return self._cache[key]

    def distance_mm(self, mask: np.ndarray, key: str | None = None) -> np.ndarray:
        """Distance in mm from every voxel to the nearest voxel of ``mask`` (0 inside it)."""
        if key is not None and ("dist", key) in self._cache:
            return self._cache[("dist", key)]
        mask = np.asarray(mask, bool)
        d = np.full(self.shape, np.inf, dtype=np.float32)
        sub = mask[self.roi]
        if sub.any():
            d[self.roi] = ndimage.distance_transform_edt(~sub, sampling=self.spacing)
        if key is not None:
            self._cache[("dist", key)] = d
        return d

    def depth_mm(self, mask: np.ndarray, key: str | None = None) -> np.ndarray:
        """Distance in mm from voxels of ``mask`` to its outside (0 outside)."""
        if key is not None and ("depth", key) in self._cache:
            return self._cache[("depth", key)]
        d = np.zeros(self.shape, dtype=np.float32)
        d[self.roi] = ndimage.distance_transform_edt(np.asarray(mask, bool)[self.roi], sampling=self.spacing)
        if key is not None:
            self._cache[("depth", key)] = d
        return d

    # -- shape ----------------------------------------------------------------------------------
    def hessian_eigenvalues(self, sigma_mm: float, where: np.ndarray) -> np.ndarray:
        """Eigenvalues (ascending, (N, 3)) of the scale-normalised Hessian of HU at the voxels of ``where``.

        A bright blob has three strongly negative eigenvalues, a bright tube two, a bright plate one; that
        is how rules tell nodules from vessels from fissures without any training."""
        where = np.asarray(where, bool)
        if not where.any():
            return np.zeros((0, 3), np.float32)
        box = bbox_slices(where, pad=int(np.ceil(4 * sigma_mm / min(self.spacing))) + 1)
        sub = self.hu[box]
        sig = [sigma_mm / s for s in self.spacing]
        inside = where[box]
        comps = {}
        for a in range(3):
            for b in range(a, 3):
                order = [0, 0, 0]
                order[a] += 1
                order[b] += 1
                d = ndimage.gaussian_filter(sub, sig, order=order, mode="nearest", truncate=3.0)
                comps[(a, b)] = d[inside] * (sigma_mm**2) / (self.spacing[a] * self.spacing[b])
        n = int(inside.sum())
        h = np.empty((n, 3, 3), np.float32)
        for (a, b), v in comps.items():
            h[:, a, b] = v
            h[:, b, a] = v
        return np.linalg.eigvalsh(h).astype(np.float32)


@dataclass
class RuleContext:
    """One finding in one scan: the parsed query, the named place, and the scan's shared features."""

    query: FindingQuery
    features: Features
    region: np.ndarray  # working-grid bool: the place the sentence names (the whole lungs when it names none)
    region_is_named: bool  # whether the sentence named a side, lobe or zone at all

    @property
    def anat(self):
        return self.features.anat

    @property
    def text(self) -> str:
        return self.query.text.lower()


# ---------------------------------------------------------------------------------------------------
def bbox_slices(mask: np.ndarray, pad: int | tuple[int, int, int] = 0) -> tuple[slice, slice, slice]:
    """Bounding box of the non-zero voxels, padded and clipped to the array."""
    pads = (pad, pad, pad) if isinstance(pad, int) else pad
    out = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        idx = np.flatnonzero(np.asarray(mask).any(axis=other))
        if idx.size == 0:
            return (slice(0, 0), slice(0, 0), slice(0, 0))
        out.append(slice(max(0, idx[0] - pads[axis]), min(mask.shape[axis], idx[-1] + 1 + pads[axis])))
    return tuple(out)  # type: ignore[return-value]


def ball_opening(mask: np.ndarray, radius_mm: float, spacing) -> np.ndarray:
    """Morphological opening by a ball of ``radius_mm`` (exact in mm on anisotropic grids, via distance
    transforms): keeps what a ball of that size fits into, removes thinner things such as vessels."""
    mask = np.asarray(mask, bool)
    if radius_mm <= 0 or not mask.any():
        return mask.copy()
    box = bbox_slices(mask, pad=int(np.ceil(radius_mm / min(spacing))) + 2)
    sub = mask[box]
    eroded = ndimage.distance_transform_edt(sub, sampling=spacing) > radius_mm
    out = np.zeros_like(mask)
    if eroded.any():
        out[box] = ndimage.distance_transform_edt(~eroded, sampling=spacing) <= radius_mm
    return out & mask


def dilate_mm(mask: np.ndarray, radius_mm: float, spacing) -> np.ndarray:
    mask = np.asarray(mask, bool)
    if radius_mm <= 0 or not mask.any():
        return mask.copy()
    box = bbox_slices(mask, pad=int(np.ceil(radius_mm / min(spacing))) + 1)
    out = np.zeros_like(mask)
    out[box] = ndimage.distance_transform_edt(~mask[box], sampling=spacing) <= radius_mm
    return out


def soft_prior(
    ctx: RuleContext,
    decay_mm: float = 15.0,
    within: np.ndarray | None = None,
    region: np.ndarray | None = None,
) -> np.ndarray:
    """1 inside the named region (``ctx.region`` unless given), decaying as exp(-d / decay) outside it:
    findings cross lobe borders and the lobe model is approximate, so the place is a strong preference,
    not a wall."""
    f = ctx.features
    region = ctx.region if region is None else np.asarray(region, bool)
    if not region.any():
        prior = np.ones(f.shape, np.float32)
    else:
        d = f.distance_mm(region)
        prior = np.exp(-d / decay_mm).astype(np.float32)
    if within is not None:
        prior *= np.asarray(within, bool)
    return prior


def ramp(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """0 below ``lo``, 1 above ``hi``, linear in between (``lo > hi`` gives a falling ramp)."""
    return np.clip((np.asarray(x, np.float32) - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def band(x: np.ndarray, lo: float, hi: float, soft: float) -> np.ndarray:
    """1 inside [lo, hi], falling linearly to 0 over ``soft`` on both sides."""
    x = np.asarray(x, np.float32)
    return np.minimum(ramp(x, lo - soft, lo), ramp(x, hi + soft, hi))


def local_mean_sd_inplane(image: np.ndarray, window_mm: float, spacing) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of ``image`` over in-plane square windows about ``window_mm`` wide (odd,
    at least 3 voxels; one slice thick, so thick slices do not mix tissues across z)."""
    size = (1, *(max(3, round(window_mm / s) | 1) for s in spacing[1:]))
    m = ndimage.uniform_filter(image, size, mode="nearest")
    m2 = ndimage.uniform_filter(image * image, size, mode="nearest")
    return m, np.sqrt(np.maximum(m2 - m * m, 0.0))


def noise_matched_sigma_mm(
    noise_hu: float, target_noise_hu: float, spacing, sigma_range_mm: tuple[float, float]
) -> float:
    """The narrowest Gaussian width (mm, in 0.25 mm steps within ``sigma_range_mm``) whose average leaves
    ``target_noise_hu`` of an image noise of ``noise_hu``: a 3D Gaussian averages about
    prod(max(1, 2 sqrt(pi) sigma / spacing)) independent voxels, and noise falls with the square root of
    their number. The widest width when none is enough."""
    need = (noise_hu / target_noise_hu) ** 2
    for sigma in np.arange(sigma_range_mm[0], sigma_range_mm[1] + 1e-6, 0.25):
        n_eff = float(np.prod([max(1.0, 2.0 * np.sqrt(np.pi) * sigma / s) for s in spacing]))
        if n_eff >= need:
            return float(sigma)
    return float(sigma_range_mm[1])


def keep_components(mask: np.ndarray, min_voxels: int) -> np.ndarray:
    lab, n = ndimage.label(mask, structure=ndimage.generate_binary_structure(3, 2))
    if n == 0:
        return np.zeros(mask.shape, bool)
    sizes = np.bincount(lab.ravel())
    keep = sizes >= min_voxels
    keep[0] = False
    return keep[lab]


def work_index_maps(f: Features, box_ct: tuple[slice, slice, slice]) -> list[np.ndarray]:
    """For a CT-grid crop, the working-grid index of every CT index on each axis."""
    maps = []
    for axis, sl in enumerate(box_ct):
        n_ct, n_w = f.ct_shape[axis], f.shape[axis]
        idx = ((np.arange(sl.start, sl.stop, dtype=np.float64) + 0.5) * n_w / n_ct).astype(np.int64)
        maps.append(np.clip(idx, 0, n_w - 1))
    return maps


def work_to_ct_crop(f: Features, arr_work: np.ndarray, box_ct: tuple[slice, slice, slice]) -> np.ndarray:
    """Nearest-neighbour values of a working-grid array on a CT-grid crop."""
    iz, iy, ix = work_index_maps(f, box_ct)
    return arr_work[np.ix_(iz, iy, ix)]


def ct_box_of(f: Features, mask_work: np.ndarray, pad_mm: float = 0.0) -> tuple[slice, slice, slice]:
    """CT-grid bounding box of a working-grid mask, padded by ``pad_mm``."""
    wb = bbox_slices(mask_work)
    out = []
    for axis, sl in enumerate(wb):
        n_ct, n_w = f.ct_shape[axis], f.shape[axis]
        pad = int(np.ceil(pad_mm / f.ct_spacing[axis]))
        lo = int(np.floor(sl.start * n_ct / n_w)) - pad
        hi = int(np.ceil(sl.stop * n_ct / n_w)) + pad
        out.append(slice(max(0, lo), min(n_ct, hi)))
    return tuple(out)  # type: ignore[return-value]
