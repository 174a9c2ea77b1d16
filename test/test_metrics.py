"""The official evaluation rules, each on a hand-computed case, and the fast path against a slow reference."""

from __future__ import annotations

import itertools
from collections import deque

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rexground.components import filter_components
from rexground.metrics import (
    ShapeMismatchError,
    aggregate,
    evaluate_case,
    missing_case,
    precision_recall_f1,
    sparse_components,
)
from rexground.metrics.distances import assd_mm, greedy_distance_match
from rexground.metrics.official import greedy_match
from rexground.metrics.reference import reference_case, reference_filter
from rexground.metrics.sparse_components import filter_components_sparse, flat_nonzero

EPS = 1e-6


def dice(inter: int, a: int, b: int) -> float:
    return (2 * inter + EPS) / (a + b + EPS)


def bfs_label_18(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """Obviously correct 18-connected labelling: raster scan, breadth-first flood fill, explicit offsets."""
    offsets = [d for d in itertools.product((-1, 0, 1), repeat=3) if 0 < sum(map(abs, d)) <= 2]
    labels = np.zeros(mask.shape, dtype=np.int32)
    n = 0
    for start in itertools.product(*map(range, mask.shape)):
        if not mask[start] or labels[start]:
            continue
        n += 1
        labels[start] = n
        queue = deque([start])
        while queue:
            v = queue.popleft()
            for d in offsets:
                w = tuple(a + b for a, b in zip(v, d, strict=True))
                if all(0 <= w[k] < mask.shape[k] for k in range(3)) and mask[w] and not labels[w]:
                    labels[w] = n
                    queue.append(w)
    return labels, n


def one_channel(*arrays: np.ndarray) -> list[np.ndarray]:
    return [a[None] for a in arrays]


# --- step 1: components -----------------------------------------------------------------------------------


def test_nine_voxel_component_is_removed_and_ten_voxel_component_is_kept():
    pred = np.zeros((12, 12, 4), np.uint8)
    gt = np.zeros_like(pred)
    pred[0, 0:9, 0] = 1  # 9 voxels: removed
    pred[5, 0:10, 0] = 1  # 10 voxels: kept
    gt[0, 0:9, 0] = 1
    gt[5, 0:10, 0] = 2
    f = evaluate_case(*one_channel(gt, pred)).findings[0]
    assert f.pred_voxels == 10 and f.n_pred_instances == 1
    assert f.dice == dice(10, 10, 19)
    assert (f.tp, f.fp, f.fn) == (1, 0, 1)
    assert f.matches[0].gt_label == 2 and f.matches[0].dice == dice(10, 10, 10)


def test_fifty_one_components_keep_the_fifty_largest_and_ties_keep_the_lower_label():
    pred = np.zeros((102, 11, 1), np.uint8)
    for k in range(51):
        pred[2 * k, 0:10, 0] = 1  # 51 components of 10 voxels, labels 1..51 in scan order
    labels, n = filter_components(pred)
    assert n == 50 and not labels[100].any() and labels[98, 0, 0] == 50  # tie: the last (label 51) goes
    pred[100, 10, 0] = 1  # now the last one has 11 voxels and stays; label 50 (the last of the tie) goes
    labels, n = filter_components(pred)
    assert n == 50 and labels[100, 0, 0] == 50 and not labels[98].any() and labels[96, 0, 0] == 49
    sparse = filter_components_sparse(pred)
    assert np.array_equal(sparse.to_dense(), labels)
    gt = np.zeros_like(pred)
    gt[98, 0:10, 0] = 1  # GT exactly on the dropped component
    f = evaluate_case(*one_channel(gt, pred)).findings[0]
    assert f.pred_voxels == 49 * 10 + 11 and f.tp == 0 and f.fp == 50 and f.fn == 1
    assert f.dice == dice(0, 501, 10)


@pytest.mark.parametrize(
    ("second_start", "expected_components"),
    [((1, 1, 0), 1), ((1, 1, 1), 0)],  # edge neighbours join (18-connected); corner neighbours do not (26)
)
def test_edge_neighbours_connect_and_corner_neighbours_do_not(second_start, expected_components):
    pred = np.zeros((4, 4, 12), np.uint8)
    pred[0, 0, 0:5] = 1  # 5 voxels
    a, b, c = second_start
    pred[a, b, c + 4 : c + 9] = 1  # 5 voxels touching the first at (0,0,4) by an edge or only a corner
    _labels, n = filter_components(pred)
    assert n == expected_components
    assert filter_components_sparse(pred).n == expected_components
    assert bfs_label_18(pred > 0)[1] == 2 - expected_components


# --- steps 2 and 3: Dice, hit, matching ---------------------------------------------------------------------


def test_empty_prediction_and_empty_ground_truth_score_one():
    gt = np.zeros((1, 6, 6, 6), np.uint8)
    f = evaluate_case(gt, gt.copy()).findings[0]
    assert f.dice == 1.0 and f.hit and (f.tp, f.fp, f.fn) == (0, 0, 0)
    s = aggregate([evaluate_case(gt, gt.copy())])
    assert s.instance_precision == 1.0 and s.instance_recall == 1.0 and s.instance_f1 == 1.0


def test_hit_threshold_is_inclusive_at_one_tenth():
    gt = np.zeros((1, 40, 40, 2), np.uint8)
    pred = np.zeros_like(gt)
    gt[0, 0:19, 0:10, 0] = 1  # 190 voxels
    pred[0, 0:19, 0:10, 0] = 0
    pred[0, 0:1, 0:10, 0] = 1  # 10 voxels inside: Dice = 20 / 200 = 0.1 (+eps)
    f = evaluate_case(gt, pred).findings[0]
    assert f.dice == dice(10, 10, 190) and f.dice >= 0.1 and f.hit
    pred[0, 0, 9, 0] = 0
    pred[0, 1, 0, 0] = 0
    pred[0, 30:32, 30:32, 0:2] = 1  # keep 10 predicted voxels in one component, 8 inside... separate blob
    f = evaluate_case(gt, pred).findings[0]
    assert f.dice < 0.1 and not f.hit


def test_matching_tie_goes_to_the_lower_predicted_label_then_lower_gt_value():
    gt = np.zeros((1, 8, 10, 1), np.uint8)
    pred = np.zeros_like(gt)
    gt[0, 0, :, 0] = 1
    gt[0, 4, :, 0] = 1  # one GT instance (value 1) of 20 voxels in two pieces
    pred[0, 0, :, 0] = 1
    pred[0, 4, :, 0] = 1  # two components, each Dice 20/30 with the instance
    f = evaluate_case(gt, pred).findings[0]
    assert f.n_gt_instances == 1 and f.n_pred_instances == 2
    assert [(m.gt_label, m.pred_label) for m in f.matches] == [(1, 1)] and (f.tp, f.fp, f.fn) == (1, 1, 0)
    assert greedy_match(np.array([[0.5, 0.5], [0.5, 0.5]]), 0.2) == [(0, 0), (1, 1)]
    assert greedy_match(np.array([[0.3, 0.6], [0.2, 0.6]]), 0.2) == [(0, 1), (1, 0)]


def test_matching_threshold_and_greedy_order():
    # GT 1 overlaps component 1 heavily and component 2 slightly; GT 2 only overlaps component 1.
    scores = np.array([[0.9, 0.25], [0.5, 0.0]])
    assert greedy_match(scores, 0.2) == [(0, 0)]  # 0.5 is blocked (component taken), 0.0 never matches
    assert greedy_match(np.array([[0.19999]]), 0.2) == []
    assert greedy_match(np.array([[0.2]]), 0.2) == [(0, 0)]
    assert greedy_match(np.zeros((0, 3)), 0.2) == []


def test_gt_instances_are_label_values_not_components():
    gt = np.zeros((1, 10, 10, 10), np.uint8)
    gt[0, 0:3, 0:3, 0:3] = 7
    gt[0, 6:9, 6:9, 6:9] = 7  # same value, two blobs: one instance
    gt[0, 0:3, 6:9, 0:3] = 3
    f = evaluate_case(gt, np.zeros_like(gt)).findings[0]
    assert f.n_gt_instances == 2 and f.fn == 2 and f.fp == 0


def test_official_uint8_cast_of_float_and_wide_predictions():
    gt = np.zeros((1, 6, 6, 6), np.uint8)
    gt[0, 1:4, 1:4, 1:4] = 1
    probs = gt.astype(np.float32) * 0.9  # probabilities below 1 cast to 0
    result = evaluate_case(gt, probs)
    assert result.findings[0].pred_voxels == 0 and "float32" in result.warnings[0]
    wide = gt.astype(np.int16) * 256  # 256 wraps to 0
    assert evaluate_case(gt, wide).findings[0].pred_voxels == 0
    wide = gt.astype(np.int16) * 257  # 257 wraps to 1
    assert evaluate_case(gt, wide).findings[0].dice == dice(27, 27, 27)
    multi = gt * 2  # uint8 values 2 count as foreground, with a warning
    result = evaluate_case(gt, multi)
    assert result.findings[0].dice == dice(27, 27, 27) and "values up to 2" in result.warnings[0]
    assert evaluate_case(gt, gt.astype(bool)).warnings == ()


def test_shape_mismatch_raises_and_3d_arrays_are_one_channel():
    gt = np.zeros((2, 6, 6, 6), np.uint8)
    with pytest.raises(ShapeMismatchError, match="prediction shape"):
        evaluate_case(gt, np.zeros((2, 6, 6, 5), np.uint8))
    with pytest.raises(ShapeMismatchError):
        evaluate_case(gt, np.zeros((1, 6, 6, 6), np.uint8))
    assert len(evaluate_case(gt[0], gt[0]).findings) == 1
    with pytest.raises(ShapeMismatchError):  # no squeezing: (H, W, D) is not (1, H, W, D)
        evaluate_case(gt[:1], gt[0])


def test_raw_order_is_compared_without_any_reorientation():
    gt = np.zeros((1, 12, 10, 8), np.uint8)
    gt[0, 1:4, 2:6, 3:7] = 1
    assert evaluate_case(gt, gt).findings[0].dice == dice(48, 48, 48)
    flipped = gt[:, ::-1].copy()
    assert evaluate_case(gt, flipped).findings[0].dice < 1e-6


# --- step 4: aggregation ------------------------------------------------------------------------------------


def test_per_case_dice_is_the_mean_of_case_means():
    gt = np.zeros((3, 6, 6, 6), np.uint8)
    gt[:, 1:4, 1:4, 1:4] = 1
    pred = np.zeros_like(gt)
    pred[0] = gt[0]  # case A: Dice 1, ~0, ~0
    a = evaluate_case(gt, pred, ["2d", "2d", "1c"], name="a")
    b = evaluate_case(gt[:1], gt[:1], ["2c"], name="b")  # case B: Dice 1
    s = aggregate([a, b])
    d0 = dice(0, 0, 27)
    assert s.dice_per_case == pytest.approx(((1 + 2 * d0) / 3 + 1) / 2)
    assert s.dice_per_finding == pytest.approx((2 + 2 * d0) / 4)
    assert s.hit_rate == 0.5 and s.n_cases == 2 and s.n_findings == 4
    assert (s.tp, s.fp, s.fn) == (2, 0, 2) and s.n_gt_instances == 4 and s.n_pred_instances == 2
    assert s.mean_matched_dice == 1.0
    assert s.per_category["2d"].n_findings == 2 and s.per_category["2d"].dice == pytest.approx((1 + d0) / 2)
    assert s.focal.n_findings == 3 and s.non_focal.n_findings == 1 and s.non_focal.hit_rate == 0.0


def test_zero_denominators_give_precision_and_recall_one():
    assert precision_recall_f1(0, 0, 0) == (1.0, 1.0, 1.0)
    assert precision_recall_f1(0, 0, 3) == (1.0, 0.0, 0.0)
    assert precision_recall_f1(0, 2, 0) == (0.0, 1.0, 0.0)
    assert precision_recall_f1(0, 2, 3) == (0.0, 0.0, 0.0)
    assert precision_recall_f1(1, 1, 2) == pytest.approx((0.5, 1 / 3, 0.4))


def test_missing_prediction_scores_zero_or_is_dropped():
    gt = np.zeros((2, 6, 6, 12), np.uint8)
    gt[:, 1:4, 1:4, 1:4] = 1
    gt[1, 0:2, 0:5, 8:12] = 2
    ok = evaluate_case(gt, gt, name="ok")
    miss = missing_case("gone", gt)
    assert miss.status == "missing" and [f.dice for f in miss.findings] == [0.0, 0.0]
    assert [f.fn for f in miss.findings] == [1, 2]
    zero = aggregate([ok, miss], missing="zero")
    assert zero.n_cases == 2 and zero.dice_per_case == 0.5 and zero.fn == 3 and zero.n_missing == 1
    drop = aggregate([ok, miss], missing="drop")
    assert drop.n_cases == 1 and drop.dice_per_case == 1.0 and drop.fn == 0 and drop.n_missing == 1


def test_global_only_mode_has_no_instance_metrics():
    gt = np.zeros((1, 6, 6, 6), np.uint8)
    gt[0, 1:4, 1:4, 1:4] = 1
    r = evaluate_case(gt, gt, global_only=True)
    assert r.findings[0].dice == dice(27, 27, 27) and r.findings[0].tp is None and r.findings[0].matches == ()
    s = aggregate([r], global_only=True)
    assert (
        s.mode == "global-only"
        and s.instance_f1 is None
        and s.tp is None
        and s.dice_per_case == s.dice_per_finding
    )
    assert not s.distance.available and "global-only" in s.distance.reason


# --- distances -------------------------------------------------------------------------------------------


def test_centroid_distance_within_two_max_spacings_is_a_true_positive():
    gt = np.zeros((1, 12, 12, 16), np.uint8)
    gt[0, 4:7, 4:7, 4:7] = 1
    near = np.roll(gt, 1, axis=3)  # 1 voxel along k: 2 mm with spacing 2 mm (threshold 4 mm)
    far = np.roll(gt, 3, axis=3)  # 6 mm
    spacing = (0.5, 0.5, 2.0)
    f = evaluate_case(gt, near, ["2d"], spacing).findings[0]
    assert f.distance.kind == "centroid" and f.distance.threshold_mm == 4.0
    assert (f.distance.tp, f.distance.fp, f.distance.fn) == (1, 0, 0)
    assert f.distance.matches[0].distance_mm == pytest.approx(2.0)
    f = evaluate_case(gt, far, ["2d"], spacing).findings[0]
    assert (f.distance.tp, f.distance.fp, f.distance.fn) == (0, 1, 1)
    assert evaluate_case(gt, near, ["2d"]).findings[0].distance is None


def test_assd_on_hand_computed_voxel_sets_and_non_focal_findings():
    spacing = (1.0, 1.0, 2.0)
    assert assd_mm(np.array([[0, 0, 0]]), np.array([[0, 0, 3]]), spacing) == pytest.approx(6.0)
    a = np.array([[0, 0, 0], [0, 0, 1]])
    assert assd_mm(a, np.array([[0, 0, 3]]), spacing) == pytest.approx((6 + 4 + 4) / 3)
    gt = np.zeros((1, 20, 14, 14), np.uint8)
    gt[0, 3:8, 3:8, 3:8] = 1
    f = evaluate_case(gt, gt, ["1c"], spacing).findings[0]
    assert f.distance.kind == "assd" and f.distance.matches[0].distance_mm == 0.0 and f.distance.tp == 1
    shifted = np.roll(gt, 5, axis=1)  # 5 mm along i: the side faces stay close, ASSD 3 mm <= 4 mm
    assert evaluate_case(gt, shifted, ["1c"], spacing).findings[0].distance.tp == 1
    far = np.roll(gt, 10, axis=1)  # every surface voxel at least 5 mm away: ASSD > 4 mm
    f = evaluate_case(gt, far, ["1c"], spacing).findings[0]
    assert f.distance.tp == 0 and f.distance.fp == 1 and f.distance.fn == 1


def test_distance_matching_is_one_to_one_by_ascending_distance():
    d = np.array([[1.0, 0.5], [0.4, 3.0]])
    assert greedy_distance_match(d, 2.0) == [(1, 0), (0, 1)]
    assert greedy_distance_match(np.array([[1.0, 1.0]]), 2.0) == [(0, 0)]
    assert greedy_distance_match(np.array([[2.5]]), 2.0) == []


# --- fast path against the references --------------------------------------------------------------------


@pytest.fixture(params=[0.0, 1.0], ids=["dense-route", "sparse-route"])
def route(request, monkeypatch):
    monkeypatch.setattr(sparse_components, "_DENSE_FRACTION", request.param)
    return request.param


@st.composite
def volumes(draw):
    shape = tuple(draw(st.integers(3, 9)) for _ in range(3))
    channels = draw(st.integers(1, 2))
    seed = draw(st.integers(0, 2**32 - 1))
    density = draw(st.sampled_from([0.05, 0.2, 0.5]))
    rng = np.random.default_rng(seed)
    gt = (rng.random((channels, *shape)) < density) * rng.integers(1, 4, (channels, *shape))
    pred = (rng.random((channels, *shape)) < density).astype(np.uint8)
    pred[rng.random(pred.shape) < 0.1] = 3
    return gt.astype(np.uint8), pred


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(volumes())
def test_fast_evaluation_equals_the_reference_with_bfs_labelling(route, case):
    gt, pred = case
    fast = evaluate_case(gt, np.asfortranarray(pred) if gt.shape[1] % 2 else pred)
    slow = reference_case(gt, pred, label_fn=bfs_label_18)
    for f, r in zip(fast.findings, slow, strict=True):
        assert (f.dice, f.hit, f.tp, f.fp, f.fn) == (r["dice"], r["hit"], r["tp"], r["fp"], r["fn"])
        assert f.n_gt_instances == r["n_gt_instances"] and f.n_pred_instances == r["n_pred_instances"]
        assert [(m.gt_label, m.pred_label, m.dice) for m in f.matches] == r["matches"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.tuples(st.integers(2, 12), st.integers(2, 12), st.integers(2, 12)),
    st.integers(0, 2**32 - 1),
    st.sampled_from([0.1, 0.3, 0.6]),
)
def test_component_filter_equals_bfs_reference(route, shape, seed, density):
    mask = np.random.default_rng(seed).random(shape) < density
    expected = reference_filter(mask, label_fn=bfs_label_18)
    labels, _n = filter_components(mask)
    assert np.array_equal(labels, expected)
    assert np.array_equal(filter_components_sparse(mask).to_dense(), expected)
    assert np.array_equal(filter_components_sparse(np.asfortranarray(mask)).to_dense(), expected)


@pytest.mark.parametrize("min_size,max_keep", [(1, 3), (2, 50), (10, 1)])
def test_filter_parameters_follow_the_same_rule(route, min_size, max_keep):
    mask = np.random.default_rng(3).random((10, 11, 12)) < 0.25
    labels, n = filter_components(mask, min_size=min_size, max_keep=max_keep)
    sparse = filter_components_sparse(mask, min_size=min_size, max_keep=max_keep)
    assert sparse.n == n and np.array_equal(sparse.to_dense(), labels)


@pytest.mark.parametrize("size", [0, 1, 7, 8, 9, 63, 64, 65, 1001])
@pytest.mark.parametrize("density", [0.0, 0.02, 0.5, 1.0])
def test_word_scan_finds_exactly_the_nonzero_bytes(size, density):
    a = (np.random.default_rng(size).random(size) < density).astype(np.uint8) * 3
    assert np.array_equal(flat_nonzero(a), np.flatnonzero(a))
    assert np.array_equal(flat_nonzero(a.astype(bool)), np.flatnonzero(a))


@settings(max_examples=25, deadline=None)
@given(volumes())
def test_memory_layout_does_not_change_any_result(case):
    gt, pred = case
    c_order = evaluate_case(gt, pred, spacing=(0.7, 0.8, 1.5))
    assert evaluate_case(np.asfortranarray(gt), np.asfortranarray(pred), spacing=(0.7, 0.8, 1.5)) == c_order
    assert (
        evaluate_case(gt[:, ::-1][:, ::-1], pred[:, :, ::-1][:, :, ::-1], spacing=(0.7, 0.8, 1.5)) == c_order
    )
