"""Training data: partial-label ignore masks, patch + prompt sampling, the prepared-case cache, the loss."""

from __future__ import annotations

import numpy as np
import pytest
from train_helpers import prepared, tiny_config

from rexground.train.config import DataConfig, InputSpec
from rexground.train.data import (
    PatchSampler,
    crop_pad,
    is_cached,
    load_case,
    partial_label_ignore,
    save_case,
)


def test_crop_pad_copies_inside_and_pads_outside():
    arr = np.arange(2 * 4 * 5 * 6, dtype=np.float32).reshape(2, 4, 5, 6)
    out = crop_pad(arr, (-1, 2, 3), (3, 4, 4), pad_value=-7.0)
    assert out.shape == (2, 3, 4, 4)
    assert np.all(out[:, 0] == -7.0)  # z = -1 is outside
    np.testing.assert_array_equal(out[:, 1:, :3, :3], arr[:, 0:2, 2:5, 3:6])
    assert np.all(out[:, :, 3:, :] == -7.0) and np.all(out[:, :, :, 3:] == -7.0)


def _lesion_scene():
    """Normalised CT: 4 dense balls (3 labelled, 1 not) and a long dense tube (a vessel) in air."""
    ct = np.full((30, 40, 40), -1.0, np.float32)
    ent = np.zeros(ct.shape, np.uint8)
    z, y, x = np.ogrid[:30, :40, :40]
    centres = [(6, 8, 8), (6, 30, 30), (22, 8, 30), (22, 30, 8)]
    for i, c in enumerate(centres):
        ball = (z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2 <= 9
        ct[ball] = 1.0
        if i < 3:
            ent[ball] = i + 1
    ct[:, 19:22, 19:22] = 1.0  # a branching vessel: same density as the lesions, far larger
    ct[15:18, :, 19:22] = 1.0
    return ct, ent


def test_partial_label_ignore_marks_unlabelled_lookalikes_but_not_vessels():
    ct, ent = _lesion_scene()
    ignore = partial_label_ignore(ct, ent, cap=3)
    assert ignore is not None
    assert ignore[22, 30, 8] == 1  # the unlabelled fourth lesion
    assert ignore[15, 20, 20] == 0  # the vessel stays a negative
    assert not ignore[ent > 0].any()  # labelled voxels are targets, never ignored
    assert ignore[15, 2, 2] == 0  # plain background stays a negative


def test_partial_label_ignore_only_when_the_cap_is_reached():
    ct, ent = _lesion_scene()
    ent[ent == 3] = 0  # two instances drawn: the annotator was not cut off
    assert partial_label_ignore(ct, ent, cap=3) is None


def test_batches_are_a_function_of_seed_rank_and_step():
    cfg = tiny_config()
    cases = [prepared(i, cfg) for i in range(3)]
    texts = sorted({t for c in cases for t in c.texts})
    s = PatchSampler(cases, texts, cfg.input, cfg.data, seed=5)
    a, b = s.batch(7, 0, 3), s.batch(7, 0, 3)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.prompt, b.prompt)
    other_rank, other_step = s.batch(7, 1, 3), s.batch(8, 0, 3)
    assert not np.array_equal(a.image, other_rank.image)
    assert not np.array_equal(a.image, other_step.image)


def test_prompts_positive_targets_nonempty_negatives_empty():
    cfg = tiny_config(data=DataConfig(positives_per_patch=1, negatives_per_patch=2, foreground_fraction=1.0))
    cases = [prepared(i, cfg) for i in range(3)]
    texts = sorted({t for c in cases for t in c.texts})
    s = PatchSampler(cases, texts, cfg.input, cfg.data, seed=0)
    n_same_scan_negative = 0
    for step in range(20):
        b = s.batch(step, 0, 2)
        assert b.image.shape == (2, 1, *cfg.input.patch_size_zyx)
        assert b.target.shape == (6, 1, *cfg.input.patch_size_zyx) == b.weight.shape
        sums = b.target.reshape(6, -1).sum(1)
        np.testing.assert_array_equal(sums > 0, b.positive)
        assert b.positive[0::3].all()  # foreground patches: the first prompt is the centred finding
        for p in range(2):
            prompts = [texts[i] for i in b.prompt[p * 3 : p * 3 + 3]]
            # the other lung's nodule sentence of the same scan is the preferred negative
            n_same_scan_negative += any(("left" in prompts[0]) != ("left" in t) for t in prompts[1:])
    assert n_same_scan_negative >= 30


def test_weight_is_zero_outside_the_volume():
    from rexground.train.config import InputSpec

    cfg = tiny_config(input=InputSpec(patch_size_zyx=(32, 24, 24), spacing_zyx=(3.0, 3.0, 3.0)))
    case = prepared(0, cfg)
    texts = list(case.texts)
    s = PatchSampler([case], texts, cfg.input, cfg.data, seed=0)
    found_padding = False
    for step in range(30):
        b = s.batch(step, 0, 1)
        if (b.weight[:, 0] == 0).any():
            found_padding = True
            assert np.all(b.target[b.weight == 0] == 0)
        assert b.weight.max() == 1.0
    assert found_padding  # the volume is 24 voxels deep, the patch 32


