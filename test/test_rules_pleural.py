"""The 2e effusion rule on hand-built chests: dependent water behind the lung, not the chest wall's rim, not
fluid-density tissue in front of the lung, and a small answer when there is no effusion."""

from __future__ import annotations

import numpy as np
import pytest
from rule_phantoms import FakeAnatomy, dice, ellipsoid_mm, make_chest, predict

ML = 1000.0


def chest_with_effusion():
    c = make_chest()
    y = (np.arange(c.shape[1]) + 0.5) * c.spacing[1]
    right = c.lung_right.copy()
    effusion = right & (y[None, :, None] >= 82.0)  # the dependent (posterior) part of the right cavity
    c.hu[effusion] = 12.0
    c.targets["effusion"] = effusion
    c.lung_right = right & ~effusion
    # In front of the left lung, fluid-density tissue (a pericardial fat pad, a collapsed lingula, fluid in
    # the pericardium): aerated lung lies behind it, so it is not free pleural fluid.
    front = c.lung_left & ellipsoid_mm(c.shape, c.spacing, (70.0, 22.0, 120.0), (15.0, 8.0, 14.0))
    c.hu[front] = 12.0
    c.targets["front"] = front
    c.lung_left = c.lung_left & ~front
    # Between the ribs, beside the lungs, a band at water density (fat and muscle averaging out): it lies at
    # the ribs' depth, in the chest wall.
    ring = ellipsoid_mm(c.shape, c.spacing, (75.0, 60.0, 130.0), (66.0, 48.0, 38.0)) & ~ellipsoid_mm(
        c.shape, c.spacing, (75.0, 60.0, 130.0), (62.0, 44.0, 34.0)
    )
    band = ring & (c.hu < 100.0) & c.body
    c.hu[band] = 12.0
    c.targets["wall"] = band
    return c


@pytest.fixture(scope="module")
def chest():
    return chest_with_effusion()


def test_the_dependent_effusion_is_found_on_the_named_side(chest):
    pred = predict(chest, ["Moderate right pleural effusion."])[0]
    assert pred.info["rule"] == "pleural_effusion"
    assert dice(pred.mask, chest.targets["effusion"]) > 0.7


def test_fluid_in_front_of_the_lung_and_the_chest_wall_rim_are_not_an_effusion(chest):
    pred = predict(chest, ["Left pleural effusion."])[0]
    m = pred.mask > 0
    assert not (m & chest.targets["front"]).any()
    # The phantom's ribs are rings on an ellipsoid, oblique at its poles: most of the band is chest wall.
    assert (m & chest.targets["wall"]).sum() < 0.2 * chest.targets["wall"].sum()
    ml = m.sum() * np.prod(chest.spacing) / ML
    assert ml <= 20.0, f"{ml:.1f} mL answered where there is no effusion"


def test_no_effusion_answers_a_few_ml_in_the_dependent_recess():
    c = make_chest()
    pred = predict(c, ["Bilateral pleural effusions."])[0]
    m = pred.mask > 0
    ml = m.sum() * np.prod(c.spacing) / ML
    assert 0 < ml <= 20.0, ml
    ys = np.argwhere(m)[:, 1] * c.spacing[1]
    assert ys.mean() > 60.0  # behind the middle of the chest: dependent, the patient lies supine
    assert (m & FakeAnatomy(c).lungs).sum() == 0
