"""Nothing wrong gets through silently: truncated, padded or corrupt image files, incomplete DICOM series and
NaN voxels are refused with one line naming the file and the problem, on every format rexground reads."""

from __future__ import annotations

import gzip
import logging
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from hypothesis import given, settings
from hypothesis import strategies as st

from rexground.errors import InputFileError
from rexground.geometry import image_from_raw_array
from rexground.io import read_ct, read_image_raw, read_mask_raw

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "rexground" / "resources" / "example" / "ct.nii.gz"
EXAMPLE_BYTES = EXAMPLE.read_bytes()


def refused(path: Path, *fragments: str, read=read_ct, named: Path | None = None) -> str:
    """The one-line problem ``read`` raises for ``path``; it names the file at fault (``named``, default
    ``path``) and holds every fragment."""
    with pytest.raises(InputFileError) as exc:
        read(path)
    message = str(exc.value)
    assert "\n" not in message and str(named or path) in message, message
    for fragment in fragments:
        assert fragment in message, message
    return message


# --- the bundled example, cut anywhere ---------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(cut=st.integers(min_value=1, max_value=len(EXAMPLE_BYTES) - 1))
def test_the_example_cut_anywhere_is_refused(tmp_path_factory, cut):
    path = tmp_path_factory.mktemp("cut") / "ct.nii.gz"
    path.write_bytes(EXAMPLE_BYTES[:cut])
    refused(path, "truncated")


@pytest.mark.parametrize("cut", ["1", "header only", "size-8", "size-1", "half"])
def test_the_example_cut_at_the_edges_is_refused_with_what_can_be_known(tmp_path, cut):
    size = len(EXAMPLE_BYTES)
    path = tmp_path / "ct.nii.gz"
    if cut == "header only":  # a complete gzip stream holding the 352-byte header and no pixel data
        path.write_bytes(gzip.compress(gzip.decompress(EXAMPLE_BYTES)[:352]))
        refused(path, "truncated: its gzip stream is complete but holds 352 of the 5,570,912 bytes")
        return
    n = {"1": 1, "size-8": size - 8, "size-1": size - 1, "half": size // 2}[cut]
    path.write_bytes(EXAMPLE_BYTES[:n])
    message = refused(
        path, f"truncated: the gzip stream ends after {n:,} bytes without its end-of-stream marker"
    )
    if cut in ("size-8", "size-1"):  # every pixel came through, only the CRC32/ISIZE trailer did not
        assert "held 5,570,912 of the 5,570,912 bytes its NIfTI header describes" in message


def test_the_example_reads_exactly_as_simpleitk_reads_it():
    ct = read_ct(EXAMPLE)
    image = sitk.ReadImage(str(EXAMPLE))
    assert np.array_equal(ct.geometry.to_raw(ct.hu), sitk.GetArrayFromImage(image).transpose())
    assert ct.geometry.spacing == pytest.approx(image.GetSpacing())
    assert ct.geometry.direction == pytest.approx(image.GetDirection())
    assert ct.geometry.origin == pytest.approx(image.GetOrigin())


# --- gzip streams ------------------------------------------------------------------------------------------


def test_crc_isize_and_corrupt_data_are_refused(tmp_path):
    path = tmp_path / "ct.nii.gz"
    data = bytearray(EXAMPLE_BYTES)
    data[-8] ^= 0xFF  # CRC32 of the trailer
    path.write_bytes(bytes(data))
    refused(path, "corrupt", "CRC32 mismatch")
    data = bytearray(EXAMPLE_BYTES)
    data[-1] ^= 0x01  # ISIZE, the length mod 2^32
    path.write_bytes(bytes(data))
    refused(path, "corrupt", "ISIZE (length) mismatch")
    data = bytearray(EXAMPLE_BYTES)
    data[len(data) // 2] ^= 0xFF  # a flipped byte inside the deflate data
    path.write_bytes(bytes(data))
    refused(path, "corrupt")


def test_multi_member_gzip_and_zero_padding_read_garbage_after_the_stream_is_refused(tmp_path):
    raw = gzip.decompress(EXAMPLE_BYTES)
    expected = read_ct(EXAMPLE).hu
    path = tmp_path / "ct.nii.gz"
    path.write_bytes(
        gzip.compress(raw[:1000]) + gzip.compress(raw[1000:3_000_000]) + gzip.compress(raw[3_000_000:])
    )
    assert np.array_equal(read_ct(path).hu, expected)
    path.write_bytes(EXAMPLE_BYTES + b"\0" * 100)  # padding, as some copy tools leave it
    assert np.array_equal(read_ct(path).hu, expected)
    path.write_bytes(EXAMPLE_BYTES + b"PK\3\4")
    refused(path, "not gzip data follow the end of its gzip stream")
    path.write_bytes(gzip.compress(raw[:1000]) + gzip.compress(raw[1000:-10]))  # complete members, short data
    refused(path, "holds 5,570,902 of the 5,570,912 bytes its NIfTI header describes")
    path.write_bytes(gzip.compress(raw + b"extra"))
    refused(path, "holds more than the 5,570,912 bytes its NIfTI header describes")
    path.write_bytes(raw)  # not compressed at all, under a .nii.gz name: read as the plain NIfTI it is
    assert np.array_equal(read_ct(path).hu, expected)
    path.write_bytes(raw[:-100])  # ... and checked as one
    refused(path, "truncated: 5,570,812 of the 5,570,912 bytes its NIfTI header describes")
    path.write_bytes(b"\x1f\x8b" + raw[2:])  # gzip magic, then no gzip stream
    refused(path, "corrupt: gzip data error")


# --- pixel data exactly as long as the header says, every format -------------------------------------------


def _image(dtype=np.int16, size=(12, 10, 8)):
    raw = np.random.default_rng(0).integers(-1000, 1000, size=size).astype(dtype)
    image = image_from_raw_array(raw)
    image.SetSpacing((0.7, 0.8, 1.25))
    return raw, image


def _write(image, path: Path, compress: bool) -> Path:
    sitk.WriteImage(image, str(path), useCompression=compress)
    return path


def _cut(path: Path, n: int) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:n] if n > 0 else data + b"\0" * -n)