def test_prepared_case_round_trips_through_the_cache(tmp_path):
    cfg = tiny_config()
    case = prepared(1, cfg, split="val")
    folder = save_case(case, tmp_path / "case_1")
    assert is_cached(folder)
    back = load_case(folder)
    np.testing.assert_array_equal(back.image, case.image)
    np.testing.assert_array_equal(back.labels, case.labels)
    np.testing.assert_array_equal(back.labels_native(), case.native_labels)
    assert back.texts == case.texts and back.categories == case.categories
    assert back.native_shape == case.native_shape and back.native_spacing == case.native_spacing
    for a, b in zip(back.fg_coords, case.fg_coords, strict=True):
        np.testing.assert_array_equal(a, b)


def test_loss_ignores_weight_zero_voxels_and_skips_dice_on_empty_targets():
    torch = pytest.importorskip("torch")
    from rexground.train.config import LossConfig
    from rexground.train.losses import grounding_loss

    target = torch.zeros(2, 1, 4, 4, 4)
    target[0, 0, 1:3, 1:3, 1:3] = 1
    weight = torch.ones_like(target)
    positive = torch.tensor([True, False])
    logits = torch.where(target > 0, 12.0, -12.0)
    base, _ = grounding_loss(logits, target, weight, positive, LossConfig())
    wrong = logits.clone()
    wrong[1, 0, 0, 0, 0] = 20.0  # a confident false positive on the negative prompt...
    worse, _ = grounding_loss(wrong, target, weight, positive, LossConfig())
    assert worse > base
    weight[1, 0, 0, 0, 0] = 0.0  # ...costs nothing once that voxel is ignored
    ignored, parts = grounding_loss(wrong, target, weight, positive, LossConfig())
    assert ignored.item() == pytest.approx(base.item(), rel=1e-3)
    assert parts["dice_loss"] < 0.01  # only the positive prompt enters the Dice term
    ds, _ = grounding_loss(
        [logits, logits[:, :, ::2, ::2, ::2]], target, torch.ones_like(target), positive, LossConfig()
    )
    assert torch.isfinite(ds)


def test_a_cropped_case_maps_predictions_back_onto_the_whole_native_grid():
    from train_helpers import blob_case

    from rexground.infer.masks import scan_masks
    from rexground.infer.scan import ScanLogits
    from rexground.train.validate import network_input

    cfg = tiny_config()
    hu, ent, _, _ = blob_case(3, "val")
    case = prepared(3, cfg, "val", crop=(slice(2, 22), slice(5, 38), slice(1, 40)))
    assert case.image.shape[1:] == (20, 33, 39) and case.native_shape == hu.shape
    # a prediction equal to the target, at the model's spacing, taken back by the inference path's route
    perfect = np.where(case.labels > 0, 10.0, -10.0).astype(np.float32)
    scan = ScanLogits(prepared=network_input(case, cfg.input).without_image(), logits=perfect)
    masks = scan_masks(scan, threshold=0.5)
    assert masks.shape == ent.shape
    np.testing.assert_array_equal(masks, (case.labels_native() > 0).astype(np.uint8))


def test_anatomy_prior_channels_follow_the_ct_channel_in_spec_order():
    from train_helpers import SPACING, blob_case

    from rexground.infer.channels import check_channel_names, masks_from_anatomy
    from rexground.train.config import InputSpec

    hu, _, _, _ = blob_case(0)
    right = np.zeros(hu.shape, bool)
    right[..., :20] = True
    lobes = np.where(right, 3, 0).astype(np.uint8)  # "RLL" everywhere on the right

    class Anat:  # the duck type of rexground.anatomy.Anatomy that the channels need
        lung_right, lung_left = right, ~right

        def lobe(self, name):
            return lobes == {"RLL": 3}.get(name, 99)

        def to_ct_grid(self, a):
            return a

    masks = masks_from_anatomy(Anat(), ["lung_left", "lobe_RLL"])
    assert masks["lung_left"].dtype == np.uint8 and masks["lobe_RLL"][0, 0, 0] == 1
    with pytest.raises(ValueError, match="unknown anatomy channel"):
        check_channel_names(["spleen"])
    cfg = tiny_config()
    spec = InputSpec(
        patch_size_zyx=(16, 24, 24), spacing_zyx=SPACING, anatomy_channels=("lung_left", "lobe_RLL")
    )
    case = prepared(0, cfg, spec=spec, anatomy=masks)
    assert case.image.shape[0] == 3
    np.testing.assert_array_equal(case.image[1], masks["lung_left"])
    np.testing.assert_array_equal(case.image[2], masks["lobe_RLL"])


