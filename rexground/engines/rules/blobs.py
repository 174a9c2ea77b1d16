"""Nodule candidates: blob detection on a near-isotropic resampling of the lungs, and per-candidate shape facts.

Used by the 2d nodule rule (:mod:`.nodules`). Physics and anatomy behind each step:

* **Isotropic grid.** Shape tests compare curvature along z with curvature in-plane, which a 5 mm slice
  spacing cannot resolve for a 1.5 mm Gaussian. The working grid is therefore interpolated (linearly, along z
  only) to about its in-plane spacing inside the lungs' box. A 14 mm nodule on 5 mm slices is three slices
  tall; on the interpolated grid it is a blob of the right size, and a vessel running craniocaudally is a tube.
* **Only lung counts.** A nodule is a lesion of the lung. Tissue outside the lung envelope (chest wall,
  mediastinum, diaphragm) is replaced by the scan's own aerated-lung density before filtering, so the bright
  wall does not make blobs along the pleura, and a nodule against the wall (juxtapleural) still looks like a
  blob: the half inside the lung is what is measured.
* **Density window.** The image is clipped to [aerated lung, the texture's lesion density] (``Look``): a solid
  nodule is measured up to soft tissue (0 HU), so contrast-filled vessels and calcium do not outrank it; a
  ground-glass nodule only up to -600 HU, so its faint, wide haze is what the filter sees, not the vessels
  crossing it.
* **Scale space.** The scale-normalised Laplacian of Gaussian answers a sphere of diameter d best at
  sigma = d / (2 sqrt 3), with a peak value proportional to the sphere's contrast and independent of its
  size. Scales from 3 mm to 5 cm in steps of sqrt 2; coarse scales are filtered on a block-averaged grid
  (sigma at least ~1.2 grid steps), which costs little and changes nothing at that scale.
* **Candidate facts** (measured on the isotropic grid around each peak, see :class:`Candidate`): the
  Hessian's eigenvalue ratio (a sphere curves equally in all three directions, a tube not at all along its
  axis), the dense tissue that leaves the candidate through a surrounding shell relative to its own volume
  (a vessel continues on both sides with its own calibre; a nodule is fed by much thinner vessels), the share
  of that shell outside the lung envelope (a bump of the chest wall is mostly wall around it; a juxtapleural
  nodule is mostly lung), and its core and mean density.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from rexground.engines.rules.common import Features, bbox_slices

# Blob diameters searched (mm): from the smallest reported nodules (3 mm) to the largest mass a "nodule"
# sentence could mean (5 cm), in steps of sqrt 2 (a sphere still answers at 70% of its best between steps).
DIAMETERS_MM: tuple[float, ...] = (3.0, 4.2, 6.0, 8.5, 12.0, 17.0, 24.0, 34.0, 48.0)
_SIGMA_PER_DIAMETER = 1.0 / (2.0 * np.sqrt(3.0))  # the LoG's best scale for a sphere
_MIN_SIGMA_STEPS = 1.2  # a Gaussian narrower than this many grid steps is poorly sampled
_ISO_Z_RATIO = 1.25
_MAX_PEAKS_PER_SCALE = 4000
_SAME_OBJECT_SCALES = 2.0
_EXIT_SMOOTHING = 0.15  # peaks within this diameter ratio (two scale steps) may be one object  # z is interpolated when its spacing exceeds the in-plane one by more than this


@dataclass(frozen=True)
class Look:
    """How a lesion of one texture looks: the top of the density window, the density its core reaches and
    the lowest core density still counted as that texture."""

    name: str
    top_hu: float  # clip: contrast above this does not count (vessels, calcium)
    core_min_hu: float  # a candidate's core must reach this (partial volume allowed for, see nodules.py)
    core_max_hu: float  # and stay below this (a ground-glass nodule is not soft tissue)


LOOKS: dict[str, Look] = {
    # Soft tissue is 0-60 HU unenhanced; half way from lung (-850) is about -400, the edge of a solid lesion.
    "solid": Look("solid", top_hu=0.0, core_min_hu=-400.0, core_max_hu=3000.0),
    # Calcium is far above soft tissue; measured as a solid blob (its size is the same), core above 100 HU.
    "calcified": Look("calcified", top_hu=0.0, core_min_hu=100.0, core_max_hu=3000.0),
    # A part-solid nodule has a solid core (above about -300 HU) in a ground-glass halo.
    "part-solid": Look("part-solid", top_hu=0.0, core_min_hu=-650.0, core_max_hu=3000.0),
    # Pure ground glass: the lung raised to about -800..-600 HU (a core above -300 HU is solid tissue). The
    # window stops at -600, so a vessel crossing or touching the nodule weighs no more than ground glass does.
    "ground-glass": Look("ground-glass", top_hu=-600.0, core_min_hu=-790.0, core_max_hu=-300.0),
}


@dataclass
class IsoVolume:
    """The working grid's lung box, interpolated along z to about the in-plane spacing."""

    image: np.ndarray  # float32 HU, outside the envelope set to the lung background
    envelope: np.ndarray  # bool, the lung envelope (without airways and mediastinum)
    spacing: tuple[float, float, float]
    origin_mm: tuple[float, float, float]  # extent coordinate (mm) of voxel (0, 0, 0)'s corner
    lung_hu: float  # the scan's aerated-lung density (median)
    work_box: tuple[slice, slice, slice]
    z_factor: int

    def to_mm(self, idx) -> np.ndarray:
        """Extent coordinates (mm from the volume's corner) of iso voxel centres."""
        return (np.asarray(idx, np.float64) + 0.5) * np.asarray(self.spacing) + np.asarray(self.origin_mm)

    def to_index(self, mm) -> np.ndarray:
        return np.floor((np.asarray(mm, np.float64) - np.asarray(self.origin_mm)) / np.asarray(self.spacing))