@pytest.mark.parametrize(
    ("name", "compress", "data_file"),
    [
        ("ct.nii", False, None),
        ("ct.mha", False, None),
        ("ct.mha", True, None),
        ("ct.mhd", False, "ct.raw"),
        ("ct.mhd", True, "ct.zraw"),
        ("ct.nrrd", False, None),
        ("ct.nrrd", True, None),
        ("ct.nhdr", True, "ct.raw.gz"),
        ("ct.nhdr", False, "ct.raw"),
    ],
)
def test_short_and_long_pixel_data_is_refused_in_every_format(tmp_path, name, compress, data_file):
    raw, image = _image()
    path = _write(image, tmp_path / name, compress)
    assert np.array_equal(read_mask_raw(path), raw)  # sound files read, exactly
    target = tmp_path / data_file if data_file else path
    good = target.read_bytes()
    target.write_bytes(good[: len(good) - 7])
    refused(path, "truncated", named=target)
    target.write_bytes(good + (b"\0" * 16 if not compress else b"\x01" * 16))
    refused(path, "corrupt", named=target)
    if data_file:
        target.unlink()
        refused(path, f"its data file {data_file} does not exist")


def test_a_big_endian_nifti_reads_as_simpleitk_reads_it(tmp_path):
    """A hand-made big-endian NIfTI-1 (int16, 5 x 4 x 3): the fast path swaps bytes like ITK."""
    values = np.arange(60, dtype=">i2").reshape(3, 4, 5)  # C order (k, j, i): i fastest in the file
    header = bytearray(348)
    struct.pack_into(">i", header, 0, 348)
    struct.pack_into(">8h", header, 40, 3, 5, 4, 3, 1, 1, 1, 1)
    struct.pack_into(">hh", header, 70, 4, 16)
    struct.pack_into(">8f", header, 76, 1, 0.5, 0.6, 2.0, 1, 1, 1, 1)
    struct.pack_into(">f", header, 108, 352.0)
    struct.pack_into(">f", header, 112, 1.0)
    header[344:348] = b"n+1\0"
    path = tmp_path / "be.nii.gz"
    path.write_bytes(gzip.compress(bytes(header) + b"\0" * 4 + values.tobytes()))
    raw, head = read_image_raw(path)
    expected = sitk.ReadImage(str(path))
    assert np.array_equal(raw, sitk.GetArrayFromImage(expected).transpose())
    assert (
        raw.dtype == np.int16 and raw.dtype.isnative and head.spacing == pytest.approx(expected.GetSpacing())
    )


