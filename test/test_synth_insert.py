"""Synthetic lesions in real-looking CTs: thick slices and partial-volume spheres."""

from __future__ import annotations

import numpy as np
import pytest

from rexground.synth.insert import insert_lesion, lung_site, sphere_fraction, thick_slices


def test_thick_slices_average_the_slabs_and_keep_the_extent():
    hu = np.arange(20, dtype=np.int16).repeat(4).reshape(20, 2, 2) * 10  # z = 0, 10, 20, ... HU
    out, sp = thick_slices(hu, (1.0, 0.7, 0.7), 5.0)
    assert out.shape == (4, 2, 2) and sp == (5.0, 0.7, 0.7)
    np.testing.assert_array_equal(out[:, 0, 0], [20, 70, 120, 170])  # means of 0..40, 50..90, ...
    out3, sp3 = thick_slices(hu, (1.0, 0.7, 0.7), 3.0)
    assert out3.shape[0] * sp3[0] == pytest.approx(20.0)


def test_a_sphere_has_its_volume_and_partial_volume():
    spacing = (2.5, 0.8, 0.8)
    _, frac = sphere_fraction((40, 80, 80), spacing, (50.0, 32.0, 32.0), 14.0)
    vol = frac.sum() * np.prod(spacing)
    assert vol == pytest.approx(np.pi / 6 * 14.0**3, rel=0.02)
    assert 0 < frac.min() < 1 or frac.max() == 1  # edge voxels are fractions


def test_solid_and_ground_glass_insertion():
    hu = np.full((30, 60, 60), -850, np.int16)
    hu[:, 30, :] = 40  # a vessel through the lesion
    solid, m = insert_lesion(hu, (1.0, 1.0, 1.0), (15.0, 30.0, 30.0), 12.0, noise_hu=0.0)
    assert m.sum() == pytest.approx(np.pi / 6 * 12**3, rel=0.05)
    assert abs(float(solid[15, 25, 30]) - 30.0) < 1.0
    gg, _ = insert_lesion(hu, (1.0, 1.0, 1.0), (15.0, 30.0, 30.0), 12.0, kind="ground-glass", noise_hu=0.0)
    assert gg[15, 25, 30] == -700 and gg[15, 30, 30] == 40  # the vessel stays visible through ground glass
    with pytest.raises(ValueError, match="kind"):
        insert_lesion(hu, (1.0, 1.0, 1.0), (15.0, 30.0, 30.0), 12.0, kind="cavitary")


def test_lung_site_avoids_the_vessel_and_the_surface():
    hu = np.full((40, 40, 40), -850, np.int16)
    hu[:, 20, 10:30] = 40
    lungs = np.ones(hu.shape, bool)
    lungs[:, :, :5] = False
    c = lung_site(hu, (1.0, 1.0, 1.0), lungs, lungs, 8.0, margin_mm=2.0)
    assert abs(c[1] - 20.5) > 4.0 and c[2] - 5.0 >= 4.0 + 2.0 - 0.5  # radius + margin from the surface
    with pytest.raises(ValueError, match="no place"):
        lung_site(hu, (1.0, 1.0, 1.0), lungs, lungs, 60.0)
