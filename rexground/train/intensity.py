"""The network's input preprocessing, torch-free so that onnxruntime inference reuses it bit for bit.

A CT becomes the network input in three steps: clip the scanner padding (-8192, -2048, anything below
-1024 HU) *before* anything else (``CTVolume.hu_clipped``), resample to the model's spacing (linear), and map
HU with a fixed window to roughly [-1.5, 2.7]. A fixed window rather than a per-scan z-score keeps every
voxel's value independent of the crop and of the other tiles, so sliding-window inference sees exactly what
training saw. Anatomy prior channels (0/1 masks, nearest-resampled) follow the CT channel in the order of
``InputSpec.anatomy_channels``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from rexground.io import CTVolume, resample_zyx
from rexground.train.config import InputSpec


def normalise_hu(hu_clipped: np.ndarray, spec: InputSpec) -> np.ndarray:
    """HU (padding already clipped) -> float32 network intensities."""
    lo, hi = spec.hu_window
    out = np.clip(np.asarray(hu_clipped, dtype=np.float32), lo, hi)
    out -= np.float32(spec.hu_center)
    out *= np.float32(1.0 / spec.hu_scale)
    return out


def target_shape(
    shape_zyx: tuple[int, ...], spacing_zyx: tuple[float, ...], spec: InputSpec
) -> tuple[int, ...]:
    """Shape of a canonical array of ``shape_zyx`` voxels at ``spacing_zyx`` once resampled to the model's spacing
    (the same rounding ``resample_zyx`` uses)."""
    return tuple(
        max(1, round(n * s / t)) for n, s, t in zip(shape_zyx, spacing_zyx, spec.spacing_zyx, strict=True)
    )


def prepare_image(
    ct: CTVolume, spec: InputSpec, anatomy: Mapping[str, np.ndarray] | None = None
) -> np.ndarray:
    """Canonical CT (+ named anatomy masks on the CT grid) -> (C, Z, Y, X) float32 at the model's spacing."""
    hu = resample_zyx(ct.hu_clipped(), ct.spacing_zyx, spec.spacing_zyx, order=1)
    channels = [normalise_hu(hu, spec)]
    for name in spec.anatomy_channels:
        if anatomy is None or name not in anatomy:
            raise KeyError(f"anatomy channel {name!r} is required by the model but was not computed")
        mask = resample_zyx(
            np.asarray(anatomy[name], dtype=np.uint8),
            ct.spacing_zyx,
            spec.spacing_zyx,
            order=0,
            shape=channels[0].shape,
        )
        channels.append(mask.astype(np.float32))
    return np.stack(channels, axis=0)


def air_value(spec: InputSpec) -> float:
    """The normalised value of air, used to pad patches that stick out of the volume."""
    return float(normalise_hu(np.array([-1024.0]), spec)[0])
