"""Anatomy on the real CTs beside the checkout (slow): expert lung contours, tumour and lobe labels."""

from __future__ import annotations

import json
import tracemalloc

import numpy as np
import pytest

from rexground.anatomy import LOBE_LABELS, compute_anatomy
from rexground.geometry import Geometry
from rexground.io import CTVolume, read_ct, read_mask_raw

pytestmark = pytest.mark.slow


def dice(a, b):
    return 2.0 * np.logical_and(a, b).sum() / max(1, a.sum() + b.sum())


@pytest.fixture(scope="module")
def lung1(real_ct_dir):
    d = real_ct_dir / "nsclc-lung1-001"
    ct = read_ct(d / "ct.nii.gz")
    return d, ct, compute_anatomy(ct)


def test_lungs_match_the_expert_contours(lung1):
    d, ct, anat = lung1
    for side, mask in (("left", anat.lung_left), ("right", anat.lung_right)):
        gt = ct.geometry.to_canonical(read_mask_raw(d / f"lung_{side}.nii.gz")) > 0
        pred = anat.to_ct_grid(mask)
        assert pred.shape == ct.shape
        assert dice(pred, gt) >= 0.96, side


def test_the_hilar_tumour_is_inside_the_left_lung_envelope_and_upper_lobe(lung1):
    d, ct, anat = lung1
    gtv = ct.geometry.to_canonical(read_mask_raw(d / "gtv.nii.gz")) > 0
    env = anat.to_ct_grid(anat.lung_envelope_left)
    assert (env & gtv).sum() >= 0.95 * gtv.sum()
    assert (anat.to_ct_grid(anat.lung_envelope_right) & gtv).sum() == 0
    lobes = anat.to_ct_grid(anat.lobes)[gtv]
    assert np.isin(lobes, [LOBE_LABELS["LUL"], LOBE_LABELS["lingula"]]).mean() > 0.8
    # the envelope adds the tumour, not the heart: little beyond lungs and tumour
    gt_l = ct.geometry.to_canonical(read_mask_raw(d / "lung_left.nii.gz")) > 0
    extra = env & ~gt_l & ~gtv
    assert extra.sum() < 0.1 * gt_l.sum()


def test_lobe_model_agrees_with_the_per_slice_lobe_labels(real_ct_dir):
    d = real_ct_dir / "covidctmd-p001"
    ct = read_ct(d / "ct.nii.gz")
    anat = compute_anatomy(ct)
    case = json.loads((d / "case.json").read_text())
    lobes = anat.to_ct_grid(anat.lobes)
    for lobe in ("RLL", "RML", "RUL"):
        slices = case["lobe_slices_z"][lobe]
        present = [bool((lobes[z] == LOBE_LABELS[lobe]).any()) for z in slices]
        assert all(present), lobe
    z = np.arange(lobes.shape[0])[:, None, None]
    mean_z = {k: float((z * (lobes == v)).sum() / (lobes == v).sum()) for k, v in LOBE_LABELS.items()}
    assert mean_z["RUL"] > mean_z["RML"] > mean_z["RLL"]
    assert mean_z["LUL"] > mean_z["lingula"]
    # on the slices labelled RUL the upper lobe is most of the right lung, on the RLL ones the lower lobe
    # is present on every slice (checked above) and the upper lobe is not
    rul_slices = lobes[case["lobe_slices_z"]["RUL"]]
    assert (rul_slices == LOBE_LABELS["RUL"]).sum() > (rul_slices == LOBE_LABELS["RLL"]).sum()
    low_rll = lobes[case["lobe_slices_z"]["RLL"][: len(case["lobe_slices_z"]["RLL"]) // 2]]
    assert not (low_rll == LOBE_LABELS["RUL"]).any()


def test_thick_slices_do_not_break_it(real_ct_dir):
    d = real_ct_dir / "lungpetctdx-a0002"
    ct = read_ct(d / "ct.nii.gz")
    anat = compute_anatomy(ct)
    assert anat.shape[0] == ct.shape[0]  # 8 mm slices are kept as they are
    ml = np.prod(anat.spacing_zyx) / 1000.0
    assert anat.lung_right.sum() * ml > 500 and anat.lung_left.sum() * ml > 500
    box = ct.geometry.to_canonical(read_mask_raw(d / "tumor_bbox.nii.gz")) > 0
    dense = box & (ct.hu > -300)
    right = anat.to_ct_grid(anat.lung_envelope_right | anat.zone("perihilar", "right"))
    assert (right & dense).sum() > 0.6 * dense.sum()  # "right perihilar mass": the right side holds it
    assert (anat.to_ct_grid(anat.lung_envelope_left) & dense).sum() < 0.05 * dense.sum()


def test_a_768_matrix_600_slice_ct_stays_within_memory(lung1):
    _, ct, _ = lung1
    shape = (600, 768, 768)
    idx = [
        np.minimum((np.arange(n) * ct.shape[a] / n).astype(np.int64), ct.shape[a] - 1)
        for a, n in enumerate(shape)
    ]
    hu = ct.hu[idx[0]][:, idx[1]][:, :, idx[2]]
    sp = [s * c / n for s, c, n in zip(ct.spacing_zyx, ct.shape, shape, strict=True)]
    big = CTVolume(
        hu=hu,
        geometry=Geometry((768, 768, 600), (sp[2], sp[1], sp[0]), ct.geometry.origin, ct.geometry.direction),
    )
    tracemalloc.start()
    anat = compute_anatomy(big)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 2.5 * 2**30  # the CT itself is 0.66 GiB; the work happens on the ~1.5 mm grid
    assert max(anat.shape) <= 340
    out = anat.to_ct_grid(anat.lungs)
    assert out.shape == shape and out.any()
