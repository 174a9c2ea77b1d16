"""Spatial augmentation moves a patch's image, masks, targets and weights together, never mirrors, and is
reproducible per step."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from rexground.train.augment import random_affines, spatial_augment  # noqa: E402

SHAPE = (12, 16, 16)


def _batch(b: int = 2, p: int = 3):
    """A CT channel with a bright off-centre blob, a mask channel of the same blob, and per prompt a target
    (the blob for prompt 0, empty for the others) and an all-ones weight."""
    z, y, x = np.indices(SHAPE)
    blob = ((z - 6) ** 2 + (y - 5) ** 2 + (x - 11) ** 2) <= 6
    image = np.zeros((b, 2, *SHAPE), np.float32)
    image[:, 0] = np.where(blob, 1.0, -1.0)
    image[:, 1] = blob
    target = np.zeros((b * p, 1, *SHAPE), np.float32)
    target[::p, 0] = blob
    weight = np.ones_like(target)
    return torch.from_numpy(image), torch.from_numpy(target), torch.from_numpy(weight), blob


def test_identity_affines_leave_the_batch_bit_identical():
    image, target, weight, _ = _batch()
    aff = random_affines(np.random.default_rng(0), 2, SHAPE, (3.0, 1.5, 1.5), 0.0, (0.8, 1.2), 20.0)
    out = spatial_augment(image, target, weight, 3, aff)
    for a, b in zip(out, (image, target, weight), strict=True):
        assert torch.equal(a, b)


def test_a_transformed_patch_keeps_image_masks_and_targets_aligned():
    image, target, weight, blob = _batch()
    aff = random_affines(np.random.default_rng(3), 2, SHAPE, (2.0, 2.0, 2.0), 1.0, (0.8, 0.8), 30.0)
    new_image, new_target, new_weight = spatial_augment(image, target, weight, 3, aff)
    for i in range(2):
        mask = new_image[i, 1].numpy() > 0
        assert set(np.unique(new_image[i, 1].numpy())) <= {0.0, 1.0}  # masks stay masks
        tgt = new_target[i * 3, 0].numpy() > 0
        assert tgt.any() and not np.array_equal(tgt, blob)  # the blob moved ...
        np.testing.assert_array_equal(tgt, mask)  # ... with its mask channel
        ct = new_image[i, 0].numpy()  # and with the CT (linear: edge voxels are part blob, part background)
        assert ct[tgt].mean() > 0.5 and ct[~tgt].mean() < -0.8
        np.testing.assert_allclose(np.argwhere(ct > 0).mean(0), np.argwhere(tgt).mean(0), atol=0.75)
        assert not new_target[i * 3 + 1].any() and not new_target[i * 3 + 2].any()  # empty prompts stay empty
        # zooming out by 0.8 brings in a border from outside the patch: weight 0 there
        w = new_weight[i * 3 : i * 3 + 3, 0].numpy()
        assert set(np.unique(w)) == {0.0, 1.0} and (w[:, 0, 0, 0] == 0).all()
        assert (w[:, 6, 8, 8] == 1).all()  # the centre is always inside


def test_rotation_is_about_the_axial_axis_and_never_mirrors():
    # A blob right of centre (large x) stays on the same side of the patch for any allowed turn: no mirror.
    image, target, weight, _ = _batch(b=1, p=1)
    for seed in range(5):
        aff = random_affines(np.random.default_rng(seed), 1, SHAPE, (2.0, 1.0, 1.0), 1.0, (0.9, 1.1), 15.0)
        _, new_target, _ = spatial_augment(image, target, weight, 1, aff)
        zz, _, xx = np.nonzero(new_target[0, 0].numpy())
        assert xx.mean() > SHAPE[2] / 2 + 1  # still right of centre
        assert abs(zz.mean() - 6) < 0.5  # no tilt out of the axial plane: z unchanged
        assert np.allclose(aff[0, 2], [0, 0, aff[0, 2, 2], 0]) and np.allclose(aff[0, :2, 2], 0)


def test_affines_are_a_pure_function_of_the_generator():
    a = random_affines(
        np.random.default_rng([1, 0, 7, 1]), 4, SHAPE, (1.0, 1.0, 1.0), 0.5, (0.85, 1.15), 15.0
    )
    b = random_affines(
        np.random.default_rng([1, 0, 7, 1]), 4, SHAPE, (1.0, 1.0, 1.0), 0.5, (0.85, 1.15), 15.0
    )
    assert torch.equal(a, b)
    c = random_affines(
        np.random.default_rng([1, 0, 8, 1]), 4, SHAPE, (1.0, 1.0, 1.0), 0.5, (0.85, 1.15), 15.0
    )
    assert not torch.equal(a, c)


def test_training_batches_are_augmented_reproducibly_from_the_same_patches():
    from train_helpers import prepared, tiny_config

    from rexground.train.config import DataConfig
    from rexground.train.data import PatchSampler
    from rexground.train.loop import StepDataset

    def dataset(p: float) -> StepDataset:
        data = DataConfig(
            positives_per_patch=1, negatives_per_patch=1, foreground_fraction=1.0, spatial_augment=p
        )
        cfg = tiny_config(data=data)
        cases = [prepared(i, cfg) for i in range(2)]
        texts = sorted({t for c in cases for t in c.texts})
        return StepDataset(PatchSampler(cases, texts, cfg.input, cfg.data, seed=5), rank=0, batch_size=4)

    plain, augmented = dataset(0.0)[3], dataset(1.0)
    a, b = augmented[3], augmented[3]
    for key in plain:
        assert torch.equal(a[key], b[key])  # a pure function of the step
    assert torch.equal(a["prompt"], plain["prompt"]) and torch.equal(a["positive"], plain["positive"])
    assert not torch.equal(a["image"], plain["image"])  # same patches, moved
    assert a["target"].sum() > 0 and (a["weight"] == 0).any()


@pytest.mark.parametrize(
    "bad", [{"augment_scale": (1.2, 0.9)}, {"augment_scale": (0.1, 1.0)}, {"spatial_augment": 1.5}]
)
def test_augmentation_settings_are_validated(bad):
    from pydantic import ValidationError

    from rexground.train.config import DataConfig

    with pytest.raises(ValidationError):
        DataConfig(**bad)
