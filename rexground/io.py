"""CT and mask reading and writing that never loses geometry (SimpleITK: NIfTI, MHA, NRRD, DICOM series).

Arrays come out in the canonical (z, y, x) order of :mod:`rexground.geometry`; masks go back in the CT file's
own geometry (container output) or in its raw array order (challenge submission). Every read is checked first
(:mod:`rexground.integrity`: complete compressed streams, pixel data as long as the header says; here: DICOM
series without missing, duplicate or uneven slices, no NaN or infinite voxels). Every write is atomic: a
temporary file beside the target is renamed over it only once it is complete and has passed the same check.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from rexground.errors import InputFileError, OutputFileError
from rexground.geometry import Geometry, image_from_raw_array, raw_array_from_image
from rexground.integrity import Pixels, check_image_file, verified_pixels

IMAGE_SUFFIXES = (".nii.gz", ".nii", ".mha", ".mhd", ".nrrd", ".nhdr")
# Below this everything is scanner padding or outside the field of view (-8192, -3024, -2048 are common);
# air is -1000, so clipping here changes no tissue value.
HU_FLOOR = -1024.0
HU_CEIL = 3071.0

log = logging.getLogger(__name__)


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


@dataclass(frozen=True)
class ImageHeader:
    """What an image file's header says, in ITK index order (as SimpleITK reports it)."""

    size: tuple[int, ...]
    spacing: tuple[float, ...]
    origin: tuple[float, ...]
    direction: tuple[float, ...]  # row-major dimension x dimension
    components: int  # values per voxel
    dtype: np.dtype | None  # of one component; None for types numpy has no plain dtype for

    @property
    def dimension(self) -> int:
        return len(self.size)

    @classmethod
    def of(cls, source: sitk.Image | sitk.ImageFileReader) -> ImageHeader:
        """The header of an image, or of a reader after ``ReadImageInformation``."""
        components = (
            source.GetNumberOfComponentsPerPixel()
            if isinstance(source, sitk.Image)
            else source.GetNumberOfComponents()
        )
        return cls(
            size=tuple(int(s) for s in source.GetSize()),
            spacing=tuple(float(s) for s in source.GetSpacing()),
            origin=tuple(float(o) for o in source.GetOrigin()),
            direction=tuple(float(d) for d in source.GetDirection()),
            components=int(components),
            dtype=_PIXEL_DTYPES.get(source.GetPixelID()),
        )

    def geometry_3d(self) -> Geometry:
        """The geometry of a 3D image (or of the first volume of a 4D one: its first three axes)."""
        n = self.dimension
        direction = np.asarray(self.direction, dtype=float).reshape(n, n)[:3, :3]
        return Geometry(
            size=self.size[:3],  # type: ignore[arg-type]
            spacing=self.spacing[:3],  # type: ignore[arg-type]
            origin=self.origin[:3],  # type: ignore[arg-type]
            direction=tuple(float(d) for d in direction.ravel()),
        )


_PIXEL_DTYPES: dict[int, np.dtype] = {
    pixel_id: np.dtype(dtype)
    for ids, dtype in (
        ((sitk.sitkUInt8, sitk.sitkVectorUInt8), np.uint8),
        ((sitk.sitkInt8, sitk.sitkVectorInt8), np.int8),
        ((sitk.sitkUInt16, sitk.sitkVectorUInt16), np.uint16),
        ((sitk.sitkInt16, sitk.sitkVectorInt16), np.int16),
        ((sitk.sitkUInt32, sitk.sitkVectorUInt32), np.uint32),
        ((sitk.sitkInt32, sitk.sitkVectorInt32), np.int32),
        ((sitk.sitkUInt64, sitk.sitkVectorUInt64), np.uint64),
        ((sitk.sitkInt64, sitk.sitkVectorInt64), np.int64),
        ((sitk.sitkFloat32, sitk.sitkVectorFloat32), np.float32),
        ((sitk.sitkFloat64, sitk.sitkVectorFloat64), np.float64),
    )
    for pixel_id in ids
}

UnevenSlices = Literal["refuse", "resample"]


def _read_raw(path: Path, uneven_slices: UnevenSlices = "refuse") -> tuple[np.ndarray, ImageHeader]:
    """Any image file (or DICOM series folder), integrity-checked: (raw-order array, header).

    The file is checked before its voxels are believed (:mod:`rexground.integrity`); gzip NIfTI and
    compressed MetaImage are decompressed once, by that check, and the array is built from its output with
    the geometry SimpleITK reads from the header. Everything else is read by SimpleITK after the check."""
    if not path.exists():
        raise InputFileError(path, "does not exist")
    if path.is_dir():
        image = _read_dicom_series(path, uneven_slices)
        return raw_array_from_image(image), ImageHeader.of(image)
    if path.stat().st_size == 0:
        raise InputFileError(path, "is empty (0 bytes)")
    pixels = verified_pixels(path)
    if pixels is not None:
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        try:
            reader.ReadImageInformation()
        except RuntimeError as exc:
            raise _unreadable(path, exc) from exc
        header = ImageHeader.of(reader)
        raw = _raw_from_pixels(pixels, header)
        if raw is not None:
            return raw, header
        del pixels  # not what ITK makes of the file (rare): ITK reads it, without a second copy held
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise _unreadable(path, exc) from exc
    return raw_array_from_image(image), ImageHeader.of(image)


