"""The shared postprocessing: official component filter, and never an empty answer."""

from __future__ import annotations

import numpy as np
import pytest

from rexground.components import filter_components
from rexground.postprocess import postprocess


def _blob(shape, centre, r):
    g = np.ogrid[tuple(slice(0, s) for s in shape)]
    return sum((gi - c) ** 2 for gi, c in zip(g, centre, strict=True)) <= r * r


def test_threshold_keeps_large_components_and_drops_specks():
    score = np.zeros((30, 30, 30), np.float32)
    score[_blob(score.shape, (10, 10, 10), 3)] = 0.9
    score[25, 25, 25] = 0.9  # a 1-voxel speck: the evaluator would drop it
    out = postprocess(score, 0.5)
    assert out.dtype == np.uint8
    assert out[10, 10, 10] == 1 and out[25, 25, 25] == 0
    assert set(np.unique(out)) == {0, 1}


def test_output_is_unchanged_by_the_official_filter():
    rng = np.random.default_rng(0)
    score = rng.random((40, 40, 40)).astype(np.float32)
    out = postprocess(score, 0.7)
    labels, n = filter_components(out)
    assert 0 < n <= 50
    np.testing.assert_array_equal((labels > 0).astype(np.uint8), out)


def test_at_most_fifty_components():
    mask = np.zeros((20, 60, 60), bool)
    for i in range(8):
        for j in range(8):
            mask[5:8, 2 + 7 * i : 5 + 7 * i, 2 + 7 * j : 5 + 7 * j] = True  # 64 cubes of 27 voxels
    out = postprocess(mask)
    _, n = filter_components(out)
    assert n == 50


def test_weak_score_falls_back_to_its_peak_inside_the_region():
    score = np.zeros((30, 30, 30), np.float32)
    score[_blob(score.shape, (8, 8, 8), 3)] = 0.3  # inside the region, below threshold
    score[_blob(score.shape, (22, 22, 22), 3)] = 0.4  # stronger, but outside the named region
    region = np.zeros(score.shape, bool)
    region[:15, :15, :15] = True
    info = {}
    out = postprocess(score, 0.5, fallback_region=region, info=info)
    assert info["fallback"] == "score_peak"
    assert out[8, 8, 8] == 1 and out[22, 22, 22] == 0


def _small_nodule_score(shape=(30, 30, 30), peak_at=(20, 9, 12)) -> np.ndarray:
    """What a coarse-grid network gives a small nodule: a 3-voxel core above the threshold, a fading halo,
    and a weak broad haze elsewhere that must not be answered instead."""
    z, y, x = np.ogrid[tuple(slice(0, s) for s in shape)]
    d2 = (z - peak_at[0]) ** 2 + (y - peak_at[1]) ** 2 + (x - peak_at[2]) ** 2
    score = (0.9 * np.exp(-d2 / 1.2)).astype(np.float32)
    score[2:8, 20:28, 20:28] = np.maximum(score[2:8, 20:28, 20:28], 0.2)
    return score


def test_a_peak_too_small_for_the_filter_is_grown_where_it_is():
    score = _small_nodule_score()
    assert 0 < int((score >= 0.45).sum()) < 10  # the half-peak part alone would be filtered away
    region = np.zeros(score.shape, bool)
    region[:, :, :] = True
    info = {}
    out = postprocess(score, 0.5, fallback_region=region, info=info)
    assert info["fallback"] == "score_grow"
    assert out[20, 9, 12] == 1 and out[2:8, 20:28, 20:28].sum() == 0
    assert 10 <= out.sum() <= 40  # a small blob, not the region
    idx = np.argwhere(out)
    assert np.abs(idx - np.array([20, 9, 12])).max() <= 6
    labels, n = filter_components(out)  # what the evaluator keeps: all of it, one component
    assert n == 1
    np.testing.assert_array_equal((labels > 0).astype(np.uint8), out)


def test_a_peak_too_steep_to_grow_gets_the_smallest_kept_blob_there():
    score = np.zeros((20, 20, 20), np.float32)
    score[10, 10, 10] = 0.3  # one voxel and nothing around it: no blob to grow
    score[3, 3, 3] = 0.1
    region = np.zeros(score.shape, bool)
    region[2:12, 2:12, 2:12] = True
    info = {}
    out = postprocess(score, 0.5, fallback_region=region, info=info)
    assert info["fallback"] == "score_grow"
    assert out[10, 10, 10] == 1 and out[3, 3, 3] == 0
    labels, n = filter_components(out)
    assert n == 1 and out.sum() == 10  # the smallest answer the filter keeps
    np.testing.assert_array_equal((labels > 0).astype(np.uint8), out)


def test_empty_score_falls_back_to_the_region():
    region = np.zeros((20, 20, 20), bool)
    region[2:8, 2:8, 2:8] = True
    info = {}
    out = postprocess(np.zeros((20, 20, 20), np.float32), fallback_region=region, info=info)
    assert info["fallback"] == "region"
    np.testing.assert_array_equal(out.astype(bool), region)


@pytest.mark.parametrize("region_voxels", [0, 3])
def test_never_empty_even_without_a_usable_region(region_voxels):
    region = np.zeros((16, 16, 16), bool)
    region.ravel()[:region_voxels] = True
    info = {}
    out = postprocess(np.zeros((16, 16, 16), np.uint8), fallback_region=region, info=info)
    assert info["fallback"] == "ball"
    _, n = filter_components(out)
    assert n == 1 and out.sum() >= 10


def test_tiny_volume_gets_the_whole_volume():
    out = postprocess(np.zeros((2, 2, 2), np.float32))
    assert out.all()


def test_rejects_mismatched_region_shape():
    with pytest.raises(ValueError, match="shape"):
        postprocess(np.zeros((4, 4, 4)), fallback_region=np.zeros((4, 4, 5), bool))


@pytest.mark.parametrize("n", [10, 30, 57])
@pytest.mark.parametrize("centre", [(0, 0, 0), (5, 5, 5), (0, 5, 9), (3, 0, 7)])
def test_fallback_blobs_have_exactly_the_asked_size_and_one_component(n, centre):
    from rexground.postprocess import _ball_at

    out = _ball_at((10, 10, 10), np.asarray(centre, float), n)
    _, components = filter_components(out, min_size=1)
    assert out.sum() == n and components == 1 and out[centre] == 1
