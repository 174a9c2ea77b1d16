"""The 2d nodule rule on hand-built chests: thick slices, textures, plural sentences, vessels and the wall."""

from __future__ import annotations

import numpy as np
import pytest
from rule_phantoms import FakeAnatomy, dice, make_chest, predict, tube_mm

from rexground.engines.rules.blobs import Peak, _eigen_ratio
from rexground.metrics import evaluate_case


@pytest.fixture(scope="module")
def fine_chest():
    return make_chest(spacing=(1.0, 1.5, 1.5))


def test_a_14mm_nodule_on_5mm_slices_is_found_not_the_apex(fine_chest):
    # Issue 13: a 14 mm solid nodule in the posterior right upper lobe of a 5 mm-slice CT was missed for a
    # partial-volume blob at the apex. Thick slices blur the lung's dome and the vessels' ends at the apex.
    chest = make_chest(spacing=(1.0, 1.5, 1.5))
    chest.insert("nodule", (105.0, 80.0, 45.0), 14.0)
    thick = chest.resliced(5.0)
    pred = predict(thick, ["Nodule in the right upper lobe."])[0]
    assert pred.info["rule"] == "nodule" and pred.info["fallback"] == "none"
    assert dice(pred.mask, thick.targets["nodule"]) > 0.6


def test_the_texture_words_choose_ground_glass_or_solid():
    chest = make_chest()
    chest.insert("ggn", (60.0, 60.0, 130.0), 30.0, kind="ground-glass")  # -700 HU, vessels seen through it
    chest.insert("solid", (110.0, 55.0, 140.0), 9.0)
    gg, solid = predict(chest, ["Ground-glass nodule in the left lung.", "Solid nodule in the left lung."])
    assert gg.info["texture"] == "ground-glass" and dice(gg.mask, chest.targets["ggn"]) > 0.6
    assert solid.info["texture"] == "solid" and dice(solid.mask, chest.targets["solid"]) > 0.6


def test_a_plural_sentence_answers_every_nodule_a_singular_one_the_largest():
    chest = make_chest()
    for i, (c, d) in enumerate(
        (((100.0, 80.0, 50.0), 12.0), ((50.0, 40.0, 40.0), 8.0), ((80.0, 75.0, 120.0), 10.0))
    ):
        chest.insert(f"n{i}", c, d)
    plural, single = predict(chest, ["Pulmonary nodules in both lungs.", "Nodule in the right lung."])
    gt = np.zeros(chest.shape, np.uint8)
    for i in range(3):
        gt[chest.targets[f"n{i}"]] = i + 1
    res = evaluate_case(gt, plural.mask, categories=["2d"]).findings[0]
    assert res.tp == 3 and res.dice > 0.6, res
    assert dice(single.mask, chest.targets["n0"]) > 0.6  # the larger of the two right nodules


def test_a_vessel_branching_is_not_a_nodule():
    # Issue 13: "Nodule in the right lower lobe" on a CT without one answered a vessel cross-section. A branching
    # (three tubes meeting) and a vessel's end at the pleura are the blob-like parts of a vessel tree.
    chest = make_chest(vessels=False)
    for p1 in ((40.0, 40.0, 40.0), (40.0, 80.0, 60.0), (80.0, 60.0, 25.0)):
        chest.hu[tube_mm(chest.shape, chest.spacing, (60.0, 60.0, 50.0), p1, 2.5) & chest.cavity] = 40.0
    chest.insert("nodule", (110.0, 60.0, 55.0), 6.0)
    pred = predict(chest, ["Nodule in the right lung."])[0]
    assert dice(pred.mask, chest.targets["nodule"]) > 0.5
    chest.hu[chest.targets.pop("nodule")] = -860.0
    pred = predict(chest, ["Nodule in the right lung."])[0]
    best = pred.info["chosen"][0]
    assert best["score"] < 0.5, best  # no convincing nodule: the answer says so
    assert pred.mask.sum() * np.prod(chest.spacing) / 1000.0 < 1.0  # and is small


def test_eigen_ratio_tells_a_sphere_from_a_tube():
    shape, sp = (40, 40, 40), np.array([1.0, 1.0, 1.0])
    from rule_phantoms import ellipsoid_mm

    ball = ellipsoid_mm(shape, sp, (20.0, 20.0, 20.0), (5.0, 5.0, 5.0)).astype(np.float32)
    tube = tube_mm(shape, sp, (0.0, 20.0, 20.0), (40.0, 20.0, 20.0), 2.5).astype(np.float32)
    assert _eigen_ratio(ball * 800, Peak((19, 19, 19), 10.0, 1.0), sp) > 0.8
    assert _eigen_ratio(tube * 800, Peak((19, 19, 19), 5.0, 1.0), sp) < 0.15


def test_fake_anatomy_has_what_the_rules_read(fine_chest):
    anat = FakeAnatomy(fine_chest)
    assert anat.lungs.any() and anat.pleural_envelope.any() and set(np.unique(anat.lobes)) >= {1, 3, 4, 6}
