"""Before the network: a CT -> the network's input (crop, clip padding, resample, normalise, anatomy channels).

Training uses this same module (``rexground.train.data``), so the order is the same in both: scanner
padding (-8192, -2048, anything below air) is clipped first (``rexground.io.clip_padding``), then the crop is
resampled to the model's spacing (linear), then the HU window is applied and the values shifted and scaled;
anatomy prior channels (``rexground.infer.channels``) are resampled nearest-neighbour and scaled. The crop
is the body's bounding box plus a margin, found on a coarse grid in a fraction of a second: the air around
the patient holds no finding and would only add tiles. ``PreparedVolume`` keeps what the way back needs
(the crop, the grids); the way back is ``rexground.infer.masks``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage

from rexground.infer.channels import channel_scale
from rexground.infer.package import IntensityNormalisation
from rexground.io import clip_padding, resample_zyx

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

    def without_image(self) -> PreparedVolume:
        """The same facts without the (large) image: what mapping results back needs."""
        return replace(self, image=np.empty((0, 0, 0, 0), np.float32))


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
