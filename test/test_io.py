import gzip

import numpy as np
import pytest
import SimpleITK as sitk

from rexground.errors import InputFileError
from rexground.geometry import image_from_raw_array
from rexground.io import (
    atomic_path,
    clip_padding,
    read_ct,
    read_mask_raw,
    resample_zyx,
    write_channels,
    write_mask,
)

# Permuted and flipped: index i runs towards Superior, j towards Right (-x), k towards Posterior.
ODD_DIRECTION = (0, -1, 0, 0, 0, 1, 1, 0, 0)


def _ct_image(direction=(1, 0, 0, 0, 1, 0, 0, 0, 1), size=(12, 10, 8)):
    rng = np.random.default_rng(0)
    raw = rng.integers(-1000, 500, size=size).astype(np.int16)
    raw[0, 0, :] = -8192  # scanner padding
    image = image_from_raw_array(raw)
    image.SetSpacing((0.7, 0.8, 1.25))
    image.SetOrigin((-10.0, 20.0, -300.0))
    image.SetDirection(direction)
    return raw, image


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".mha", ".nrrd"])
@pytest.mark.parametrize("direction", [(1, 0, 0, 0, 1, 0, 0, 0, 1), ODD_DIRECTION])
def test_ct_round_trip_keeps_voxels_and_geometry(tmp_path, suffix, direction):
    raw, image = _ct_image(direction)
    path = tmp_path / f"ct{suffix}"
    sitk.WriteImage(image, str(path))
    ct = read_ct(path)
    assert np.array_equal(ct.geometry.to_raw(ct.hu), raw)
    assert ct.geometry.spacing == pytest.approx((0.7, 0.8, 1.25))
    assert ct.geometry.direction == pytest.approx(direction)
    back = ct.to_image()
    assert np.array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(image))
    assert back.GetOrigin() == pytest.approx(image.GetOrigin())


def test_dicom_series_round_trip(tmp_path):
    raw, image = _ct_image(size=(16, 14, 6))
    folder = tmp_path / "dicom"
    folder.mkdir()
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k in range(image.GetDepth()):
        sl = image[:, :, k]
        sl.SetMetaData("0020|0032", "\\".join(str(v) for v in image.TransformIndexToPhysicalPoint((0, 0, k))))
        sl.SetMetaData("0020|0013", str(k + 1))
        sl.SetMetaData("0020|000e", "1.2.826.0.1.3680043.2.1125.1.1")
        sl.SetMetaData("0028|0030", "0.8\\0.7")
        writer.SetFileName(str(folder / f"{k:03d}.dcm"))
        writer.Execute(sl)
    ct = read_ct(folder)
    assert ct.geometry.size == (16, 14, 6)
    assert np.array_equal(ct.geometry.to_raw(ct.hu), raw)
    assert ct.spacing_zyx[0] == pytest.approx(1.25, abs=1e-3)


def test_canonical_axes_point_superior_posterior_left(tmp_path):
    raw, image = _ct_image(ODD_DIRECTION)
    path = tmp_path / "ct.mha"
    sitk.WriteImage(image, str(path))
    ct = read_ct(path)
    # canonical axis 0 follows raw axis i (Superior), axis 1 raw k (Posterior), axis 2 raw j flipped (Left)
    assert ct.shape == (12, 8, 10)
    assert ct.hu[1, 2, 0] == raw[1, 9, 2]


def test_submission_layout_has_raw_shape_and_voxel_order(tmp_path):
    raw, image = _ct_image(ODD_DIRECTION)
    path = tmp_path / "ct.nii.gz"
    sitk.WriteImage(image, str(path))
    ct = read_ct(path)
    masks = np.zeros((2, *ct.shape), dtype=np.uint8)
    masks[0, 1, 2, 0] = 1  # one voxel; in raw order it is raw[1, 9, 2]
    masks[1, 3:5, :, 4] = 1
    out = write_channels(tmp_path / "sub.nii.gz", masks, ct.geometry)
    stored = read_mask_raw(out)
    assert stored.shape == (2, *raw.shape)
    assert stored.dtype == np.uint8
    assert stored[0].sum() == 1 and stored[0, 1, 9, 2] == 1
    assert np.array_equal(stored[1], ct.geometry.to_raw(masks[1]))


