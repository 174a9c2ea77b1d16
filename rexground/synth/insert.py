"""Synthetic lesions inserted into real CTs, and thick-slice versions of real CTs, for checks no shared case has.

A rule that works on the few labelled real CTs may still fail on a slice thickness or a lesion texture those
cases lack. These helpers make such cases from a real CT, with an exact mask:

* :func:`thick_slices` averages a CT's slices into thicker ones (a thick reconstruction integrates the same
  physical slab, so partial volume is what a scanner would give; nothing is interpolated in-plane);
* :func:`insert_lesion` blends a sphere of given diameter and density into the CT with its true partial-volume
  fraction per voxel (supersampled), plus noise like the scan's own; a ``"solid"`` lesion replaces the tissue,
  a ``"ground-glass"`` one raises the lung to its density while denser structures (vessels) stay visible
  through it, as in a real ground-glass nodule;
* :func:`lung_site` picks a centre inside a given region of the lungs at least a given distance from the lung
  surface, where the sphere holds the least dense tissue (not on a large vessel).

Arrays are canonical (z, y, x) with ``spacing_zyx`` in mm; positions are in mm from the volume's corner
(voxel ``i`` spans ``[i * s, (i + 1) * s)``), so they survive a change of slice thickness.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

HU_SOLID = 30.0  # soft tissue, unenhanced
HU_GROUND_GLASS = -700.0  # the median density of a typical pure ground-glass nodule


def thick_slices(
    hu: np.ndarray, spacing_zyx: tuple[float, float, float], slice_mm: float
) -> tuple[np.ndarray, tuple[float, float, float]]:
    """The CT re-sliced at ``slice_mm`` (>= the current thickness): each new slice is the overlap-weighted
    mean of the old slices its slab covers. Returns (int16 HU, new spacing)."""
    nz = hu.shape[0]
    extent = nz * spacing_zyx[0]
    n_new = max(1, round(extent / slice_mm))
    step = extent / n_new
    edges_old = np.arange(nz + 1) * spacing_zyx[0]
    out = np.empty((n_new, *hu.shape[1:]), np.float32)
    for k in range(n_new):
        lo, hi = k * step, (k + 1) * step
        w = np.clip(np.minimum(edges_old[1:], hi) - np.maximum(edges_old[:-1], lo), 0.0, None)
        idx = np.flatnonzero(w > 0)
        out[k] = np.tensordot(w[idx] / w[idx].sum(), hu[idx].astype(np.float32), axes=1)
    return np.clip(np.rint(out), -32768, 32767).astype(np.int16), (step, *spacing_zyx[1:])


def sphere_fraction(
    shape: tuple[int, int, int], spacing_zyx, centre_mm, diameter_mm: float, supersample_mm: float = 0.3
) -> tuple[tuple[slice, slice, slice], np.ndarray]:
    """(box, fraction): the fraction of each voxel of ``box`` inside the sphere, by supersampling each voxel
    at about ``supersample_mm`` per axis."""
    r = diameter_mm / 2.0
    box = []
    for c, s, n in zip(centre_mm, spacing_zyx, shape, strict=True):
        box.append(slice(max(0, int(np.floor((c - r) / s)) - 1), min(n, int(np.ceil((c + r) / s)) + 1)))
    axes = []
    for sl, s in zip(box, spacing_zyx, strict=True):
        k = max(1, int(np.ceil(s / supersample_mm)))
        sub = (np.arange(k) + 0.5) / k
        axes.append(((np.arange(sl.start, sl.stop)[:, None] + sub[None, :]) * s).ravel())
    kz, ky, kx = (len(a) // (sl.stop - sl.start) for a, sl in zip(axes, box, strict=True))
    gz, gy, gx = np.meshgrid(
        *[a - c for a, c in zip(axes, centre_mm, strict=True)], indexing="ij", sparse=True
    )
    inside = (gz**2 + gy**2 + gx**2 <= r * r).astype(np.float32)
    nz, ny, nx = (sl.stop - sl.start for sl in box)
    frac = inside.reshape(nz, kz, ny, ky, nx, kx).mean(axis=(1, 3, 5))
    return tuple(box), frac  # type: ignore[return-value]


def insert_lesion(
    hu: np.ndarray,
    spacing_zyx,
    centre_mm,
    diameter_mm: float,
    *,
    kind: str = "solid",
    density_hu: float | None = None,
    noise_hu: float = 20.0,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """(new HU, mask): ``hu`` with a spherical lesion blended in; ``mask`` holds the voxels at least half
    inside the sphere (uint8 0/1). ``kind`` is "solid" or "ground-glass"."""
    if kind not in ("solid", "ground-glass"):
        raise ValueError(f"kind must be 'solid' or 'ground-glass', got {kind!r}")
    density = density_hu if density_hu is not None else (HU_SOLID if kind == "solid" else HU_GROUND_GLASS)
    box, frac = sphere_fraction(hu.shape, spacing_zyx, centre_mm, diameter_mm)
    rng = np.random.default_rng(seed)
    old = hu[box].astype(np.float32)
    lesion = density + rng.normal(0.0, noise_hu, old.shape).astype(np.float32)
    if kind == "ground-glass":
        lesion = np.maximum(old, lesion)  # vessels and walls stay visible through ground glass
    out = hu.copy()
    out[box] = np.clip(np.rint((1.0 - frac) * old + frac * lesion), -32768, 32767).astype(hu.dtype)
    mask = np.zeros(hu.shape, np.uint8)
    mask[box] = frac >= 0.5
    return out, mask


def lung_site(
    hu: np.ndarray,
    spacing_zyx,
    lungs: np.ndarray,
    region: np.ndarray,
    diameter_mm: float,
    margin_mm: float = 10.0,
) -> tuple[float, float, float]:
    """A centre (mm) in ``region`` at least ``diameter/2 + margin_mm`` inside ``lungs`` whose sphere holds
    the least tissue denser than -500 HU (so the lesion sits in aerated lung, not on a large vessel).
    Raises ValueError when the region has no such place."""
    # The volume's border counts as outside: a lung cut by the scan's first or last slice goes on beyond it.
    depth = ndimage.distance_transform_edt(np.pad(lungs, 1), sampling=spacing_zyx)[1:-1, 1:-1, 1:-1]
    ok = region & (depth >= diameter_mm / 2.0 + margin_mm)
    if not ok.any():
        raise ValueError(f"no place {diameter_mm / 2 + margin_mm:.0f} mm inside the lungs in the region")
    dense = (hu > -500).astype(np.float32)
    sig = [diameter_mm / 4.0 / s for s in spacing_zyx]
    crowd = ndimage.gaussian_filter(dense, sig, mode="nearest")
    idx = np.argwhere(ok)
    best = idx[np.argmin(crowd[ok])]
    return tuple(float((i + 0.5) * s) for i, s in zip(best, spacing_zyx, strict=True))  # type: ignore[return-value]