def lung_background_hu(f: Features) -> float:
    """Median density of the aerated lung (the level a lesion's contrast is measured from)."""
    key = ("lung-hu",)
    if key not in f._cache:
        lungs = np.asarray(f.anat.lungs, bool)
        vals = f.hu[lungs & (f.hu < -600.0)]
        f._cache[key] = float(np.median(vals)) if vals.size > 100 else -850.0
    return f._cache[key]


def _z_interpolate(arr: np.ndarray, k: int, order: int) -> np.ndarray:
    """Each z voxel split into ``k`` (centres at (j + 0.5) / k of the old voxel), linear or nearest."""
    if k == 1:
        return arr
    n = arr.shape[0]
    pos = (np.arange(n * k, dtype=np.float64) + 0.5) / k - 0.5
    pos = np.clip(pos, 0.0, n - 1.0)
    i0 = np.floor(pos).astype(np.int64)
    if order == 0:
        return arr[np.clip(np.rint(pos).astype(np.int64), 0, n - 1)]
    i1 = np.minimum(i0 + 1, n - 1)
    w = (pos - i0).astype(np.float32)[:, None, None]
    return arr[i0] * (1.0 - w) + arr[i1] * w


def iso_volume(f: Features, envelope: np.ndarray, top_hu: float) -> IsoVolume:
    """The isotropic lung box for one density window (cached per window)."""
    key = ("iso", round(top_hu, 1))
    if key in f._cache:
        return f._cache[key]
    lung_hu = lung_background_hu(f)
    pad = [int(np.ceil(6.0 / s)) for s in f.spacing]
    box = bbox_slices(envelope, pad=tuple(pad))  # type: ignore[arg-type]
    if box[0].stop <= box[0].start:
        box = tuple(slice(0, n) for n in f.shape)
    sz, sy, sx = f.spacing
    k = int(np.rint(sz / max(sy, sx))) if sz > _ISO_Z_RATIO * max(sy, sx) else 1
    k = max(1, k)
    env = np.asarray(envelope, bool)[box]
    img = np.where(env, np.clip(f.hu[box], lung_hu, top_hu), lung_hu).astype(np.float32)
    img = _z_interpolate(img, k, order=1).astype(np.float32)
    env_i = _z_interpolate(env.astype(np.float32), k, order=1) >= 0.5
    spacing = (sz / k, sy, sx)
    origin = tuple(sl.start * s for sl, s in zip(box, f.spacing, strict=True))
    out = IsoVolume(img, env_i, spacing, origin, lung_hu, box, k)  # type: ignore[arg-type]
    f._cache[key] = out
    return out


@dataclass
class Peak:
    """A scale-space maximum: where (iso index), at which blob diameter, how strong (HU of contrast)."""

    index: tuple[int, int, int]
    diameter_mm: float
    response: float


