"""Sliding-window inference over a volume: where the tiles go, how they are weighted, how they are batched.

Tiles are placed as nnU-Net places them: along each axis, the fewest steps of at most ``tile_step`` times
the patch (0.5: nnU-Net's half-patch step; 1: tiles that just touch) so that the first tile starts at 0
and the last one ends exactly at the border, the steps spread evenly in between. Each tile's logits are weighted by a Gaussian importance map (sigma = patch / 8,
peak 1, no zero anywhere, so every voxel has a weight) and the weighted sums are divided by the summed
weights. The image encoder runs once per tile batch and the text-conditioned decoder once per finding on
the same encoder features, so F findings cost one encoder pass plus F decoder passes.

The work per tile is done by a *backend* (``TileBackend``): onnxruntime on the CPU or on CUDA
(``rexground.infer.onnx_session``), or torch (``rexground.train.tile_backend``: training validation and
the export's parity check). The backend owns the
accumulation of weighted logits so that on a GPU the sums never leave the device.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from functools import lru_cache
from typing import Any, Protocol

import numpy as np

Shape3 = tuple[int, int, int]


def check_tile_step(tile_step: float) -> float:
    """The sliding-window step as a fraction of the patch, in (0, 1]; ValueError otherwise."""
    value = float(tile_step)
    if not 0.0 < value <= 1.0:
        raise ValueError(f"tile step must be in (0, 1] (a fraction of the patch), got {tile_step}")
    return value


def tile_steps(image_size: int, patch_size: int, tile_step: float = 0.5) -> list[int]:
    """Start offsets of the tiles along one axis (nnU-Net's rule). Requires image_size >= patch_size."""
    if patch_size <= 0 or image_size < patch_size:
        raise ValueError(f"image size {image_size} must be >= patch size {patch_size} > 0")
    check_tile_step(tile_step)
    target_step = max(patch_size * tile_step, 1.0)  # tiny patches: never two tiles at one place
    n_steps = math.ceil((image_size - patch_size) / target_step) + 1
    max_start = image_size - patch_size
    if n_steps == 1:
        return [0]
    actual_step = max_start / (n_steps - 1)
    return [round(actual_step * i) for i in range(n_steps)]


def tile_starts(
    image_shape: Sequence[int], patch_size: Sequence[int], tile_step: float = 0.5
) -> list[Shape3]:
    """All tile start corners (z, y, x), in C order (x fastest), for an image at least as large as a patch."""
    steps = [tile_steps(int(s), int(p), tile_step) for s, p in zip(image_shape, patch_size, strict=True)]
    return [(z, y, x) for z in steps[0] for y in steps[1] for x in steps[2]]


@lru_cache(maxsize=8)
def _gaussian_cached(patch_size: Shape3, sigma_scale: float) -> np.ndarray:
    # A separable Gaussian centred on the patch centre: the same map as nnU-Net's blurred delta (up to the
    # filter's truncation), computed exactly. The floor keeps every voxel's weight > 0, also in fp16.
    axes = []
    for n in patch_size:
        centre = (n - 1) / 2.0 if n % 2 == 0 else n // 2
        sigma = n * sigma_scale
        coords = np.arange(n, dtype=np.float64) - centre
        axes.append(np.exp(-0.5 * (coords / sigma) ** 2))
    g = axes[0][:, None, None] * axes[1][None, :, None] * axes[2][None, None, :]
    g /= g.max()
    floor = g[g > 0].min()
    g = np.maximum(g, max(floor, 1e-3)).astype(np.float32)
    g.setflags(write=False)
    return g


def gaussian_importance(patch_size: Sequence[int], sigma_scale: float = 1.0 / 8) -> np.ndarray:
    """Importance map of a patch: float32, peak 1.0 at the centre, strictly positive everywhere (read-only)."""
    return _gaussian_cached(tuple(int(p) for p in patch_size), float(sigma_scale))  # type: ignore[arg-type]


def pad_to_patch(
    volume: np.ndarray, patch_size: Sequence[int], pad_values: Sequence[float]
) -> tuple[np.ndarray, tuple[slice, ...]]:
    """Pad a (C, Z, Y, X) volume symmetrically to at least the patch size, each channel with its own value.

    Returns the padded volume (the input itself when no padding is needed) and the slices that cut the
    original region back out of an array of the padded spatial shape.
    """
    spatial = volume.shape[1:]
    before, after = [], []
    for s, p in zip(spatial, patch_size, strict=True):
        total = max(int(p) - int(s), 0)
        before.append(total // 2)
        after.append(total - total // 2)
    region = tuple(slice(b, b + s) for b, s in zip(before, spatial, strict=True))
    if not any(before) and not any(after):
        return volume, region
    padded_shape = (volume.shape[0], *(s + b + a for s, b, a in zip(spatial, before, after, strict=True)))
    out = np.empty(padded_shape, dtype=volume.dtype)
    for c in range(volume.shape[0]):
        out[c].fill(pad_values[c])
    out[(slice(None), *region)] = volume
    return out, region


class TileBackend(Protocol):
    """Runs the network on tiles and accumulates Gaussian-weighted logits for every finding."""

    def set_conditions(self, conditions: Any) -> None:
        """The findings' decoder inputs (``rexground.infer.conditions.Conditions``) for the next volume."""

    def start(self, volume_shape: Shape3, n_findings: int, importance: np.ndarray) -> None:
        """Allocate (or zero) the accumulators for a new volume."""

    def encode(self, tiles: np.ndarray) -> Any:
        """Image encoder on a (B, C, pz, py, px) float32 batch; returns opaque features for ``decode``."""

    def decode_accumulate(self, features: Any, finding: int, starts: Sequence[Shape3]) -> None:
        """Decoder for finding ``finding`` on the features; adds importance * logits at each tile's start."""

    def finish(self) -> np.ndarray:
        """The (F, Z, Y, X) float32 sums of weighted logits, on the host."""


def iter_batches(starts: Sequence[Shape3], batch_size: int) -> Iterator[list[Shape3]]:
    for i in range(0, len(starts), batch_size):
        yield list(starts[i : i + batch_size])


def extract_tiles(volume: np.ndarray, starts: Sequence[Shape3], patch_size: Sequence[int]) -> np.ndarray:
    """Copy the tiles at ``starts`` out of a (C, Z, Y, X) volume into one contiguous (B, C, pz, py, px) batch."""
    pz, py, px = (int(p) for p in patch_size)
    batch = np.empty((len(starts), volume.shape[0], pz, py, px), dtype=np.float32)
    for b, (z, y, x) in enumerate(starts):
        batch[b] = volume[:, z : z + pz, y : y + py, x : x + px]
    return batch


def weight_sum(volume_shape: Shape3, starts: Sequence[Shape3], importance: np.ndarray) -> np.ndarray:
    """Sum of the importance maps of all tiles: the divisor that turns weighted sums into averages."""
    pz, py, px = importance.shape
    w = np.zeros(volume_shape, dtype=np.float32)
    for z, y, x in starts:
        w[z : z + pz, y : y + py, x : x + px] += importance
    return w


def predict_logits(
    volume: np.ndarray,
    backend: TileBackend,
    n_findings: int,
    patch_size: Sequence[int],
    *,
    tile_step: float = 0.5,
    batch_size: int = 2,
    pad_values: Sequence[float] | None = None,
    progress: bool = False,
) -> np.ndarray:
    """Averaged logits (F, Z, Y, X) float32 of every finding over a (C, Z, Y, X) float32 volume.

    A volume smaller than the patch along an axis is padded (``pad_values`` per channel, default 0) and the
    result is cut back to the input's shape.
    """
    if volume.ndim != 4:
        raise ValueError(f"expected a (C, Z, Y, X) volume, got shape {volume.shape}")
    if n_findings < 1:
        raise ValueError("need at least one finding")
    patch = tuple(int(p) for p in patch_size)
    padded, region = pad_to_patch(volume, patch, pad_values or [0.0] * volume.shape[0])
    shape: Shape3 = tuple(padded.shape[1:])  # type: ignore[assignment]
    starts = tile_starts(shape, patch, tile_step)
    importance = gaussian_importance(patch)
    backend.start(shape, n_findings, importance)
    batches = list(iter_batches(starts, max(1, batch_size)))
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(starts), desc="tiles", unit="tile", leave=False)
    for batch_starts in batches:
        features = backend.encode(extract_tiles(padded, batch_starts, patch))
        for f in range(n_findings):
            backend.decode_accumulate(features, f, batch_starts)
        del features
        if bar is not None:
            bar.update(len(batch_starts))
    if bar is not None:
        bar.close()
    del padded
    sums = backend.finish()
    weights = weight_sum(shape, starts, importance)
    np.divide(sums, weights[None], out=sums)
    del weights
    if any(r.start != 0 or r.stop != s for r, s in zip(region, shape, strict=True)):
        sums = np.ascontiguousarray(sums[(slice(None), *region)])
    return sums


class HostAccumulator:
    """Weighted-logit sums on the host, shared by the CPU backends (onnxruntime CPU, torch eager)."""

    def __init__(self) -> None:
        self.sums: np.ndarray | None = None
        self.importance: np.ndarray | None = None

    def start(self, volume_shape: Shape3, n_findings: int, importance: np.ndarray) -> None:
        self.sums = np.zeros((n_findings, *volume_shape), dtype=np.float32)
        self.importance = importance

    def add(self, finding: int, logits: np.ndarray, starts: Sequence[Shape3]) -> None:
        """``logits``: (B, 1, pz, py, px) or (B, pz, py, px), one per start."""
        assert self.sums is not None and self.importance is not None, "start() first"
        pz, py, px = self.importance.shape
        target = self.sums[finding]
        for b, (z, y, x) in enumerate(starts):
            tile = logits[b].reshape(pz, py, px)
            target[z : z + pz, y : y + py, x : x + px] += tile * self.importance

    def finish(self) -> np.ndarray:
        assert self.sums is not None, "start() first"
        out, self.sums = self.sums, None
        return out