def test_anatomy_channels_are_zero_outside_the_volume_as_at_inference():
    # Tiles sticking out of the volume: inference pads the anatomy priors with 0, so training must too.
    from train_helpers import SPACING, blob_case

    from rexground.train.config import InputSpec

    cfg = tiny_config()
    spec = InputSpec(patch_size_zyx=(32, 24, 24), spacing_zyx=SPACING, anatomy_channels=("body",))
    case = prepared(0, cfg, spec=spec, anatomy={"body": np.ones(blob_case(0)[0].shape, np.uint8)})
    s = PatchSampler([case], list(case.texts), spec, cfg.data, seed=0)
    for step in range(10):
        b = s.batch(step, 0, 1)
        outside = b.weight[0, 0] == 0  # the first prompt's weight is 0 exactly outside the volume
        assert outside.any()  # the volume is 24 voxels deep, the patch 32
        assert np.all(b.image[0, 1][outside] == 0) and np.all(b.image[0, 1][~outside] == 1)


def test_zone_channels_are_the_anatomy_zones_of_both_lungs():
    from rexground.anatomy import compute_anatomy_from_array
    from rexground.infer.channels import ZONE_CHANNELS, check_channel_names, masks_from_anatomy
    from rexground.synth import generate_case

    check_channel_names(ZONE_CHANNELS)
    case = generate_case(3, size="small")
    anat = compute_anatomy_from_array(case.hu, case.spacing_zyx)
    masks = masks_from_anatomy(anat, ["zone_basal", "zone_apical", "zone_posterior", "lung_right"])
    for name in ("zone_basal", "zone_apical", "zone_posterior"):
        m = masks[name]
        assert m.shape == case.hu.shape and m.dtype == np.uint8
        expected = anat.to_ct_grid(np.asarray(anat.zone(name[len("zone_") :], "unspecified"), np.uint8))
        np.testing.assert_array_equal(m, expected)
        right = (m > 0) & (masks["lung_right"] > 0)
        assert right.any() and ((m > 0) & ~(masks["lung_right"] > 0)).any()  # both lungs
    assert not ((masks["zone_basal"] > 0) & (masks["zone_apical"] > 0)).any()


def test_coordinate_channels_place_each_lung_voxel_in_its_own_lung_frame():
    from rexground.anatomy import compute_anatomy_from_array
    from rexground.infer.channels import (
        COORD_CHANNELS,
        COORD_LEVELS,
        channel_scale,
        check_channel_names,
        masks_from_anatomy,
    )
    from rexground.synth import generate_case

    check_channel_names(COORD_CHANNELS)
    assert channel_scale("coord_height") == 1 / COORD_LEVELS and channel_scale("lobe_RLL") == 1.0
    case = generate_case(3, size="small")
    anat = compute_anatomy_from_array(case.hu, case.spacing_zyx)
    m = masks_from_anatomy(anat, ["lung_envelope", "lobe_RUL", "lobe_RLL", *COORD_CHANNELS])
    env = m["lung_envelope"] > 0
    for name in COORD_CHANNELS:
        v = m[name]
        assert v.dtype == np.uint8 and v.shape == case.hu.shape
        assert (v[env] >= 1).all() and (v[~env] == 0).all()  # levels inside the envelopes only
        assert v[env].min() == 1 and v[env].max() == COORD_LEVELS  # each lung spans the whole range
    height = m["coord_height"].astype(float)
    upper, lower = m["lobe_RUL"] > 0, m["lobe_RLL"] > 0
    assert height[upper].mean() > height[lower].mean() + 60  # the upper lobe sits higher in its lung
    # lateral: the lung's column nearest the other lung is medial (low), its outermost column lateral (high)
    lateral = m["coord_lateral"].astype(float)
    xs = np.flatnonzero(env.any(axis=(0, 1)))
    mid = (xs[0] + xs[-1]) / 2
    outer_low = lateral[:, :, xs[0]][env[:, :, xs[0]]].mean()
    outer_high = lateral[:, :, xs[-1]][env[:, :, xs[-1]]].mean()
    assert outer_low > 200 and outer_high > 200
    near_mid = [x for x in xs if abs(x - mid) <= 8]
    inner = np.concatenate([lateral[:, :, x][env[:, :, x]] for x in near_mid])
    assert inner.mean() < 80


def test_preparing_a_split_skips_scans_without_findings_with_a_count(tmp_path):
    """A dataset entry with no finding (no mask either) has nothing to train on: skipped and counted."""
    import json

    from rexground.synth import write_dataset
    from rexground.train.prepare import prepare_split

    dataset_json = write_dataset(tmp_path / "data", 1, seed=2)  # case 0 is a train scan
    doc = json.loads(dataset_json.read_text())
    doc["train"].append({"name": "train_999_a_1.nii.gz", "findings": {}})
    dataset_json.write_text(json.dumps(doc))
    spec = InputSpec(patch_size_zyx=(16, 16, 16), spacing_zyx=(6.0, 6.0, 6.0), text_encoder="hashing-test")
    said: list[str] = []
    result = prepare_split(
        tmp_path / "data", "train", spec, DataConfig(), tmp_path / "cache", progress=False, log=said.append
    )
    assert [f.name for f in result.folders] == [doc["train"][0]["name"].split(".")[0]]
    assert any("1 scan(s) without findings skipped" in line for line in said)