def _raw_from_pixels(pixels: Pixels, header: ImageHeader) -> np.ndarray | None:
    """The raw-order array of pixel data decoded in file order, or None when it is not what SimpleITK would
    make of the file (another pixel type or voxel count: the reader then falls back to SimpleITK)."""
    count = int(np.prod(header.size)) * header.components
    if (
        header.dtype != pixels.data.dtype
        or header.components != pixels.components
        or count != pixels.data.size
    ):
        return None
    # File order is index i fastest: in C order that is the reversed size (components last), which is
    # exactly SimpleITK's array layout; the raw order is its transpose, as raw_array_from_image gives.
    shape = tuple(reversed(header.size)) + ((header.components,) if header.components > 1 else ())
    return pixels.data.reshape(shape).transpose()


def _unreadable(path: Path, exc: RuntimeError) -> InputFileError:
    return InputFileError(
        path, f"cannot be read as an image (corrupt, truncated or unsupported format): {_itk_reason(exc)}"
    )


def _non_finite_problem(raw: np.ndarray, what: str) -> str | None:
    """A description of the NaN or infinite values of a float array (checked slab by slab along the last raw
    axis, which is contiguous), or None when every value is finite."""
    if raw.dtype.kind not in "fc":
        return None
    bad_slices, count = [], 0
    step = 16
    for k0 in range(0, raw.shape[-1], step):
        finite = np.isfinite(raw[..., k0 : k0 + step])
        if not finite.all():
            per_slice = np.count_nonzero(~finite.reshape(-1, finite.shape[-1]), axis=0)
            bad_slices += [k0 + int(k) for k in np.flatnonzero(per_slice)]
            count += int(per_slice.sum())
    if not count:
        return None
    return (
        f"has {count:,} NaN or infinite voxel value(s) in {len(bad_slices)} of {raw.shape[-1]} slices "
        f"(the first at raw index k = {bad_slices[0]}); {what}"
    )


