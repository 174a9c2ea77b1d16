"""From a CT to the network's input grid and back: crop, clip padding, resample, normalise.

Training uses this same module (``rexground.train.data``), so the order is the same in both: scanner
padding (-8192, -2048, anything below air) is clipped first (``rexground.io.clip_padding``), then the crop is resampled to the
model's spacing (linear), then the HU window is applied and the values shifted and scaled. The crop is the
body's bounding box plus a margin, found on a coarse grid in a fraction of a second: the air around the
patient holds no finding and would only add tiles. Results go back with ``resample_zyx(..., shape=)`` onto
the crop's exact grid, so the mask lands voxel for voxel on the CT.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from rexground.io import clip_padding, resample_zyx
from rexground.model_package import IntensityNormalisation
from rexground.train.anatomy_channels import channel_scale

Shape3 = tuple[int, int, int]
BODY_HU = -500.0  # soft tissue, bone and the table are above; lungs and outside air are below
_COARSE_MM = 4.0  # the body box is found on a grid of about this spacing


def normalise(
    hu_clipped: np.ndarray, norm: IntensityNormalisation, *, out: np.ndarray | None = None
) -> np.ndarray:
    """Padding-clipped HU -> network intensities (float32): window clip, then (x - mean) / std."""
    res = np.clip(np.asarray(hu_clipped, dtype=np.float32), norm.clip_min, norm.clip_max, out=out)
    res -= np.float32(norm.mean)
    res *= np.float32(1.0 / norm.std)
    return res


def air_value(norm: IntensityNormalisation) -> float:
    """The network value of air (-1024 HU): what tiles sticking out of the volume are padded with."""
    return float(normalise(np.array([-1024.0], dtype=np.float32), norm)[0])


def body_box(
    hu: np.ndarray, spacing_zyx: Sequence[float], *, margin_mm: float = 10.0
) -> tuple[slice, slice, slice]:
    """Bounding box (on the CT grid) of the largest connected region above -500 HU, plus ``margin_mm``.

    Runs on a strided view (about 4 mm voxels) so a 512x512x600 CT costs well under a second. The whole
    volume is returned when nothing is found (an empty or synthetic scan): cropping must never lose a
    finding.
    """
    strides = tuple(max(1, int(_COARSE_MM // max(s, 1e-3))) for s in spacing_zyx)
    coarse = np.asarray(hu[:: strides[0], :: strides[1], :: strides[2]]) > BODY_HU
    full = tuple(slice(0, n) for n in hu.shape)
    if not coarse.any():
        return full  # type: ignore[return-value]
    labels, n = ndimage.label(coarse)
    if n > 1:
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        coarse = labels == int(np.argmax(sizes))
    box = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        idx = np.flatnonzero(coarse.any(axis=other))
        margin = int(np.ceil(margin_mm / spacing_zyx[axis]))
        lo = max(0, int(idx[0]) * strides[axis] - margin)
        hi = min(hu.shape[axis], (int(idx[-1]) + 1) * strides[axis] + margin)
        box.append(slice(lo, hi))
    return tuple(box)  # type: ignore[return-value]


@dataclass(frozen=True)
class PreparedVolume:
    """The network input for one CT and the facts needed to map results back onto the CT grid."""

    image: np.ndarray  # (C, Z, Y, X) float32 at the model's spacing
    crop: tuple[slice, slice, slice]  # region of the CT grid the image covers
    ct_shape: Shape3
    ct_spacing: tuple[float, float, float]
    model_spacing: tuple[float, float, float]
    pad_values: tuple[float, ...]  # per channel, for tiles that stick out

    @property
    def crop_shape(self) -> Shape3:
        return tuple(s.stop - s.start for s in self.crop)  # type: ignore[return-value]


def prepare(
    hu: np.ndarray,
    spacing_zyx: Sequence[float],
    *,
    target_spacing: Sequence[float],
    norm: IntensityNormalisation,
    crop: str = "body",
    channels: Sequence[str] = ("ct",),
    anatomy: Mapping[str, np.ndarray] | None = None,
) -> PreparedVolume:
    """Canonical HU (padding not yet clipped) -> ``PreparedVolume``. ``anatomy`` holds the uint8 prior arrays
    on the CT grid for every channel after the first (nearest-neighbour resampled, then scaled by
    ``channel_scale``, as in training)."""
    spacing = tuple(float(s) for s in spacing_zyx)
    target = tuple(float(s) for s in target_spacing)
    box = body_box(hu, spacing) if crop == "body" else tuple(slice(0, n) for n in hu.shape)
    # Clip the crop only: a full-size float32 copy of a 600-slice CT would cost 600 MB for nothing.
    clipped = clip_padding(hu[box])
    ct_channel = resample_zyx(clipped, spacing, target, order=1)
    del clipped
    normalise(ct_channel, norm, out=ct_channel)
    image = np.empty((len(channels), *ct_channel.shape), dtype=np.float32)
    image[0] = ct_channel
    del ct_channel
    pads = [air_value(norm)]
    for c, name in enumerate(channels[1:], start=1):
        if anatomy is None or name not in anatomy:
            raise KeyError(f"anatomy channel {name!r} is required by the model but was not computed")
        mask = np.asarray(anatomy[name])[box].astype(np.uint8, copy=False)
        image[c] = resample_zyx(mask, spacing, target, order=0, shape=image.shape[1:])
        image[c] *= channel_scale(name)  # uint8 levels of the coordinate channels -> (0, 1]
        pads.append(0.0)
    return PreparedVolume(
        image=image,
        crop=box,  # type: ignore[arg-type]
        ct_shape=tuple(hu.shape),  # type: ignore[arg-type]
        ct_spacing=spacing,  # type: ignore[arg-type]
        model_spacing=target,  # type: ignore[arg-type]
        pad_values=tuple(pads),
    )


def _axis_taps(n_in: int, n_out: int, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # Output voxel i samples input coordinate (i + 0.5) * n_in / n_out - 0.5 (voxel edges aligned, as
    # ``resample_zyx``'s grid_mode zoom does), clamped to the edge voxels (its mode="nearest").
    i = np.arange(lo, hi, dtype=np.float64)
    c = np.clip((i + 0.5) * (n_in / n_out) - 0.5, 0, n_in - 1)
    i0 = np.floor(c).astype(np.intp)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, (c - i0).astype(np.float32)


def linear_resize(
    array: np.ndarray, out_shape: Sequence[int], box: tuple[slice, ...] | None = None
) -> np.ndarray:
    """``resample_zyx(array, ..., order=1, shape=out_shape)[box]`` (equal up to float32 rounding), computed
    axis by axis and only for ``box``: about ten times faster than ``ndimage.zoom`` on a whole crop, and
    a finding's small box costs next to nothing."""
    out = np.asarray(array, dtype=np.float32)
    box = box or tuple(slice(0, int(n)) for n in out_shape)
    for axis in range(3):
        i0, i1, w = _axis_taps(out.shape[axis], int(out_shape[axis]), box[axis].start, box[axis].stop)
        shape = [1, 1, 1]
        shape[axis] = -1
        lo = np.take(out, i0, axis=axis)
        hi = np.take(out, i1, axis=axis)
        hi -= lo
        hi *= w.reshape(shape)
        lo += hi
        out = lo
    return out


