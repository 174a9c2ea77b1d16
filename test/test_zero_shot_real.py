"""The zero-shot engine on real CTs, against the targets of issue 5 (slow: anatomy on full CTs)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rexground.engines.zero_shot import ZeroShotEngine
from rexground.io import read_ct, read_mask_raw

pytestmark = pytest.mark.slow


def _predict(case_dir, text):
    meta = json.loads((case_dir / "case.json").read_text())
    ct = read_ct(case_dir / meta["ct"])
    pred = ZeroShotEngine(keep_score=False).predict(ct, [text])[0]
    assert "rule_error" not in pred.info
    assert pred.mask.shape == ct.shape and pred.mask.dtype == np.uint8
    return ct, meta, pred.mask > 0, pred.info


def test_large_hilar_mass_matches_the_expert_contour(real_ct_dir):
    case = real_ct_dir / "nsclc-lung1-001"
    ct, _, mask, info = _predict(case, "Large mass in the left upper lobe extending to the left hilum.")
    gt = ct.geometry.to_canonical(read_mask_raw(case / "gtv.nii.gz")) > 0
    dice = 2 * (mask & gt).sum() / (mask.sum() + gt.sum())
    assert info["rule"] == "mass" and info["fallback"] == "none"
    assert dice >= 0.7, f"Dice {dice:.3f} with the GTV"


def test_perihilar_mass_stays_inside_the_radiologist_box(real_ct_dir):
    case = real_ct_dir / "lungpetctdx-a0002"
    ct, _, mask, _ = _predict(case, "Right perihilar mass extending into the right lower lobe.")
    box = ct.geometry.to_canonical(read_mask_raw(case / "tumor_bbox.nii.gz")) > 0
    inside = (mask & box).sum() / mask.sum()
    dense = box & (ct.hu > -300)
    covered = (mask & dense).sum() / dense.sum()
    assert inside >= 0.9, f"only {inside:.3f} of the prediction inside the box"
    # The box also holds mediastinum (which is not the mass); the lung part of the tumour must be found.
    assert covered >= 0.3, f"only {covered:.3f} of the box's dense voxels covered"


def test_ground_glass_lies_on_the_labelled_lobe_slices_and_side(real_ct_dir):
    case = real_ct_dir / "covidctmd-p001"
    ct, meta, mask, info = _predict(case, "Patchy ground-glass opacities in the right lower lobe.")
    on_slices = np.isin(np.arange(ct.shape[0]), meta["lobe_slices_z"]["RLL"])[:, None, None]
    right = (np.arange(ct.shape[2]) < ct.shape[2] / 2)[None, None, :]  # canonical x: patient right first
    frac = (mask & on_slices & right).sum() / mask.sum()
    assert info["rule"] == "ground_glass"
    assert (mask & right).sum() / mask.sum() >= 0.99
    # Issue 5's target; measured 0.862 (the dependent hypoventilation band along the back and the
    # diaphragm no longer makes patches of its own).
    assert frac >= 0.85, f"only {frac:.3f} of the prediction on RLL-labelled slices on the right"
