"""The 1c emphysema rule on a hand-built chest: low-attenuation lung, not the dark band at the lung's edge."""

from __future__ import annotations

import numpy as np
from rule_phantoms import FakeAnatomy, ellipsoid_mm, make_chest, predict
from scipy import ndimage


def test_low_attenuation_lung_not_the_dark_rim_along_the_heart_border():
    c = make_chest()
    laa = c.lung_right & ellipsoid_mm(c.shape, c.spacing, (115.0, 60.0, 50.0), (9.0, 9.0, 9.0))
    c.hu[laa] = -985.0
    c.targets["laa"] = laa
    # Issue 13: on the bundled example emphysema was answered along the heart border: the kernel's undershoot
    # next to a dense edge reads below -950 HU in a band a voxel or two wide along the lung's boundary.
    lungs = FakeAnatomy(c).lungs
    rim = lungs & ~ndimage.binary_erosion(lungs, iterations=1)
    c.hu[rim] = -1000.0
    pred = predict(c, ["Centrilobular emphysema in both upper lobes."], noise_hu=25.0)[0]
    m = pred.mask > 0
    assert pred.info["rule"] == "emphysema"
    assert (m & laa).sum() > 0.5 * laa.sum()
    assert (m & rim).sum() < 0.05 * m.sum()


def test_noisy_normal_lung_is_not_emphysema():
    c = make_chest()
    pred = predict(c, ["Emphysema in both lungs."], noise_hu=45.0)[0]
    ml = (pred.mask > 0).sum() * np.prod(c.spacing) / 1000.0
    assert ml < 1.0, f"{ml:.2f} mL of noise answered as emphysema"
