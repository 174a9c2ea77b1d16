import itertools

import numpy as np
import pytest
import SimpleITK as sitk

from rexground.geometry import Geometry, image_from_raw_array, raw_array_from_image


def _direction(perm, signs):
    d = np.zeros((3, 3))
    for a, (w, s) in enumerate(zip(perm, signs, strict=True)):
        d[w, a] = s  # column a = direction of index axis a in LPS
    return tuple(d.ravel())


@pytest.mark.parametrize("perm", list(itertools.permutations(range(3))))
@pytest.mark.parametrize("signs", [(1, 1, 1), (-1, 1, -1), (1, -1, -1)])
def test_canonical_round_trip_is_exact_and_points_the_right_way(perm, signs):
    raw = np.random.default_rng(0).integers(-1000, 1000, size=(4, 5, 6)).astype(np.int16)
    image = image_from_raw_array(raw)
    image.SetDirection(_direction(perm, signs))
    image.SetSpacing((0.5, 0.7, 1.3))
    geom = Geometry.from_image(image)
    canon = geom.to_canonical(raw)
    assert np.array_equal(geom.to_raw(canon), raw)
    # Canonical axis 0 must run inferior->superior, 1 anterior->posterior, 2 right->left in world space.
    for c, world_axis in enumerate((2, 1, 0)):
        lo = [0, 0, 0]
        hi = [0, 0, 0]
        hi[c] = canon.shape[c] - 1
        # find raw indices of these canonical voxels by matching values through a unique-id volume
        ids = np.arange(raw.size).reshape(raw.shape)
        cid = geom.to_canonical(ids)
        p_lo = image.TransformIndexToPhysicalPoint([int(v) for v in np.unravel_index(cid[tuple(lo)], raw.shape)])
        p_hi = image.TransformIndexToPhysicalPoint([int(v) for v in np.unravel_index(cid[tuple(hi)], raw.shape)])
        assert p_hi[world_axis] > p_lo[world_axis]
    assert geom.canonical_spacing == tuple(geom.spacing[a] for a in geom.orientation.raw_axis_for_canonical)


def test_raw_array_matches_itk_index_order_for_4d():
    raw = np.arange(2 * 3 * 4 * 5, dtype=np.uint8).reshape(2, 3, 4, 5)
    image = image_from_raw_array(raw)
    assert image.GetSize() == (2, 3, 4, 5)
    assert image.GetPixel(1, 2, 3, 4) == raw[1, 2, 3, 4]
    assert np.array_equal(raw_array_from_image(image), raw)


def test_channel_axes_pass_through():
    raw = np.random.default_rng(1).integers(0, 2, size=(3, 4, 5, 6)).astype(np.uint8)
    image = image_from_raw_array(raw[0])
    image.SetDirection(_direction((1, 2, 0), (-1, 1, -1)))
    geom = Geometry.from_image(image)
    canon = geom.to_canonical(raw)
    assert canon.shape[0] == 3
    for f in range(3):
        assert np.array_equal(canon[f], geom.to_canonical(raw[f]))
    assert np.array_equal(geom.to_raw(canon), raw)


def test_sitk_file_round_trip_keeps_raw_order(tmp_path):
    raw = np.random.default_rng(2).integers(0, 3, size=(4, 5, 6)).astype(np.uint8)
    image = image_from_raw_array(raw)
    sitk.WriteImage(image, str(tmp_path / "a.nii.gz"))
    assert np.array_equal(raw_array_from_image(sitk.ReadImage(str(tmp_path / "a.nii.gz"))), raw)