def _itk_reason(exc: RuntimeError) -> str:
    """The informative line of an ITK exception, without source locations, object addresses or the stale
    errno text ("Reason: No such file or directory") that ITK appends to unrelated read failures."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for line in lines:
        if "ERROR" in line:
            reason = re.sub(r"^.*?ERROR:\s*(?:\w+\(0x[0-9a-f]+\):\s*)?", "", line)
            return reason or "unknown reader error"
    return lines[-1] if lines else "unknown reader error"


def _read_dicom_series(folder: Path, uneven_slices: UnevenSlices = "refuse") -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    series_ids = reader.GetGDCMSeriesIDs(str(folder))
    if not series_ids:
        raise InputFileError(folder, "is a folder but holds no DICOM series")
    # Several series in one folder (scouts, reconstructions): take the one with the most slices.
    files = max((reader.GetGDCMSeriesFileNames(str(folder), sid) for sid in series_ids), key=len)
    if len(files) < 2:
        raise InputFileError(folder, f"DICOM series has {len(files)} slice(s); a CT needs at least 2")
    reader.SetFileNames(files)
    reader.MetaDataDictionaryArrayUpdateOn()  # each slice's position, for the completeness check
    try:
        image = reader.Execute()
    except RuntimeError as exc:
        raise InputFileError(folder, f"DICOM series cannot be read: {str(exc).strip()[-200:]}") from exc
    corners = _slice_positions(folder, reader, image)
    # Distance of each slice along the volume's slice axis (the direction's third column).
    positions = corners @ np.asarray(image.GetDirection()).reshape(3, 3)[:, 2]
    spacing, problem = _series_problem(positions, files)
    if problem is None:
        return image
    if problem.startswith("duplicate") or uneven_slices != "resample":
        hint = "" if problem.startswith("duplicate") else " (resample onto even slices only on request)"
        raise InputFileError(folder, f"DICOM series is not a complete, evenly spaced volume: {problem}{hint}")
    log.warning("%s: %s; resampled onto %.3f mm slices as requested", folder, problem, spacing)
    return _resample_slices(image, corners, positions, spacing)


def _slice_positions(folder: Path, reader: sitk.ImageSeriesReader, image: sitk.Image) -> np.ndarray:
    """Each slice's Image Position (Patient) (mm, LPS), in the series reader's order."""
    try:
        return np.array(
            [
                [float(v) for v in reader.GetMetaData(k, "0020|0032").split("\\")[:3]]
                for k in range(image.GetDepth())
            ]
        ).reshape(-1, 3)
    except (RuntimeError, ValueError):
        raise InputFileError(
            folder, "DICOM series lacks Image Position (Patient) on some slices: its slice order is unknown"
        ) from None


def _series_problem(positions: np.ndarray, files: tuple[str, ...]) -> tuple[float, str | None]:
    """(slice spacing in mm, what is wrong with the slice positions or None). The spacing is the median
    distance between neighbours; a gap of about k spacings is k - 1 missing slices."""
    order = np.argsort(positions, kind="stable")
    pos = positions[order]
    steps = np.diff(pos)
    duplicate = np.flatnonzero(steps < 1e-3)
    if duplicate.size:
        a, b = order[duplicate[0]], order[duplicate[0] + 1]
        return 0.0, (
            f"duplicate slice: {Path(files[a]).name} and {Path(files[b]).name} are both at {pos[duplicate[0]]:.3f} mm"
        )
    spacing = float(np.median(steps))
    tolerance = max(0.01, 0.01 * spacing)  # scanners write positions with sub-micron jitter
    uneven = np.abs(steps - spacing) > tolerance
    if not uneven.any():
        return spacing, None
    multiples = steps / spacing
    gaps = np.rint(multiples)
    if np.all(np.abs(multiples - gaps)[uneven] <= tolerance / spacing) and np.all(gaps >= 1):
        total = int(gaps.sum()) + 1
        index = np.concatenate([[0], np.cumsum(gaps)]).astype(int)  # 0-based slot of each present slice
        missing = sorted(set(range(total)) - set(index.tolist()))
        shown = ", ".join(str(m + 1) for m in missing[:5]) + (" ..." if len(missing) > 5 else "")
        return spacing, (
            f"slice{'s' if len(missing) > 1 else ''} {shown} of {total} missing "
            f"({len(positions)} files, {spacing:.3f} mm apart)"
        )
    k = int(np.flatnonzero(uneven)[0])
    return spacing, (
        f"uneven slice spacing: {steps.min():.3f} to {steps.max():.3f} mm between neighbouring slices "
        f"(median {spacing:.3f} mm; first at {Path(files[order[k]]).name})"
    )


def _resample_slices(
    image: sitk.Image, corners: np.ndarray, positions: np.ndarray, spacing: float
) -> sitk.Image:
    """Linear interpolation of the slices onto evenly spaced ones ``spacing`` mm apart, from the first to the
    last along the volume's slice axis (``positions``: each slice's distance along it)."""
    order = np.argsort(positions, kind="stable")
    pos = positions[order]
    volume = sitk.GetArrayFromImage(image)[order]  # (k, j, i), slices in position order
    n = round((pos[-1] - pos[0]) / spacing) + 1
    targets = pos[0] + spacing * np.arange(n)
    upper = np.clip(np.searchsorted(pos, targets, side="right"), 1, len(pos) - 1)
    lower = upper - 1
    weight = np.clip((targets - pos[lower]) / (pos[upper] - pos[lower]), 0.0, 1.0)
    out = np.empty((n, *volume.shape[1:]), dtype=volume.dtype)
    for t in range(n):
        mixed = volume[lower[t]] * (1.0 - weight[t]) + volume[upper[t]] * weight[t]
        out[t] = np.rint(mixed) if volume.dtype.kind in "iu" else mixed
    resampled = sitk.GetImageFromArray(out)
    resampled.SetSpacing((*image.GetSpacing()[:2], spacing))
    resampled.SetDirection(image.GetDirection())
    resampled.SetOrigin(tuple(float(v) for v in corners[order[0]]))  # the first slice's corner
    return resampled


def read_ct(path: str | Path, uneven_slices: UnevenSlices = "refuse") -> CTVolume:
    """Read a CT from a NIfTI/MHA/NRRD file or a DICOM series folder into canonical order, after checking the
    file's integrity. A DICOM series with missing, duplicate or unevenly spaced slices is refused unless
    ``uneven_slices="resample"`` (then it is resampled onto even slices, with a warning; duplicates are always
    refused). NaN or infinite voxels are an error."""
    path = Path(path)
    raw, header = _read_raw(path, uneven_slices)
    if header.components != 1:
        raise InputFileError(path, f"has {header.components} components per voxel; a CT has 1")
    if header.dimension == 4 and header.size[3] == 1:
        raw = raw[..., 0]
    elif header.dimension != 3:
        raise InputFileError(path, f"is {header.dimension}D with size {header.size}; a CT must be 3D")
    if min(header.size[:3]) < 2:
        raise InputFileError(path, f"has size {header.size}; a CT needs at least 2 voxels on every axis")
    if any(s <= 0 or not np.isfinite(s) for s in header.spacing[:3]):
        raise InputFileError(path, f"has an invalid voxel spacing {header.spacing}")
    problem = _non_finite_problem(raw, "a CT must hold finite HU values")
    if problem:
        raise InputFileError(path, problem)
    geometry = header.geometry_3d()
    return CTVolume(geometry.to_canonical(raw), geometry, path)


def read_image_raw(path: str | Path) -> tuple[np.ndarray, ImageHeader]:
    """Any image as stored, integrity-checked: (raw-order array, its header)."""
    return _read_raw(Path(path))


def read_mask(path: str | Path) -> tuple[np.ndarray, ImageHeader]:
    """A mask (3D, (F, H, W, D) for submissions and challenge labels, or F components per voxel) in raw order,
    exactly as stored, with its header, after checking the file's integrity. A mask with NaN or infinite
    values is refused."""
    path = Path(path)
    raw, header = _read_raw(path)
    problem = _non_finite_problem(raw, "a mask must hold finite values")
    if problem:
        raise InputFileError(path, problem)
    return raw, header


def read_mask_raw(path: str | Path) -> np.ndarray:
    """:func:`read_mask` without the header."""
    return read_mask(path)[0]


# errno values that can only mean the output side failed (caught inside ``atomic_path`` blocks, which also
# read their inputs: a read error must stay what it is).
_WRITE_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EROFS}
_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.[A-Za-z0-9_]+\.tmp")


@contextlib.contextmanager
def atomic_path(final_path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``final_path`` (same suffix, so writers pick the same format) and
    rename it over ``final_path`` only if the block succeeds; otherwise the temporary file is removed. A
    folder that cannot be written, a full disk or a file-size limit is an :class:`OutputFileError`."""
    final_path = Path(final_path)
    suffix = image_suffix(final_path) or final_path.suffix
    try:
        final_path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{final_path.name}.", suffix=f".tmp{suffix}", dir=final_path.parent
        )
    except OSError as exc:
        raise OutputFileError(final_path, f"cannot be written: {exc.strerror or exc}") from exc
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # mkstemp creates 0600; give the file the permissions a plain open() would (0666 less the umask),
        # so outputs stay readable by the platform's other users (a container's /output, shared folders).
        os.chmod(tmp, 0o666 & ~_current_umask())
        os.replace(tmp, final_path)
    except OSError as exc:
        if exc.errno in _WRITE_ERRNOS:
            raise OutputFileError(final_path, f"cannot be written: {exc.strerror}") from exc
        raise
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def temporary_of(path: str | Path) -> str | None:
    """The final file name a leftover temporary of :func:`atomic_path` was for (a run killed mid-write
    leaves one), or None when ``path`` is not such a temporary."""
    match = _TEMPORARY.match(Path(path).name)
    return match["name"] if match else None


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_image(image: sitk.Image, path: str | Path) -> Path:
    """Write ``image`` (compressed) atomically and check the written file before it gets its name: ITK's
    NIfTI writer reports no error when the disk fills or a file-size limit is hit, it leaves a truncated
    file, which the integrity check refuses."""
    path = Path(path)
    with atomic_path(path) as tmp:
        try:
            sitk.WriteImage(image, str(tmp), useCompression=True)
        except RuntimeError as exc:
            raise OutputFileError(path, f"cannot be written: {_itk_write_reason(exc)}") from exc
        try:
            check_image_file(tmp)
        except InputFileError as exc:
            state = exc.problem.split(":")[0]  # "truncated" or "corrupt"
            raise OutputFileError(
                path,
                f"was not written completely: {tmp.stat().st_size:,} bytes reached the disk and they are {state} "
                "(is the disk full, or a file-size limit set?)",
            ) from exc
    return path


def _itk_write_reason(exc: RuntimeError) -> str:
    """The cause of an ITK write failure: its "Reason:" line (the errno text), else the last message line."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for line in lines:
        if line.startswith("Reason:"):
            return line.removeprefix("Reason:").strip()
    return lines[-1].removeprefix("[nrrd]").strip() if lines else "unknown writer error"


def _write_image(image: sitk.Image, path: Path) -> None:
    write_image(image, path)


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
        raise ValueError(
            f"{path}: mask shape {mask_zyx.shape} != CT canonical shape {geometry.canonical_shape}"
        )
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
            max(1, round(n * s / t))
            for n, s, t in zip(array.shape, spacing_zyx, new_spacing_zyx, strict=True)
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