def above_threshold_box(
    logits: np.ndarray, out_shape: Sequence[int], threshold_logit: float, margin: float = 1e-3
) -> tuple[slice, slice, slice] | None:
    """The part of the output grid where ``linear_resize(logits, out_shape)`` can reach ``threshold_logit``.

    A linearly interpolated value is a convex combination of its 8 input neighbours, so it can only reach
    the threshold where a neighbour does: the output voxels whose neighbours along some axis all lie
    outside the input box of voxels at or above ``threshold_logit - margin`` are below it. None when no
    input voxel is (the finding then needs the whole map for its fallback).
    """
    above = logits >= threshold_logit - margin
    if not above.any():
        return None
    box = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        idx = np.flatnonzero(above.any(axis=other))
        a, b = int(idx[0]), int(idx[-1])
        r = int(out_shape[axis]) / logits.shape[axis]
        lo = max(0, int(np.floor((a - 1.5) * r)) - 1)
        hi = min(int(out_shape[axis]), int(np.ceil((b + 1.5) * r)) + 1)
        box.append(slice(lo, hi))
    return tuple(box)  # type: ignore[return-value]


def to_crop_grid(
    logits: np.ndarray, prepared: PreparedVolume, box: tuple[slice, ...] | None = None
) -> np.ndarray:
    """One finding's (Z, Y, X) logits at the model spacing -> float32 logits on the CT crop's exact grid
    (or on ``box`` of it)."""
    return linear_resize(logits, prepared.crop_shape, box)


def sigmoid_(x: np.ndarray) -> np.ndarray:
    """In-place logistic function on a float32 array (no full-size temporaries beyond the input)."""
    with np.errstate(over="ignore"):  # exp(-x) -> inf for very negative logits gives exactly 0
        np.negative(x, out=x)
        np.exp(x, out=x)
        x += np.float32(1.0)
        np.reciprocal(x, out=x)
    return x


def paste(crop_array: np.ndarray, prepared: PreparedVolume, *, fill: float = 0, dtype=None) -> np.ndarray:
    """Put an array of the crop's shape back into a CT-sized array (``fill`` outside the crop)."""
    out = np.full(prepared.ct_shape, fill, dtype=dtype or crop_array.dtype)
    out[prepared.crop] = crop_array
    return out