@pytest.mark.parametrize(
    ("name", "make"),
    [
        (
            "mask4d.nii.gz",
            lambda: image_from_raw_array(
                np.eye(4, dtype=np.uint8)[:, :, None, None] * np.ones((4, 4, 3, 2), np.uint8)
            ),
        ),
        (
            "vector.mha",
            lambda: sitk.GetImageFromArray(np.arange(72, dtype=np.uint8).reshape(2, 3, 4, 3), isVector=True),
        ),
        ("float.nii.gz", lambda: _image(np.float32)[1]),
        ("scaled.nii.gz", None),
    ],
)
def test_every_decoded_layout_equals_simpleitk(tmp_path, name, make):
    path = tmp_path / name
    if make is None:  # scl_slope / scl_inter: ITK rescales to float; the read is left to it (after the check)
        raw, image = _image()
        sitk.WriteImage(image, str(tmp_path / "plain.nii"))
        data = bytearray((tmp_path / "plain.nii").read_bytes())
        struct.pack_into("<ff", data, 112, 1.0, -1024.0)
        path.write_bytes(gzip.compress(bytes(data)))
    else:
        sitk.WriteImage(make(), str(path), useCompression=True)
    raw, header = read_image_raw(path)
    expected = sitk.ReadImage(str(path))
    reference = sitk.GetArrayFromImage(expected).transpose()
    assert raw.dtype == reference.dtype and np.array_equal(raw, reference)
    assert header.size == expected.GetSize() and header.components == expected.GetNumberOfComponentsPerPixel()


# --- NaN and infinity ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".nii.gz", ".mha", ".nrrd"])
def test_nan_voxels_are_an_error_for_a_ct_and_refuse_a_mask(tmp_path, suffix):
    raw, _ = _image(np.float32)
    raw[2, 3, 5] = np.nan
    raw[4, 4, 6] = np.inf
    image = image_from_raw_array(raw)
    image.SetSpacing((0.7, 0.8, 1.25))
    path = _write(image, tmp_path / f"ct{suffix}", True)
    refused(path, "has 2 NaN or infinite voxel value(s) in 2 of 8 slices (the first at raw index k = 5)",
            "finite HU")  # fmt: skip
    refused(path, "a mask must hold finite values", read=read_mask_raw)


# --- DICOM series: missing, duplicate and unevenly spaced slices ---------------------------------------------


def _dicom_series(folder: Path, z_mm: list[float]) -> np.ndarray:
    raw = np.random.default_rng(1).integers(-1000, 500, size=(16, 14, len(z_mm))).astype(np.int16)
    folder.mkdir()
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k, z in enumerate(z_mm):
        sl = image_from_raw_array(raw[:, :, k])
        sl.SetSpacing((0.7, 0.8))
        for tag, value in (("0020|0032", f"-10\\20\\{z}"), ("0020|0037", "1\\0\\0\\0\\1\\0"), ("0020|0013", str(k + 1)),
                           ("0020|000e", "1.2.826.0.1.3680043.2.1125.1.2"), ("0028|0030", "0.8\\0.7"),
                           ("0008|0018", f"1.2.826.0.1.3680043.2.1125.2.{k}")):  # fmt: skip
            sl.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"{k:03d}.dcm"))
        writer.Execute(sl)
    return raw


def test_a_complete_even_series_reads(tmp_path):
    raw = _dicom_series(tmp_path / "s", [0.0, 1.25, 2.5, 3.75, 5.0, 6.25])
    ct = read_ct(tmp_path / "s")
    assert np.array_equal(ct.geometry.to_raw(ct.hu), raw) and ct.spacing_zyx[0] == pytest.approx(1.25)


def test_a_missing_slice_is_named(tmp_path):
    _dicom_series(tmp_path / "s", [0.0, 1.25, 2.5, 3.75, 5.0, 6.25, 7.5])
    (tmp_path / "s" / "003.dcm").unlink()
    refused(tmp_path / "s", "slice 4 of 7 missing")


def test_a_duplicate_slice_is_refused_even_with_resampling(tmp_path):
    _dicom_series(tmp_path / "s", [0.0, 1.25, 2.5, 2.5, 3.75, 5.0])
    refused(tmp_path / "s", "duplicate slice: 002.dcm and 003.dcm are both at 2.500 mm")
    with pytest.raises(InputFileError, match="duplicate"):
        read_ct(tmp_path / "s", uneven_slices="resample")


