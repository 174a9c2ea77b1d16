"""Before the network: padding, body crop, resampling, normalisation, anatomy channels."""

from __future__ import annotations

import numpy as np
import pytest

from rexground.infer.package import IntensityNormalisation
from rexground.infer.preprocess import air_value, body_box, normalise, prepare

NORM = IntensityNormalisation(clip_min=-1000.0, clip_max=1000.0, mean=-300.0, std=500.0)


def chest(shape=(40, 60, 70)) -> np.ndarray:
    z, y, x = np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij")
    hu = np.full(shape, -1000, np.int16)
    hu[((y / 0.5) ** 2 + (x / 0.6) ** 2 < 1) & (np.abs(z) < 0.8)] = 40
    hu[(y**2 + x**2) > 1] = -2048
    return hu


def test_padding_is_clipped_before_normalising():
    hu = np.array([-8192, -2048, -1024, -1000, 0, 5000], np.float32)
    from rexground.io import clip_padding

    out = normalise(clip_padding(hu), NORM)
    assert out[0] == out[1] == out[2] == out[3] == pytest.approx((-1000 + 300) / 500)
    assert out[-1] == pytest.approx((1000 + 300) / 500)
    assert air_value(NORM) == pytest.approx((-1000 + 300) / 500)


def test_body_box_crops_air_and_keeps_the_body():
    hu = chest()
    box = body_box(hu, (2.0, 1.0, 1.0), margin_mm=4.0)
    body = hu > -500
    inside = np.zeros_like(body)
    inside[box] = True
    assert body[~inside].sum() == 0  # nothing of the body is cut
    assert inside.sum() < 0.7 * inside.size  # and the air around it is
    empty = np.full((10, 12, 14), -1000, np.int16)
    assert body_box(empty, (1, 1, 1)) == (slice(0, 10), slice(0, 12), slice(0, 14))


def test_prepare_resamples_the_crop_and_pads_with_air():
    hu = chest()
    lungs = (hu == -1000).astype(np.uint8)
    p = prepare(hu, (2.0, 1.0, 1.0), target_spacing=(4.0, 2.0, 2.0), norm=NORM, channels=("ct", "lungs"),
                anatomy={"lungs": lungs})  # fmt: skip
    crop = p.crop_shape
    assert p.image.shape == (2, round(crop[0] / 2), round(crop[1] / 2), round(crop[2] / 2))
    assert p.image.dtype == np.float32 and set(np.unique(p.image[1])) <= {0.0, 1.0}
    assert p.image[0].min() >= air_value(NORM) - 1e-6  # -2048 padding became air, not below it
    assert p.pad_values == (pytest.approx(air_value(NORM)), 0.0)
    with pytest.raises(KeyError, match="lungs"):
        prepare(hu, (2.0, 1.0, 1.0), target_spacing=(4.0, 2.0, 2.0), norm=NORM, channels=("ct", "lungs"))


def test_prepare_scales_coordinate_levels_as_training_does():
    from rexground.infer.channels import COORD_LEVELS
    from rexground.train.config import DataConfig, InputSpec
    from rexground.train.data import prepare_arrays

    hu = chest()
    lungs = hu == -1000
    levels = np.where(lungs, 1 + np.arange(hu.shape[0])[:, None, None] * 10 % COORD_LEVELS, 0).astype(np.uint8)
    channels = ("ct", "lungs", "coord_height")
    anatomy = {"lungs": lungs.astype(np.uint8), "coord_height": levels}
    p = prepare(hu, (2.0, 1.0, 1.0), target_spacing=(4.0, 2.0, 2.0), norm=NORM, channels=channels,
                anatomy=anatomy, crop="none")  # fmt: skip
    coord = p.image[2]
    assert coord[p.image[1] > 0].min() > 0.0 and coord.max() <= 1.0  # levels 1..255 -> (0, 1]
    assert set(np.unique(p.image[1])) <= {0.0, 1.0}  # masks are not scaled
    assert np.isclose(coord.max() * COORD_LEVELS, levels.max(), atol=1e-3)
    spec = InputSpec(patch_size_zyx=(8, 8, 8), spacing_zyx=(4.0, 2.0, 2.0), anatomy_channels=channels[1:])
    ents = lungs[None].astype(np.uint8)
    train = prepare_arrays(name="c", split="train", hu_clipped_zyx=np.maximum(hu, -1024).astype(np.float32),
                           spacing_zyx=(2.0, 1.0, 1.0), entities_fzyx=ents, texts=["x"], categories=["2b"],
                           spec=spec, data=DataConfig(), anatomy=anatomy)  # fmt: skip
    np.testing.assert_allclose(train.image[1:].astype(np.float32), p.image[1:], atol=1e-3)  # fp16 storage
