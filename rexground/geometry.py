"""The one geometry convention of rexground, and the exact conversions to and from a file's raw array order.

Three orders exist for the same voxels; every module uses the names below and nothing else.

* **ITK index order** ``(i, j, k)``: SimpleITK's ``image.GetSize()``, ``GetSpacing()`` and the columns of the
  direction matrix. ``sitk.GetArrayFromImage`` returns the *reverse*, ``(k, j, i)``.
* **Raw array order** ``(i, j, k)``: the order a NIfTI file's data array has when read with nibabel, and the
  order of the challenge's masks: a mask of shape ``(F, H, W, D)`` has ``(H, W, D) == (ni, nj, nk)``.
  Submissions and container outputs are written in this order. ``raw = sitk_array.transpose()``.
* **Canonical order** ``(z, y, x)``: what every array inside the package (anatomy, engines, network) uses.
  Axis 0 runs inferior -> superior, axis 1 anterior -> posterior, axis 2 patient right -> patient left,
  i.e. the index axes of an LPS image with identity direction, stored z-first like SimpleITK's arrays.
  ``spacing_zyx`` is in millimetres in the same order.

Going from raw to canonical is a permutation of axes plus flips, picked from the direction matrix (each
index axis is assigned to the world axis it is closest to, as ``sitk.DICOMOrient`` does). No voxel is ever
interpolated, so ``to_raw(to_canonical(a)) == a`` bit for bit, for any direction matrix, oblique ones
included (an oblique axis is treated as its nearest world axis; the small tilt is ignored for anatomy,
never for the written output, which always keeps the file's own geometry).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

# World axes in LPS: 0 = x (towards patient Left), 1 = y (towards Posterior), 2 = z (towards Superior).
# Canonical array axis c holds world axis _CANONICAL_WORLD_AXES[c].
_CANONICAL_WORLD_AXES = (2, 1, 0)


@dataclass(frozen=True)
class Geometry:
    """Physical geometry of an image in ITK index order, as in its file header."""

    size: tuple[int, int, int]  # (ni, nj, nk)
    spacing: tuple[float, float, float]  # mm, (i, j, k)
    origin: tuple[float, float, float]  # LPS mm
    direction: tuple[float, ...]  # 3x3 row-major, columns are the i, j, k axes in LPS

    @classmethod
    def from_image(cls, image: sitk.Image) -> Geometry:
        if image.GetDimension() != 3:
            raise ValueError(f"expected a 3D image, got {image.GetDimension()}D")
        return cls(
            size=tuple(int(s) for s in image.GetSize()),
            spacing=tuple(float(s) for s in image.GetSpacing()),
            origin=tuple(float(o) for o in image.GetOrigin()),
            direction=tuple(float(d) for d in image.GetDirection()),
        )

    def apply_to(self, image: sitk.Image) -> sitk.Image:
        """Copy this geometry onto ``image`` (whose size must equal ours) and return it."""
        if tuple(image.GetSize()[:3]) != self.size:
            raise ValueError(f"image size {image.GetSize()} does not match geometry size {self.size}")
        image.SetSpacing(self.spacing)
        image.SetOrigin(self.origin)
        image.SetDirection(self.direction)
        return image

    @property
    def direction_matrix(self) -> np.ndarray:
        return np.asarray(self.direction, dtype=float).reshape(3, 3)

    @property
    def max_spacing_mm(self) -> float:
        return float(max(self.spacing))

    @property
    def orientation(self) -> Orientation:
        return Orientation.from_direction(self.direction_matrix)

    @property
    def canonical_shape(self) -> tuple[int, int, int]:
        o = self.orientation
        return tuple(self.size[a] for a in o.raw_axis_for_canonical)  # type: ignore[return-value]

    @property
    def canonical_spacing(self) -> tuple[float, float, float]:
        """Spacing in mm in canonical (z, y, x) order."""
        o = self.orientation
        return tuple(self.spacing[a] for a in o.raw_axis_for_canonical)  # type: ignore[return-value]

    def to_canonical(self, raw: np.ndarray) -> np.ndarray:
        """Raw-order array (..., ni, nj, nk) -> canonical (..., z, y, x). Leading axes (channels) are kept."""
        return self.orientation.to_canonical(raw)

    def to_raw(self, canonical: np.ndarray) -> np.ndarray:
        """Canonical (..., z, y, x) -> raw-order array (..., ni, nj, nk); exact inverse of ``to_canonical``."""
        return self.orientation.to_raw(canonical)


@dataclass(frozen=True)
class Orientation:
    """Axis permutation and flips between raw (i, j, k) and canonical (z, y, x) orders."""

    raw_axis_for_canonical: tuple[int, int, int]  # canonical axis c is raw axis raw_axis_for_canonical[c]
    flip: tuple[bool, bool, bool]  # flip canonical axis c after permuting

    @classmethod
    def from_direction(cls, direction: np.ndarray) -> Orientation:
        d = np.asarray(direction, dtype=float).reshape(3, 3)
        # Assign index axes to world axes greedily by the largest absolute cosine, so that a permuted or
        # slightly oblique direction matrix still yields a proper permutation.
        world_of_index = [-1, -1, -1]
        sign_of_index = [1.0, 1.0, 1.0]
        taken_world: set[int] = set()
        order = sorted(((abs(d[w, a]), a, w) for a in range(3) for w in range(3)), reverse=True)
        for _, a, w in order:
            if world_of_index[a] != -1 or w in taken_world:
                continue
            world_of_index[a] = w
            sign_of_index[a] = 1.0 if d[w, a] >= 0 else -1.0
            taken_world.add(w)
        raw_for_canonical = []
        flip = []
        for world_axis in _CANONICAL_WORLD_AXES:
            a = world_of_index.index(world_axis)
            raw_for_canonical.append(a)
            flip.append(sign_of_index[a] < 0)
        return cls(tuple(raw_for_canonical), tuple(flip))  # type: ignore[arg-type]

    def to_canonical(self, raw: np.ndarray) -> np.ndarray:
        lead = raw.ndim - 3
        if lead < 0:
            raise ValueError(f"expected at least 3 axes, got shape {raw.shape}")
        perm = list(range(lead)) + [lead + a for a in self.raw_axis_for_canonical]
        out = np.transpose(raw, perm)
        flip_axes = tuple(lead + c for c in range(3) if self.flip[c])
        if flip_axes:
            out = np.flip(out, axis=flip_axes)
        return np.ascontiguousarray(out)

    def to_raw(self, canonical: np.ndarray) -> np.ndarray:
        lead = canonical.ndim - 3
        if lead < 0:
            raise ValueError(f"expected at least 3 axes, got shape {canonical.shape}")
        flip_axes = tuple(lead + c for c in range(3) if self.flip[c])
        out = np.flip(canonical, axis=flip_axes) if flip_axes else canonical
        inverse = [0, 0, 0]
        for c, a in enumerate(self.raw_axis_for_canonical):
            inverse[a] = c
        perm = list(range(lead)) + [lead + c for c in inverse]
        return np.ascontiguousarray(np.transpose(out, perm))


def raw_array_from_image(image: sitk.Image) -> np.ndarray:
    """Pixel data of any-dimensional ``image`` in raw array order (ITK index order, as nibabel reads it)."""
    return sitk.GetArrayFromImage(image).transpose()


def image_from_raw_array(raw: np.ndarray) -> sitk.Image:
    """Inverse of :func:`raw_array_from_image`; geometry is left at defaults for the caller to set."""
    return sitk.GetImageFromArray(np.ascontiguousarray(np.asarray(raw).transpose()), isVector=False)
