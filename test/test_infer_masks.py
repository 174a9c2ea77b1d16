"""After the network: averaged logits at the model's spacing -> masks on the CT grid (``rexground.infer.masks``)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from rexground.infer.masks import (
    RELATIVE_FALLBACK,
    above_threshold_box,
    crop_probability,
    finding_mask,
    linear_resize,
    paste,
    scan_masks,
    sigmoid_,
)
from rexground.infer.package import IntensityNormalisation
from rexground.infer.preprocess import PreparedVolume, prepare
from rexground.infer.scan import ScanLogits
from rexground.io import resample_zyx

NORM = IntensityNormalisation(clip_min=-1000.0, clip_max=1000.0, mean=-300.0, std=500.0)


@settings(max_examples=40, deadline=None)
@given(
    st.tuples(*[st.integers(2, 12)] * 3),
    st.tuples(*[st.floats(0.3, 4.0)] * 3),
    st.integers(0, 10_000),
)
def test_linear_resize_equals_resample_zyx(src, factors, seed):
    out_shape = tuple(max(1, round(s * f)) for s, f in zip(src, factors, strict=True))
    a = np.random.default_rng(seed).normal(size=src).astype(np.float32)
    ref = resample_zyx(a, (1.0, 1.0, 1.0), (1.0, 1.0, 1.0), order=1, shape=out_shape)
    np.testing.assert_allclose(linear_resize(a, out_shape), ref, atol=2e-6)
    box = tuple(slice(s // 3, max(s // 3 + 1, 2 * s // 3)) for s in out_shape)
    np.testing.assert_allclose(linear_resize(a, out_shape, box), ref[box], atol=2e-6)


@settings(max_examples=60, deadline=None)
@given(
    st.tuples(*[st.integers(2, 10)] * 3),
    st.tuples(*[st.floats(0.4, 3.5)] * 3),
    st.integers(0, 10_000),
    st.floats(-1.0, 2.5),
)
def test_above_threshold_box_holds_every_voxel_above(src, factors, seed, thr):
    out_shape = tuple(max(1, round(s * f)) for s, f in zip(src, factors, strict=True))
    logits = np.random.default_rng(seed).normal(size=src).astype(np.float32)
    full = linear_resize(logits, out_shape)
    box = above_threshold_box(logits, out_shape, thr)
    if box is None:
        assert not (full >= thr).any()
        return
    outside = np.ones(out_shape, bool)
    outside[box] = False
    assert not (full[outside] >= thr).any()


def test_sigmoid_in_place_and_paste():
    x = np.array([-1000.0, -1.0, 0.0, 1.0, 1000.0], np.float32)
    y = sigmoid_(x)
    assert y is x
    np.testing.assert_allclose(y, [0.0, 1 / (1 + np.e), 0.5, 1 / (1 + np.exp(-1)), 1.0], rtol=1e-6)
    hu = np.full((40, 60, 70), -1000, np.int16)
    hu[8:30, 10:50, 12:60] = 40
    p = prepare(hu, (2.0, 1.0, 1.0), target_spacing=(4.0, 4.0, 4.0), norm=NORM)
    back = paste(np.ones(p.crop_shape, np.uint8), p)
    assert back.shape == hu.shape and back.sum() == np.prod(p.crop_shape)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from([-6.0, -1.5, 0.0, 1.0]), st.sampled_from([0.3, 0.5, 0.7]))
def test_box_limited_masks_equal_whole_map_postprocessing(seed, shift, threshold):
    """The engine resamples only a box of each finding's map; its answer must equal the whole map's."""
    from scipy import ndimage

    from rexground.postprocess import postprocess

    rng = np.random.default_rng(seed)
    model = tuple(int(n) for n in rng.integers(4, 9, size=3))
    logits = (
        ndimage.gaussian_filter(rng.normal(size=(1, *model)), (0, 1, 1, 1)).astype(np.float32) * 8 + shift
    )
    crop = (slice(2, 2 + 3 * model[0]), slice(1, 1 + 2 * model[1]), slice(0, 3 * model[2] - 1))
    ct_shape = (3 * model[0] + 5, 2 * model[1] + 3, 3 * model[2] + 2)
    prepared = PreparedVolume(
        np.empty((0, 0, 0, 0), np.float32), crop, ct_shape, (1.0, 1.0, 1.0), (3.0, 2.0, 3.0), (0.0,)
    )
    scan = ScanLogits(prepared=prepared, logits=logits)
    mask, fallback = finding_mask(scan, 0, threshold)
    expected = np.zeros(ct_shape, np.uint8)
    expected[crop] = postprocess(crop_probability(scan, 0), threshold, relative_fallback=RELATIVE_FALLBACK)
    assert np.array_equal(mask, expected), fallback
    assert np.array_equal(scan_masks(scan, threshold)[0], mask)
