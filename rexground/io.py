"""CT and mask reading and writing that never loses geometry (SimpleITK: NIfTI, MHA, NRRD, DICOM series).

Arrays come out in the canonical (z, y, x) order of :mod:`rexground.geometry`; masks go back in the CT file's
own geometry (container output) or in its raw array order (challenge submission). Every write is atomic:
a temporary file beside the target is renamed over it only once it is complete.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from rexground.errors import InputFileError
from rexground.geometry import Geometry, image_from_raw_array, raw_array_from_image

IMAGE_SUFFIXES = (".nii.gz", ".nii", ".mha", ".mhd", ".nrrd", ".nhdr")
# Below this everything is scanner padding or outside the field of view (-8192, -3024, -2048 are common);
# air is -1000, so clipping here changes no tissue value.
HU_FLOOR = -1024.0
HU_CEIL = 3071.0


def image_suffix(path: str | Path) -> str:
    name = Path(path).name.lower()
    for suffix in IMAGE_SUFFIXES:
        if name.endswith(suffix):
            return suffix
    return Path(path).suffix.lower()


@dataclass
class CTVolume:
    """A CT in canonical (z, y, x) order with the geometry of the file it came from."""

    hu: np.ndarray  # canonical (z, y, x), dtype as stored (usually int16); padding not clipped
    geometry: Geometry
    path: Path | None = None

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.hu.shape)  # type: ignore[return-value]

    @property
    def spacing_zyx(self) -> tuple[float, float, float]:
        return self.geometry.canonical_spacing

    def hu_clipped(self) -> np.ndarray:
        """float32 copy with scanner padding and values below air set to -1024 HU."""
        return clip_padding(self.hu)

    @classmethod
    def from_image(cls, image: sitk.Image, path: str | Path | None = None) -> CTVolume:
        geometry = Geometry.from_image(image)
        return cls(geometry.to_canonical(raw_array_from_image(image)), geometry, Path(path) if path else None)

    def to_image(self) -> sitk.Image:
        """The CT as a SimpleITK image in its file's raw order and geometry."""
        return self.geometry.apply_to(image_from_raw_array(self.geometry.to_raw(self.hu)))


def clip_padding(hu: np.ndarray) -> np.ndarray:
    """Clip scanner padding (-8192, -2048, ...) and implausible highs before any normalisation."""
    return np.clip(np.asarray(hu, dtype=np.float32), HU_FLOOR, HU_CEIL)


def _read_image(path: Path) -> sitk.Image:
    if not path.exists():
        raise InputFileError(path, "does not exist")
    if path.is_dir():
        return _read_dicom_series(path)
    if path.stat().st_size == 0:
        raise InputFileError(path, "is empty (0 bytes)")
    try:
        return sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise InputFileError(
            path, f"cannot be read as an image (corrupt, truncated or unsupported format): {_itk_reason(exc)}"
        ) from exc