def test_write_mask_copies_ct_geometry(tmp_path):
    _, image = _ct_image(ODD_DIRECTION)
    ct_path = tmp_path / "ct.nrrd"
    sitk.WriteImage(image, str(ct_path))
    ct = read_ct(ct_path)
    mask = (ct.hu > 0).astype(bool)
    out = write_mask(tmp_path / "out" / "output.mha", mask, ct.geometry)
    back = sitk.ReadImage(str(out))
    assert back.GetPixelID() == sitk.sitkUInt8
    assert back.GetDirection() == pytest.approx(image.GetDirection())
    assert back.GetSpacing() == pytest.approx(image.GetSpacing())
    assert np.array_equal(read_mask_raw(out), ct.geometry.to_raw(mask.astype(np.uint8)))


def test_write_mask_rejects_wrong_shape_and_leaves_nothing(tmp_path):
    _, image = _ct_image()
    sitk.WriteImage(image, str(tmp_path / "ct.mha"))
    ct = read_ct(tmp_path / "ct.mha")
    with pytest.raises(ValueError, match="mask shape"):
        write_mask(tmp_path / "m.mha", np.zeros((3, 3, 3), np.uint8), ct.geometry)
    assert list(tmp_path.iterdir()) == [tmp_path / "ct.mha"]


def test_corrupt_missing_and_empty_files_are_named(tmp_path):
    bad = tmp_path / "bad.nii.gz"
    bad.write_bytes(gzip.compress(b"not a nifti at all" * 10))
    with pytest.raises(InputFileError, match=r"bad\.nii\.gz.*cannot be read"):
        read_ct(bad)
    with pytest.raises(InputFileError, match=r"missing\.mha: does not exist"):
        read_ct(tmp_path / "missing.mha")
    (tmp_path / "empty.mha").write_bytes(b"")
    with pytest.raises(InputFileError, match="empty"):
        read_ct(tmp_path / "empty.mha")
    (tmp_path / "nodicom").mkdir()
    with pytest.raises(InputFileError, match="no DICOM series"):
        read_ct(tmp_path / "nodicom")


def test_truncated_mha_names_the_real_problem(tmp_path):
    bad = tmp_path / "trunc.mha"
    bad.write_text(
        "ObjectType = Image\nNDims = 3\nDimSize = 4 4 4\nElementType = MET_SHORT\nElementDataFile = LOCAL\nxx"
    )
    with pytest.raises(InputFileError) as exc:
        read_ct(bad)
    message = str(exc.value)
    assert "trunc.mha" in message and "truncated: 2 of the 128 bytes" in message
    assert "No such file" not in message and "0x" not in message


def test_atomic_writes_get_ordinary_permissions(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "a.bin") as tmp:
            tmp.write_bytes(b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.bin").stat().st_mode & 0o777 == 0o644


def test_2d_image_is_not_a_ct(tmp_path):
    sitk.WriteImage(sitk.Image(8, 8, sitk.sitkInt16), str(tmp_path / "flat.mha"))
    with pytest.raises(InputFileError, match="must be 3D"):
        read_ct(tmp_path / "flat.mha")


def test_atomic_path_leaves_no_partial_file_on_error(tmp_path):
    target = tmp_path / "x.nii.gz"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("boom")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.nii.gz"]


def test_clip_padding_before_normalisation():
    hu = np.array([-8192, -2048, -1000, 40, 5000], dtype=np.int16)
    assert clip_padding(hu).tolist() == [-1024, -1024, -1000, 40, 3071]


def test_resample_and_back_restores_exact_shape_and_masks():
    rng = np.random.default_rng(3)
    mask = np.zeros((37, 41, 29), dtype=np.uint8)
    mask[10:25, 12:30, 5:20] = 1
    ct = rng.integers(-1000, 100, size=mask.shape).astype(np.int16)
    spacing = (1.25, 0.7, 0.7)
    small = resample_zyx(mask, spacing, (2.0, 2.0, 2.0), order=0)
    assert small.shape == (23, 14, 10)
    back = resample_zyx(small, (2.0, 2.0, 2.0), spacing, order=0, shape=mask.shape)
    assert back.shape == mask.shape and back.dtype == np.uint8
    assert (back == mask).mean() > 0.97  # nearest neighbour on a coarser grid: only the border moves
    ct_small = resample_zyx(ct, spacing, (2.0, 2.0, 2.0), order=1)
    assert ct_small.dtype == np.int16 and ct_small.shape == small.shape
    assert ct_small.min() >= -1000 and ct_small.max() <= 100