def test_uneven_slices_are_refused_or_resampled_only_on_request_with_a_warning(tmp_path, caplog):
    raw = _dicom_series(tmp_path / "s", [0.0, 1.0, 2.0, 3.4, 4.0, 5.0])
    refused(tmp_path / "s", "uneven slice spacing: 0.600 to 1.400 mm", "only on request")
    with caplog.at_level(logging.WARNING):
        ct = read_ct(tmp_path / "s", uneven_slices="resample")
    assert "resampled onto 1.000 mm slices" in caplog.text
    assert ct.spacing_zyx[0] == pytest.approx(1.0) and ct.shape[0] == 6
    resampled = ct.geometry.to_raw(ct.hu)
    assert np.array_equal(resampled[:, :, :3], raw[:, :, :3]) and np.array_equal(
        resampled[:, :, 4:], raw[:, :, 4:]
    )
    between = np.rint(raw[:, :, 2] + (raw[:, :, 3].astype(float) - raw[:, :, 2]) * (1.0 / 1.4))
    assert np.array_equal(resampled[:, :, 3], between.astype(np.int16))  # 3.0 mm lies 1/1.4 of the way up


# --- writing: a full disk or a file-size limit never leaves a file under its name -------------------------------

_WRITE_UNDER_LIMIT = """
import resource, sys
import numpy as np
from rexground.errors import OutputFileError
from rexground.geometry import Geometry
from rexground.io import write_channels
resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000))
masks = (np.random.default_rng(0).random((3, 64, 64, 64)) > 0.5).astype(np.uint8)
geometry = Geometry((64, 64, 64), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
try:
    write_channels(sys.argv[1], masks, geometry)
except OutputFileError as exc:
    print(exc)
    raise SystemExit(3)
"""


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".mha", ".nrrd"])
def test_a_write_that_hits_a_file_size_limit_is_an_error_and_leaves_nothing(tmp_path, suffix):
    out = tmp_path / "out"
    out.mkdir()
    (out / "earlier.nii.gz").write_bytes(EXAMPLE_BYTES)
    done = subprocess.run([sys.executable, "-c", _WRITE_UNDER_LIMIT, str(out / f"scan{suffix}")],
                          capture_output=True, text=True, cwd=REPO)  # fmt: skip
    assert done.returncode == 3, done.stderr[-2000:]
    message = done.stdout.strip()
    assert "\n" not in message and f"scan{suffix}" in message
    assert "not written completely" in message or "cannot be written" in message
    assert sorted(p.name for p in out.iterdir()) == ["earlier.nii.gz"]  # no partial file, no temporary
    assert (out / "earlier.nii.gz").read_bytes() == EXAMPLE_BYTES


def test_a_half_submission_file_is_unreadable_not_an_empty_channel(tmp_path):
    """Half of a correct (F, H, W, D) submission file: SimpleITK alone reads it as a file whose last channel
    is empty; it must be refused as truncated."""
    from rexground.dataset import DatasetEntry
    from rexground.submission import validate_submission

    rng = np.random.default_rng(3)
    masks = np.zeros((3, 64, 64, 48), np.uint8)
    for c in range(3):  # speckled lesions: the compressed stream spreads over every channel
        masks[c, 8 + 16 * c : 24 + 16 * c, 10:50, 5:40] = rng.random((16, 40, 35)) < 0.5
    path = tmp_path / "sub" / "train_1_a_1.nii.gz"
    path.parent.mkdir()
    sitk.WriteImage(image_from_raw_array(masks), str(path), useCompression=True)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    entry = DatasetEntry(name=path.name, findings={"0": "a", "1": "b", "2": "c"}, shape=(64, 64, 48))
    problems = validate_submission([entry], pred_dir=path.parent)
    assert [p.kind for p in problems] == ["unreadable"] and "truncated" in problems[0].detail


def test_copies_of_real_cts_are_refused_when_cut(real_ct_dir, tmp_path):
    """A real CT (the first one in ../shared) cut to 90% of its length."""
    source = sorted(real_ct_dir.glob("*/ct.nii.gz"))[0]
    path = tmp_path / "ct.nii.gz"
    with source.open("rb") as src, path.open("wb") as dst:
        shutil.copyfileobj(src, dst)
    path.write_bytes(path.read_bytes()[: int(path.stat().st_size * 0.9)])
    refused(path, "truncated: the gzip stream ends after")
