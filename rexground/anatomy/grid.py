"""The working grid of the anatomy module and the exact maps between it and the CT's canonical grid.

Each canonical axis whose spacing is finer than about the target (``working_spacing_mm``) is reduced to
``round(n * spacing / target)`` voxels that tile exactly the same physical extent; coarser axes (thick
slices) are kept as they are, since upsampling them adds no information. Because the working voxels tile
the CT's extent exactly, CT voxel ``i`` maps to working voxel ``floor((i + 0.5) * n_work / n_ct)`` and the
nearest-neighbour map back to the CT grid is exact in shape and never drifts by half a voxel.

Downsampling the CT is done in slabs along z, so a 768 x 768 x 600 int16 CT never needs a float32 copy of
itself: the peak extra memory is one slab plus the working volume.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# An axis at least this fraction of the target spacing is kept at its own resolution: resampling 1.3 mm
# to 1.5 mm would cost time and sharpness for nothing.
_KEEP_AXIS_FRACTION = 0.8
_SLAB_SLICES = 16
HU_AIR = -1024.0
HU_MAX = 3071.0


@dataclass(frozen=True)
class WorkingGrid:
    """Shapes and spacings of the CT grid and of the working grid, both canonical (z, y, x)."""

    ct_shape: tuple[int, int, int]
    ct_spacing: tuple[float, float, float]
    shape: tuple[int, int, int]

    @classmethod
    def for_ct(
        cls, ct_shape: tuple[int, int, int], ct_spacing: tuple[float, float, float], target_mm: float
    ) -> WorkingGrid:
        if target_mm <= 0:
            raise ValueError(f"working spacing must be positive, got {target_mm}")
        shape = []
        for n, s in zip(ct_shape, ct_spacing, strict=True):
            if s >= _KEEP_AXIS_FRACTION * target_mm:
                shape.append(int(n))
            else:
                shape.append(max(1, round(n * s / target_mm)))
        return cls(tuple(int(n) for n in ct_shape), tuple(float(s) for s in ct_spacing), tuple(shape))  # type: ignore[arg-type]

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Working spacing in mm: the CT's extent divided exactly into the working voxels."""
        return tuple(n * s / m for n, s, m in zip(self.ct_shape, self.ct_spacing, self.shape, strict=True))  # type: ignore[return-value]

    def ct_to_work_index(self, axis: int) -> np.ndarray:
        """For each CT index along ``axis``, the working index whose voxel contains its centre."""
        n_ct, n_w = self.ct_shape[axis], self.shape[axis]
        idx = ((np.arange(n_ct, dtype=np.float64) + 0.5) * n_w / n_ct).astype(np.int64)
        return np.clip(idx, 0, n_w - 1)

    def _linear_taps(self, axis: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Two CT indices and the weight of the second for each working voxel centre (linear interpolation)."""
        n_ct, n_w = self.ct_shape[axis], self.shape[axis]
        pos = (np.arange(n_w, dtype=np.float64) + 0.5) * n_ct / n_w - 0.5
        pos = np.clip(pos, 0.0, n_ct - 1.0)
        i0 = np.floor(pos).astype(np.int64)
        i1 = np.minimum(i0 + 1, n_ct - 1)
        return i0, i1, (pos - i0).astype(np.float32)

    def _reduce_axis(self, arr: np.ndarray, axis: int, order: int) -> np.ndarray:
        if arr.shape[axis] == self.shape[axis]:
            return arr
        if order == 0:
            centres = np.clip(
                ((np.arange(self.shape[axis]) + 0.5) * self.ct_shape[axis] / self.shape[axis]).astype(
                    np.int64
                ),
                0,
                self.ct_shape[axis] - 1,
            )
            return np.take(arr, centres, axis=axis)
        i0, i1, w = self._linear_taps(axis)
        shape = [1, 1, 1]
        shape[axis] = -1
        w = w.reshape(shape)
        a0 = np.take(arr, i0, axis=axis).astype(np.float32, copy=False)
        a1 = np.take(arr, i1, axis=axis).astype(np.float32, copy=False)
        return a0 + (a1 - a0) * w

    def from_ct(self, array: np.ndarray, order: int = 1) -> np.ndarray:
        """CT-grid array -> working grid: order 1 (linear, float32) for intensities and probabilities, order
        0 (nearest, dtype kept) for masks and labels. Works in z slabs to bound memory."""
        array = np.asarray(array)
        if array.shape != self.ct_shape:
            raise ValueError(f"array shape {array.shape} is not the CT shape {self.ct_shape}")
        if order not in (0, 1):
            raise ValueError(f"order must be 0 or 1, got {order}")
        dtype = array.dtype if order == 0 else np.float32
        inplane = np.empty((self.ct_shape[0], self.shape[1], self.shape[2]), dtype=dtype)
        for z0 in range(0, self.ct_shape[0], _SLAB_SLICES):
            slab = array[z0 : z0 + _SLAB_SLICES]
            slab = self._reduce_axis(self._reduce_axis(slab, 2, order), 1, order)
            inplane[z0 : z0 + _SLAB_SLICES] = slab
        return np.ascontiguousarray(self._reduce_axis(inplane, 0, order).astype(dtype, copy=False))

    def hu_from_ct(self, hu: np.ndarray) -> np.ndarray:
        """Clip scanner padding slab by slab (no full-size float copy), then reduce linearly: float32 HU."""
        hu = np.asarray(hu)
        if hu.shape != self.ct_shape:
            raise ValueError(f"HU shape {hu.shape} is not the CT shape {self.ct_shape}")
        inplane = np.empty((self.ct_shape[0], self.shape[1], self.shape[2]), dtype=np.float32)
        for z0 in range(0, self.ct_shape[0], _SLAB_SLICES):
            slab = np.clip(hu[z0 : z0 + _SLAB_SLICES].astype(np.float32), HU_AIR, HU_MAX)
            inplane[z0 : z0 + _SLAB_SLICES] = self._reduce_axis(self._reduce_axis(slab, 2, 1), 1, 1)
        return np.ascontiguousarray(self._reduce_axis(inplane, 0, 1), dtype=np.float32)

    def to_ct(self, array: np.ndarray) -> np.ndarray:
        """Working-grid array -> CT canonical grid by nearest neighbour; shape exactly ``ct_shape``."""
        array = np.asarray(array)
        if array.shape != self.shape:
            raise ValueError(f"array shape {array.shape} is not the working shape {self.shape}")
        out = array
        for axis in (0, 1, 2):  # grow one axis at a time, z first, so peak memory is about the output
            if self.shape[axis] != self.ct_shape[axis]:
                out = np.take(out, self.ct_to_work_index(axis), axis=axis)
        return np.ascontiguousarray(out) if out is not array else array.copy()
