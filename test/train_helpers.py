"""Tiny synthetic grounding cases for the training tests: two lungs, a nodule in each, one sentence each,
so a patch holding one nodule has a same-category negative prompt from the same scan."""

from __future__ import annotations

import numpy as np

from rexground.train.config import DataConfig, InputSpec, NetConfig, TrainConfig
from rexground.train.data import PreparedCase, prepare_arrays

SPACING = (3.0, 3.0, 3.0)


def blob_case(
    seed: int, split: str = "train", shape=(24, 40, 40)
) -> tuple[np.ndarray, np.ndarray, list, list]:
    rng = np.random.default_rng(seed)
    hu = np.full(shape, 40.0, np.float32)  # soft tissue
    z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
    right = ((y - shape[1] / 2) ** 2 / 14**2 + (x - shape[2] * 0.28) ** 2 / 8**2) < 1
    left = ((y - shape[1] / 2) ** 2 / 14**2 + (x - shape[2] * 0.72) ** 2 / 8**2) < 1
    hu[np.broadcast_to(right | left, shape)] = -850.0
    hu += rng.normal(0, 15, shape).astype(np.float32)
    ent = np.zeros((2, *shape), np.uint8)
    for f, cx in enumerate((shape[2] * 0.28, shape[2] * 0.72)):
        c = (rng.uniform(6, shape[0] - 6), shape[1] / 2 + rng.uniform(-5, 5), cx + rng.uniform(-2, 2))
        r = rng.uniform(2.0, 3.5)
        ball = ((z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2) < r**2
        hu[ball] = 30.0
        ent[f][ball] = 1
    texts = [
        "Solid nodule in the right lower lobe." if seed % 2 else "Nodule in the right lung.",
        "Solid nodule in the left lower lobe." if seed % 2 else "Nodule in the left lung.",
    ]
    return hu, ent, texts, ["2d", "2d"]


def tiny_config(**overrides) -> TrainConfig:
    base = dict(
        net=NetConfig.tiny(
            features=(8, 12, 16),
            strides=((1, 1, 1), (2, 2, 2), (2, 2, 2)),
            encoder_blocks=(1, 1, 1),
            deep_supervision=1,
        ),
        input=InputSpec(patch_size_zyx=(16, 24, 24), spacing_zyx=SPACING, text_encoder="hashing-test"),
        data=DataConfig(positives_per_patch=1, negatives_per_patch=1, max_val_cases=2),
        seed=3,
        batch_size=2,
        steps=6,
        val_every=1000,
        checkpoint_every=3,
        log_every=2,
        amp="off",
    )
    base.update(overrides)
    return TrainConfig(**base)


def prepared(
    seed: int,
    config: TrainConfig,
    split: str = "train",
    *,
    spec=None,
    anatomy=None,
    crop=None,
    ct_encoding: str = "hu_int16",
) -> PreparedCase:
    """``blob_case(seed, split)`` prepared for ``config`` (or another input ``spec``, with ``anatomy`` priors,
    cropped to ``crop``, the CT stored as ``ct_encoding``)."""
    hu, ent, texts, cats = blob_case(seed, split)
    return prepare_arrays(
        name=f"case_{seed}.nii.gz",
        split=split,
        hu_clipped_zyx=hu,
        spacing_zyx=SPACING,
        entities_fzyx=ent,
        texts=texts,
        categories=cats,
        spec=spec or config.input,
        data=config.data,
        anatomy=anatomy,
        keep_native_labels=split != "train",
        crop=crop,
        ct_encoding=ct_encoding,
    )