def _block_mean(arr: np.ndarray, q: tuple[int, int, int]) -> np.ndarray:
    if q == (1, 1, 1):
        return arr
    shape = [n // a * a for n, a in zip(arr.shape, q, strict=True)]
    a = arr[: shape[0], : shape[1], : shape[2]]
    return a.reshape(shape[0] // q[0], q[0], shape[1] // q[1], q[1], shape[2] // q[2], q[2]).mean(
        axis=(1, 3, 5)
    )


def blob_peaks(iso: IsoVolume, f: Features, min_response: float) -> list[Peak]:
    """Scale-space maxima of the normalised LoG inside the envelope, strongest first (cached per window).

    ``min_response`` is in HU of contrast: the normalised LoG of a sphere of contrast C peaks near 0.5 C."""
    key = ("peaks", round(iso.image.max(), 1), round(min_response, 1))
    if key in f._cache:
        return f._cache[key]
    peaks: list[Peak] = []
    env = iso.envelope
    for d in DIAMETERS_MM:
        sigma = d * _SIGMA_PER_DIAMETER
        q = tuple(max(1, int(sigma / (_MIN_SIGMA_STEPS * s))) for s in iso.spacing)
        img = _block_mean(iso.image, q)  # type: ignore[arg-type]
        sp = [s * a for s, a in zip(iso.spacing, q, strict=True)]
        log = _normalised_log(img, sigma, sp)
        env_q = (
            _block_mean(
                env[: img.shape[0] * q[0], : img.shape[1] * q[1], : img.shape[2] * q[2]].astype(np.float32), q
            )
            >= 0.5
        )  # type: ignore[arg-type]
        local_max = (
            (log == ndimage.maximum_filter(log, size=3, mode="nearest")) & env_q & (log >= min_response)
        )
        idxs = np.argwhere(local_max)
        if len(idxs) > _MAX_PEAKS_PER_SCALE:  # the strongest; the rest are noise and vessel texture
            vals = log[tuple(idxs.T)]
            idxs = idxs[np.argsort(-vals)[:_MAX_PEAKS_PER_SCALE]]
        for idx in idxs:
            centre = tuple(
                int(min((i + 0.5) * a, n - 1)) for i, a, n in zip(idx, q, iso.image.shape, strict=True)
            )
            peaks.append(Peak(centre, d, float(log[tuple(idx)])))  # type: ignore[arg-type]
    peaks.sort(key=lambda p: -p.response)
    kept = _suppress(peaks, iso.spacing)
    f._cache[key] = kept
    return kept


def _normalised_log(img: np.ndarray, sigma: float, sp) -> np.ndarray:
    """-sigma^2 times the Laplacian (in mm^-2) of the image smoothed at ``sigma`` mm: positive on bright blobs."""
    out = np.zeros(img.shape, np.float32)
    sig = [sigma / s for s in sp]
    for axis in range(3):
        order = [0, 0, 0]
        order[axis] = 2
        out -= ndimage.gaussian_filter(img, sig, order=order, mode="nearest", truncate=3.0) / (sp[axis] ** 2)
    return out * (sigma**2)


def _suppress(peaks: list[Peak], spacing) -> list[Peak]:
    """Non-maximum suppression across neighbouring scales (``peaks`` strongest first): a weaker peak whose
    centre lies inside a stronger peak's blob (within 0.5 of the larger diameter) at a diameter at most twice
    or half as large is the same object seen at another scale. Peaks of very different sizes are different
    objects: a vessel crossing a large ground-glass nodule must not suppress the nodule."""
    if not peaks:
        return []
    pos = np.asarray([p.index for p in peaks], np.float64) * np.asarray(spacing)
    diam = np.asarray([p.diameter_mm for p in peaks])
    tree = cKDTree(pos)
    suppressed = np.zeros(len(peaks), bool)
    kept = []
    for i in range(len(peaks)):
        if suppressed[i]:
            continue
        kept.append(peaks[i])
        near = np.asarray(tree.query_ball_point(pos[i], 0.5 * max(diam[i], diam.max())), dtype=np.int64)
        near = near[near > i]
        dist = np.sqrt(((pos[near] - pos[i]) ** 2).sum(axis=1))
        ratio = np.maximum(diam[i], diam[near]) / np.minimum(diam[i], diam[near])
        suppressed[near[(dist < 0.5 * np.maximum(diam[i], diam[near])) & (ratio <= _SAME_OBJECT_SCALES)]] = (
            True
        )
    return kept


@dataclass
class Candidate:
    """One peak, described (lengths in mm, densities in HU)."""

    peak: Peak
    centre_mm: np.ndarray  # extent coordinates on the working grid
    voxels: int  # of its segmentation on the iso grid
    diameter_mm: float  # equivalent-sphere diameter of the segmentation
    core_hu: (
        float  # 90th (ground glass: 50th) percentile of the raw density within a quarter diameter of the peak
    )
    mean_hu: float  # mean raw density of the segmentation
    contour_hu: float  # the half-contrast level it was segmented at
    eigen_ratio: float  # weakest / strongest Hessian curvature at the peak's scale (1 sphere, 0 tube)
    exit_ratio: float  # dense volume leaving through the shell / own volume
    wall_share: float  # share of the surrounding shell outside the lung envelope
    notes: dict = field(default_factory=dict)
    score: float = 0.0


def describe(
    iso: IsoVolume, f: Features, peak: Peak, raw: np.ndarray, look: Look, lungs: np.ndarray
) -> Candidate | None:
    """Segment one peak on the iso grid and measure it (see the module docstring). ``raw`` is the iso grid's
    unclipped HU (outside the envelope too), ``lungs`` its aerated lung (:func:`iso_mask`)."""
    sp = np.asarray(iso.spacing)
    r_det = 0.5 * peak.diameter_mm
    r_seg = 1.3 * r_det + float(sp.max())  # the blob's edge lies a little beyond the LoG's nominal radius
    r_ana = 2.0 * r_seg + 2.0 * float(sp.max())
    c = np.asarray(peak.index)
    half = np.ceil(r_ana / sp).astype(int) + 1
    lo = np.maximum(c - half, 0)
    hi = np.minimum(c + half + 1, iso.image.shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    at = tuple(c - lo)
    img = iso.image[box]
    hu = raw[box]
    env = iso.envelope[box]
    grids = np.ogrid[tuple(slice(0, b - a) for a, b in zip(lo, hi, strict=True))]
    d = np.sqrt(sum(((g - a) * s) ** 2 for g, a, s in zip(grids, at, sp, strict=True)))
    core_ball = d <= max(0.25 * peak.diameter_mm, float(sp.max()))
    # The level of a solid lesion is its densest part; that of ground glass its median, since vessels seen
    # through it are part of its look and may cross its centre.
    pct = 50 if look.name == "ground-glass" else 90
    core = float(np.percentile(hu[core_ball & env] if (core_ball & env).any() else hu[core_ball], pct))
    top = min(core, look.top_hu)
    contour = iso.lung_hu + 0.5 * (top - iso.lung_hu)
    dense = (img > contour) & env
    seg_ball = d <= r_seg
    lab, _ = ndimage.label(dense & seg_ball, structure=ndimage.generate_binary_structure(3, 3))
    if lab[at] == 0:
        near = np.where(dense & seg_ball, d, np.inf)
        j = np.unravel_index(int(np.argmin(near)), near.shape)
        if not np.isfinite(near[j]):
            return None
        seg = lab == lab[j]
    else:
        seg = lab == lab[at]
    vox = int(seg.sum())
    if vox == 0:
        return None
    vol = vox * float(np.prod(sp))
    d_eq = 2.0 * (3.0 * vol / (4.0 * np.pi)) ** (1.0 / 3.0)
    # Dense tissue connected to the candidate that leaves it: within the analysis ball, outside the
    # candidate's own ball (1.2 x its equivalent radius, at least a voxel more).
    # For ground glass, measured on the window image smoothed at 0.15 x the blob's diameter: vessels seen
    # through a ground-glass nodule are part of its look, and fade below the half-contrast level, while a
    # structure of the candidate's own calibre keeps its contrast. A solid nodule hides the vessels inside
    # it, so every dense structure leaving it counts.
    # Judged at three quarters of its own contrast: after the smoothing, the haze of the vessel tree around it
    # (strongest on thick slices) stays below that, while more of the same ground glass beyond it (a patch,
    # a band of dependent density, not a nodule) does not.
    if look.name == "ground-glass":
        smooth = ndimage.gaussian_filter(
            img, [_EXIT_SMOOTHING * peak.diameter_mm / s for s in sp], mode="nearest"
        )
        level = iso.lung_hu + 0.75 * (top - iso.lung_hu)
        thick = ((smooth > level) & env) | seg
    else:
        thick = dense | seg
    lab2, _ = ndimage.label(thick & (d <= r_ana), structure=ndimage.generate_binary_structure(3, 3))
    ids = np.unique(lab2[seg])
    connected = np.isin(lab2, ids[ids > 0])
    r_own = max(0.6 * d_eq, float(np.max(d[seg]))) + float(sp.max())
    shell_out = (d > r_own) & (d <= r_own + max(3.0, 0.5 * d_eq))
    exit_ratio = (
        float((connected & shell_out).sum())
        / max(vox, 1)
        * (
            # normalise the shell's thickness to the candidate's radius: a tube of the candidate's calibre
            # through a shell as thick as the radius holds about the candidate's volume
            0.5 * d_eq / max(3.0, 0.5 * d_eq)
        )
    )
    # Against the aerated lung (``lungs``), not the envelope: the envelope bridges concavities, so it may hold
    # a strip of the aorta or the heart border; what surrounds a nodule is aerated lung.
    ring = (d > r_own - float(sp.max())) & (d <= r_own + 3.0)
    wall_share = float((ring & ~lungs[box]).sum()) / max(int(ring.sum()), 1)
    ratio = _eigen_ratio(iso.image, peak, sp)
    centre_iso = np.array([np.mean(ix) for ix in np.nonzero(seg)]) + lo
    centre_mm = iso.to_mm(centre_iso)
    return Candidate(
        peak=peak, centre_mm=centre_mm, voxels=vox, diameter_mm=d_eq, core_hu=core,
        mean_hu=float(hu[seg].mean()), contour_hu=contour, eigen_ratio=ratio, exit_ratio=exit_ratio,
        wall_share=wall_share,
    )  # fmt: skip


def _eigen_ratio(image: np.ndarray, peak: Peak, sp: np.ndarray) -> float:
    """Weakest over strongest Hessian eigenvalue at the peak (both negative for a bright blob), at the peak's
    scale, from a local crop; 0 when not all three are negative."""
    sigma = peak.diameter_mm * _SIGMA_PER_DIAMETER
    q = tuple(max(1, int(sigma / (_MIN_SIGMA_STEPS * s))) for s in sp)
    c = np.asarray(peak.index)
    half = np.ceil(4.0 * sigma / sp).astype(int) + 2 * np.asarray(q)
    lo = np.maximum(c - half, 0)
    hi = np.minimum(c + half + 1, image.shape)
    crop = image[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))]
    crop = _block_mean(crop, q)  # type: ignore[arg-type]
    spq = sp * np.asarray(q)
    at = tuple(np.clip(((c - lo) // np.asarray(q)), 0, np.asarray(crop.shape) - 1))
    sig = sigma / spq
    h = np.empty((3, 3))
    for a in range(3):
        for b in range(a, 3):
            order = [0, 0, 0]
            order[a] += 1
            order[b] += 1
            v = ndimage.gaussian_filter(crop, sig, order=order, mode="nearest", truncate=3.0)[at]
            h[a, b] = h[b, a] = v / (spq[a] * spq[b])
    ev = np.linalg.eigvalsh(h)  # ascending: the strongest (most negative) first
    if ev[2] >= 0 or ev[0] >= 0:
        return 0.0
    return float(ev[2] / ev[0])


def iso_mask(f: Features, iso: IsoVolume, mask: np.ndarray, key: str) -> np.ndarray:
    """A working-grid mask on the iso grid (cached by ``key``)."""
    ck = ("iso-mask", key)
    if ck not in f._cache:
        m = np.asarray(mask, bool)[iso.work_box].astype(np.float32)
        f._cache[ck] = _z_interpolate(m, iso.z_factor, order=1) >= 0.5
    return f._cache[ck]


def raw_iso(f: Features, iso: IsoVolume) -> np.ndarray:
    """The iso grid's unclipped HU (cached)."""
    key = ("iso-raw",)
    if key not in f._cache:
        f._cache[key] = _z_interpolate(f.hu[iso.work_box], iso.z_factor, order=1).astype(np.float32)
    return f._cache[key]