def _itk_reason(exc: RuntimeError) -> str:
    """The informative line of an ITK exception, without source locations, object addresses or the stale
    errno text ("Reason: No such file or directory") that ITK appends to unrelated read failures."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for line in lines:
        if "ERROR" in line:
            reason = re.sub(r"^.*?ERROR:\s*(?:\w+\(0x[0-9a-f]+\):\s*)?", "", line)
            return reason or "unknown reader error"
    return lines[-1] if lines else "unknown reader error"


def _read_dicom_series(folder: Path) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    series_ids = reader.GetGDCMSeriesIDs(str(folder))
    if not series_ids:
        raise InputFileError(folder, "is a folder but holds no DICOM series")
    # Several series in one folder (scouts, reconstructions): take the one with the most slices.
    files = max((reader.GetGDCMSeriesFileNames(str(folder), sid) for sid in series_ids), key=len)
    if len(files) < 2:
        raise InputFileError(folder, f"DICOM series has {len(files)} slice(s); a CT needs at least 2")
    reader.SetFileNames(files)
    try:
        return reader.Execute()
    except RuntimeError as exc:
        raise InputFileError(folder, f"DICOM series cannot be read: {str(exc).strip()[-200:]}") from exc


def read_ct(path: str | Path) -> CTVolume:
    """Read a CT from a NIfTI/MHA/NRRD file or a DICOM series folder into canonical order."""
    path = Path(path)
    image = _read_image(path)
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputFileError(path, f"has {image.GetNumberOfComponentsPerPixel()} components per voxel; a CT has 1")
    if image.GetDimension() == 4 and image.GetSize()[3] == 1:
        image = image[:, :, :, 0]
    if image.GetDimension() != 3:
        raise InputFileError(path, f"is {image.GetDimension()}D with size {image.GetSize()}; a CT must be 3D")
    if min(image.GetSize()) < 2:
        raise InputFileError(path, f"has size {image.GetSize()}; a CT needs at least 2 voxels on every axis")
    if any(s <= 0 or not np.isfinite(s) for s in image.GetSpacing()):
        raise InputFileError(path, f"has an invalid voxel spacing {image.GetSpacing()}")
    return CTVolume.from_image(image, path)


def read_image_raw(path: str | Path) -> tuple[np.ndarray, sitk.Image]:
    """Any image as stored: (raw-order array, the SimpleITK image for its header)."""
    path = Path(path)
    image = _read_image(path)
    return raw_array_from_image(image), image


def read_mask_raw(path: str | Path) -> np.ndarray:
    """A mask (3D, or (F, H, W, D) for submissions and challenge labels) in raw order, exactly as stored."""
    return read_image_raw(path)[0]


@contextlib.contextmanager
def atomic_path(final_path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``final_path`` (same suffix, so writers pick the same format) and
    rename it over ``final_path`` only if the block succeeds; otherwise the temporary file is removed."""
    final_path = Path(final_path)
    final_path.parent.mkdir(parents=True, exist_ok=True)
    suffix = image_suffix(final_path) or final_path.suffix
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final_path.name}.", suffix=f".tmp{suffix}", dir=final_path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # mkstemp creates 0600; give the file the permissions a plain open() would (0666 less the umask),
        # so outputs stay readable by the platform's other users (a container's /output, shared folders).
        os.chmod(tmp, 0o666 & ~_current_umask())
        os.replace(tmp, final_path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _write_image(image: sitk.Image, path: Path) -> None:
    with atomic_path(path) as tmp:
        sitk.WriteImage(image, str(tmp), useCompression=True)


def _as_binary_uint8(mask: np.ndarray) -> np.ndarray:
    """0/1 uint8 view of any mask (bool, labels, probabilities already thresholded by the caller)."""
    mask = np.asarray(mask)
    if mask.dtype == np.uint8 and mask.max(initial=0) <= 1:
        return mask
    return (mask != 0).astype(np.uint8)


def write_mask(path: str | Path, mask_zyx: np.ndarray, geometry: Geometry) -> Path:
    """Write one 3D 0/1 uint8 mask (canonical order) with the CT's own geometry, e.g. ``output.mha``."""
    path = Path(path)
    mask_zyx = np.asarray(mask_zyx)
    if mask_zyx.shape != geometry.canonical_shape:
        raise ValueError(f"{path}: mask shape {mask_zyx.shape} != CT canonical shape {geometry.canonical_shape}")
    raw = geometry.to_raw(_as_binary_uint8(mask_zyx))
    _write_image(geometry.apply_to(image_from_raw_array(raw)), path)
    return path


def write_channels(path: str | Path, masks_fzyx: np.ndarray, geometry: Geometry, binary: bool = True) -> Path:
    """Write (F, z, y, x) canonical masks as one (F, ni, nj, nk) uint8 file in the CT's raw array order with an
    identity header: the challenge's submission and label layout (its evaluator ignores the affine)."""
    path = Path(path)
    masks_fzyx = np.asarray(masks_fzyx)
    if masks_fzyx.ndim != 4 or masks_fzyx.shape[1:] != geometry.canonical_shape:
        raise ValueError(
            f"{path}: masks shape {masks_fzyx.shape} is not (F, *{geometry.canonical_shape}) for this CT"
        )
    data = _as_binary_uint8(masks_fzyx) if binary else masks_fzyx.astype(np.uint8)
    _write_image(image_from_raw_array(geometry.to_raw(data)), path)
    return path


def write_vector_mask(path: str | Path, masks_fzyx: np.ndarray, geometry: Geometry) -> Path:
    """(F, z, y, x) masks as one 3D image with F uint8 components per voxel and the CT's geometry (MHA/NRRD
    keep both): the container's ``output.mha``. Read back with ``read_mask_raw`` it is (F, ni, nj, nk),
    like the submission layout."""
    path = Path(path)
    masks_fzyx = np.asarray(masks_fzyx)
    if masks_fzyx.ndim != 4 or masks_fzyx.shape[1:] != geometry.canonical_shape:
        raise ValueError(f"{path}: masks shape {masks_fzyx.shape} is not (F, *{geometry.canonical_shape})")
    raw = geometry.to_raw(_as_binary_uint8(masks_fzyx))  # (F, ni, nj, nk)
    # SimpleITK's vector array order is (nk, nj, ni, components).
    image = sitk.GetImageFromArray(np.ascontiguousarray(raw.transpose(3, 2, 1, 0)), isVector=True)
    _write_image(geometry.apply_to(image), path)
    return path


# Output layouts of several findings' masks (one finding is always a 3D mask with the CT's geometry).
SEVERAL_LAYOUTS = {"channels": "channels-first-raw", "vector": "vector-components"}
SINGLE_LAYOUT = "mask-3d"


def write_masks(
    path: str | Path, masks_fzyx: np.ndarray, geometry: Geometry, several: str = "channels"
) -> tuple[Path, str]:
    """Write the (F, z, y, x) masks of one CT's findings; returns the path and the layout name written.

    One finding: a 3D mask with the CT's own geometry (``write_mask``). Several: ``several="channels"``,
    the (F, ni, nj, nk) submission layout (``write_channels``), or ``"vector"``, F components per voxel with
    the CT's geometry (``write_vector_mask``, the container's output)."""
    masks_fzyx = np.asarray(masks_fzyx)
    if several not in SEVERAL_LAYOUTS:
        raise ValueError(f"unknown layout {several!r} for several findings ({' | '.join(SEVERAL_LAYOUTS)})")
    if masks_fzyx.ndim == 4 and len(masks_fzyx) == 1:
        return write_mask(path, masks_fzyx[0], geometry), SINGLE_LAYOUT
    writer = write_channels if several == "channels" else write_vector_mask
    return writer(path, masks_fzyx, geometry), SEVERAL_LAYOUTS[several]


def write_json(path: str | Path, document: object) -> Path:
    """Write a JSON document (indented, newline-terminated) atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return path


def resample_zyx(
    array: np.ndarray,
    spacing_zyx: tuple[float, float, float],
    new_spacing_zyx: tuple[float, float, float],
    order: int = 1,
    shape: tuple[int, int, int] | None = None,
) -> np.ndarray:
    """Resample a canonical array to a new spacing (order 1 for CT, 0 for masks). ``shape`` forces the output
    shape, which is how an array goes back exactly onto its original grid. Voxel edges stay aligned
    (grid_mode), so a round trip does not drift by half a voxel."""
    array = np.asarray(array)
    if shape is None:
        shape = tuple(
            max(1, round(n * s / t)) for n, s, t in zip(array.shape, spacing_zyx, new_spacing_zyx, strict=True)
        )
    if tuple(shape) == array.shape:
        return array.copy()
    factors = [o / i for o, i in zip(shape, array.shape, strict=True)]
    out_dtype = array.dtype
    work = array if order == 0 or array.dtype.kind == "f" else array.astype(np.float32)
    out = ndimage.zoom(work, factors, order=order, mode="nearest", grid_mode=True, prefilter=False)
    if out.shape != tuple(shape):  # zoom rounds; pad or crop the last voxel so the shape is exact
        out = _fit_shape(out, tuple(shape))
    if order != 0 and out_dtype.kind in "iu":
        info = np.iinfo(out_dtype)
        out = np.clip(np.rint(out), info.min, info.max)
    return out.astype(out_dtype, copy=False)


def _fit_shape(array: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    slices = tuple(slice(0, min(a, s)) for a, s in zip(array.shape, shape, strict=True))
    cropped = array[slices]
    pad = [(0, s - c) for c, s in zip(cropped.shape, shape, strict=True)]
    return np.pad(cropped, pad, mode="edge") if any(p[1] for p in pad) else cropped
