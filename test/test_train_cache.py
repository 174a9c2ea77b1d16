"""The compact training cache: anatomy words decode to exactly the dense channels, the compact storage gives
bit-identical batches, the on-disk format round-trips and refuses old caches, ``rexground prepare`` shards,
resumes and skips a corrupt CT."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from train_helpers import SPACING, blob_case, prepared, tiny_config

from rexground.infer.channels import (
    ANATOMY_CHANNELS,
    COORD_CHANNELS,
    SIDE_AND_LOBE_CHANNELS,
    ZONE_CHANNELS,
    channel_scale,
    masks_from_anatomy,
)
from rexground.train.anatomy_codec import AnatomyCodec, encode_anatomy
from rexground.train.config import DataConfig, InputSpec
from rexground.train.data import PatchSampler, crop_pad, prepare_arrays

blosc2 = pytest.importorskip("blosc2")


@pytest.fixture(scope="module")
def phantom_anatomy():
    from rexground.anatomy import compute_anatomy_from_array
    from rexground.synth import generate_case

    case = generate_case(3, size="small")
    return case, compute_anatomy_from_array(case.hu, case.spacing_zyx)


def test_real_config_channels_pack_into_one_uint8_word():
    codec = AnatomyCodec.for_channels(SIDE_AND_LOBE_CHANNELS)
    assert codec.n_words == 1  # two side bits + a 3-bit lobe label
    every = AnatomyCodec.for_channels(ANATOMY_CHANNELS)
    mask_bits = 7 + 3 + len(ZONE_CHANNELS)  # 7 masks, the 3-bit lobe label, one bit per zone
    assert every.n_words == -(-mask_bits // 8) + len(COORD_CHANNELS)  # then one word per coordinate level
    assert AnatomyCodec.from_json(json.loads(json.dumps(every.to_json()))) == every


def test_every_channel_decodes_to_exactly_the_dense_channel(phantom_anatomy):
    """The dense path of cache format 2 (each channel moved to the CT grid, cropped, resampled) against the
    words (encoded on the working grid, moved once per word): equal bit for bit, overlapping channels too."""
    from rexground.io import resample_zyx

    case, anat = phantom_anatomy
    # every kind of field (7 masks, the lobe label, zone bits, coordinate levels) over two mask words
    names = (*tuple(n for n in ANATOMY_CHANNELS if not n.startswith("zone_")), "zone_basal", "zone_posterior")
    assert AnatomyCodec.for_channels(names).n_words == 2 + len(COORD_CHANNELS)
    dense = masks_from_anatomy(anat, names)
    encoded = encode_anatomy(anat, names)
    crop = (slice(2, case.hu.shape[0] - 3), slice(5, case.hu.shape[1] - 4), slice(1, case.hu.shape[2]))
    target = (2.5, 3.0, 4.1)  # up- and downsampling
    shape = resample_zyx(case.hu[crop].astype(np.float32), case.spacing_zyx, target, order=1).shape
    words = np.stack(
        [resample_zyx(w[crop], case.spacing_zyx, target, order=0, shape=shape) for w in encoded.words]
    )
    levels = encoded.codec.decode_levels(words)
    values = encoded.codec.decode(words)
    for c, name in enumerate(names):
        reference = resample_zyx(dense[name][crop], case.spacing_zyx, target, order=0, shape=shape)
        np.testing.assert_array_equal(levels[name], reference, err_msg=name)
        expected = reference.astype(np.float32)
        expected *= channel_scale(name)  # the float32 product inference builds (infer.preprocess.prepare)
        np.testing.assert_array_equal(values[c], expected, err_msg=name)
        assert reference.any(), name  # every channel really holds something in this phantom


def test_overlapping_lobe_channels_are_refused_not_merged():
    codec = AnatomyCodec.for_channels(["lobe_RUL", "lobe_RML"])
    a = np.zeros((2, 3, 4), np.uint8)
    a[0, 0, 0] = 1
    with pytest.raises(ValueError, match="overlap"):
        codec.encode({"lobe_RUL": a, "lobe_RML": a})


def _dense_storage_patch(case, dense: np.ndarray, start, size) -> np.ndarray:
    """What cache format 2 read for a patch: crop_pad of the (C, Z, Y, X) float16 image with the air value,
    anatomy channels then zeroed outside the volume (PatchSampler before the compact storage)."""
    from rexground.infer.preprocess import air_value

    image = crop_pad(dense, start, size, air_value(case.ct_encoding.intensity)).astype(np.float32)
    inside = crop_pad(np.ones(dense.shape[1:], np.uint8), start, size, 0)
    image[1:, inside == 0] = 0.0
    return image


def test_compact_storage_gives_the_batches_of_the_dense_float16_storage():
    """The learning benchmark's configuration (norm_float16 CT, lungs by side + lobes): the sampler over the
    compact cases yields bit for bit the batches it yielded over dense float16 images."""
    cfg = tiny_config()
    spec = InputSpec(
        patch_size_zyx=(16, 24, 24), spacing_zyx=SPACING, anatomy_channels=SIDE_AND_LOBE_CHANNELS,
        text_encoder="hashing-test",
    )  # fmt: skip
    cases, denses = [], []
    for seed in range(3):
        hu, _, _, _ = blob_case(seed)
        rng = np.random.default_rng(seed)
        lobes = rng.integers(0, 7, hu.shape).astype(np.uint8)
        masks = {f"lobe_{n}": (lobes == k + 1).astype(np.uint8) for k, n in enumerate(("RUL", "RML", "RLL", "LUL", "lingula", "LLL"))}  # fmt: skip
        masks["lung_right"] = np.isin(lobes, (1, 2, 3)).astype(np.uint8)
        masks["lung_left"] = np.isin(lobes, (4, 5, 6)).astype(np.uint8)
        case = prepared(seed, cfg, spec=spec, anatomy=masks, ct_encoding="norm_float16")
        # the old storage: the float16 CT and each channel resampled and scaled, stacked as float16
        from rexground.io import resample_zyx

        channels = [np.asarray(case.ct, np.float32)]
        for name in spec.anatomy_channels:
            channels.append(
                resample_zyx(masks[name], SPACING, SPACING, order=0, shape=case.shape).astype(np.float32)
            )
        cases.append(case)
        denses.append(np.stack(channels).astype(np.float16))
    for case, dense in zip(cases, denses, strict=True):
        for start in [(0, 0, 0), (-5, 3, 30), (10, -8, -3), (20, 30, 30)]:
            np.testing.assert_array_equal(
                case.image_patch(start, (16, 24, 24)), _dense_storage_patch(case, dense, start, (16, 24, 24))
            )
    texts = sorted({t for c in cases for t in c.texts})
    compact = PatchSampler(cases, texts, spec, cfg.data, seed=5)
    reference = _DenseSampler(cases, denses, texts, spec, cfg.data, seed=5)
    for step in range(12):
        a, b = compact.batch(step, 0, 3), reference.batch(step, 0, 3)
        for field in ("image", "target", "weight", "prompt", "positive"):
            np.testing.assert_array_equal(
                getattr(a, field), getattr(b, field), err_msg=f"step {step} {field}"
            )


class _DenseSampler(PatchSampler):
    """The sampler reading patches from dense float16 images, as cache format 2 stored them."""

    def __init__(self, cases, denses, *args, **kwargs):
        super().__init__(cases, *args, **kwargs)
        self._dense = {id(c): d for c, d in zip(cases, denses, strict=True)}
        for case in self.cases:
            case.image_patch = (lambda c: lambda start, size: _dense_storage_patch(c, self._dense[id(c)], start, size))(case)  # fmt: skip


def test_hu_int16_storage_matches_the_float_path_within_half_a_hounsfield_unit():
    cfg = tiny_config()
    a = prepared(2, cfg, ct_encoding="norm_float16")
    b = prepared(2, cfg)
    assert b.ct.dtype == np.int16 and a.ct.dtype == np.float16
    diff = np.abs(a.image_patch((0, 0, 0), a.shape) - b.image_patch((0, 0, 0), b.shape))
    assert diff.max() <= 0.5 / cfg.input.intensity.std + 2e-3  # HU rounding + float16's own rounding


def test_cache_round_trip_reads_patches_lazily_and_refuses_old_formats(tmp_path):
    from rexground.train.cache import CacheFormatError, ChunkedVolume, read_case, write_case

    cfg = tiny_config()
    spec = InputSpec(patch_size_zyx=(16, 24, 24), spacing_zyx=SPACING, anatomy_channels=("body", "lobe_RLL", "coord_height"), text_encoder="hashing-test")  # fmt: skip
    hu = blob_case(1, "val")[0]
    anatomy = {"body": np.ones(hu.shape, np.uint8), "lobe_RLL": (hu < -500).astype(np.uint8), "coord_height": np.arange(hu.size, dtype=np.int64).reshape(hu.shape).astype(np.uint8)}  # fmt: skip
    case = prepared(1, cfg, "val", spec=spec, anatomy=anatomy)
    folder = write_case(case, tmp_path / "k" / "val" / "case_1")
    assert not list((tmp_path / "k" / "val").glob("*.tmp*"))
    back = read_case(folder)
    assert isinstance(back.ct, ChunkedVolume) and isinstance(back.labels, ChunkedVolume)
    for start in [(0, 0, 0), (-3, 10, 20), (12, 30, 33)]:
        np.testing.assert_array_equal(
            back.image_patch(start, (16, 24, 24)), case.image_patch(start, (16, 24, 24))
        )
    np.testing.assert_array_equal(back.image, case.image)
    np.testing.assert_array_equal(np.asarray(back.labels), case.labels)
    np.testing.assert_array_equal(back.labels_native(), case.native_labels)
    assert back.texts == case.texts and back.anatomy_codec == case.anatomy_codec
    for a, b in zip(back.fg_coords, case.fg_coords, strict=True):
        np.testing.assert_array_equal(a, b)

    old = tmp_path / "old_case"  # cache format 2: uncompressed .npy volumes
    old.mkdir()
    np.save(old / "image.npy", np.zeros((2, 3, 3, 3), np.float16))
    np.save(old / "labels.npy", np.zeros((1, 3, 3, 3), np.uint8))
    (old / "meta.json").write_text(json.dumps({"format": 2, "texts": ["x"]}))
    with pytest.raises(CacheFormatError, match=r"format 2.*rexground prepare"):
        read_case(old)
    (old / "meta.json").unlink()
    with pytest.raises(CacheFormatError, match="rexground prepare"):
        read_case(old)


def test_a_case_without_anatomy_channels_and_the_spec_check():
    cfg = tiny_config()
    case = prepared(0, cfg)
    assert case.anatomy is None and case.n_channels == 1
    spec = InputSpec(patch_size_zyx=(16, 24, 24), spacing_zyx=SPACING, anatomy_channels=("body",))
    hu, ent, texts, cats = blob_case(0)
    with pytest.raises(KeyError, match="anatomy"):
        prepare_arrays(name="x", split="train", hu_clipped_zyx=hu, spacing_zyx=SPACING, entities_fzyx=ent, texts=texts, categories=cats, spec=spec, data=DataConfig())  # fmt: skip


# ---- rexground prepare ---------------------------------------------------------------------------------


def _tiny_config_file(tmp_path, anatomy=()):
    config = {
        "net": {"preset": "tiny", "features": [8, 12, 16], "strides": [[1, 1, 1], [2, 2, 2], [2, 2, 2]],
                "encoder_blocks": [1, 1, 1], "deep_supervision": 1, "in_channels": 1 + len(anatomy)},
        "input": {"patch_size_zyx": [32, 48, 48], "spacing_zyx": [6.0, 6.0, 6.0], "text_encoder": "hashing-test",
                  "anatomy_channels": list(anatomy)},
        "data": {"max_val_cases": 2},
    }  # fmt: skip
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(config))
    return path


def test_prepare_shards_resumes_and_reports_a_corrupt_ct_without_stopping(tmp_path, capsys):
    from rexground.cli import main
    from rexground.synth import write_dataset
    from rexground.train.data import is_cached

    data = tmp_path / "data"
    write_dataset(data, 8, seed=2)  # train: cases 0, 5, 6, 7; val: 1, 3; test: 2, 4
    cfg = _tiny_config_file(tmp_path, anatomy=("lung_right", "lung_left", "lobe_RUL", "lobe_RLL"))
    cache = tmp_path / "cache"
    entries = json.loads((data / "dataset.json").read_text())
    broken = entries["train"][1]["name"]
    from rexground.dataset import resolve_ct

    ct_file = resolve_ct(data / "ct_rate", broken)
    ct_file.write_bytes(b"\x1f\x8b garbage, not a NIfTI" * 20)  # a corrupt CT
    args = ["prepare", "--data", str(data), "--config", str(cfg), "--out", str(cache), "--no-progress"]
    assert main([*args, "--shard", "1/2"]) == 1  # train scans 1 (the corrupt one) and 3, val scan 1
    out = capsys.readouterr()
    assert f"FAILED {broken}" in out.err and "1 prepared, 0 already cached, 1 failed" in out.out
    key_dir = next(p for p in cache.iterdir() if p.is_dir())
    cached = lambda: sorted(f"{p.parent.name}/{p.name}" for p in key_dir.glob("*/*") if is_cached(p))  # noqa: E731
    assert len(cached()) == 2  # train scan 3 and val scan 1; the corrupt one was skipped
    assert main([*args, "--shard", "0/2"]) == 0  # train scans 0 and 2, val scan 0
    assert len(cached()) == 5
    summary = json.loads((key_dir / "prepare-shard0of2.json").read_text())
    assert len(summary["train"]["prepared"]) == 2 and summary["train"]["prepared"][0]["bytes"] > 0
    # a rerun of everything prepares nothing again and still reports the corrupt scan
    assert main(args) == 1
    out = capsys.readouterr().out
    assert "0 prepared, 3 already cached, 1 failed" in out and "0 prepared, 2 already cached, 0 failed" in out
    assert not list(key_dir.glob("*/*.tmp*"))


def test_train_refuses_a_format_2_cache_with_the_rebuild_command(tmp_path, capsys):
    pytest.importorskip("torch")
    from rexground.cli import main
    from rexground.synth import write_dataset
    from rexground.train.config import load_config
    from rexground.train.data import legacy_cache_key

    data = tmp_path / "data"
    write_dataset(data, 3, seed=4)
    cfg_path = _tiny_config_file(tmp_path)
    cfg = load_config(cfg_path)
    old = tmp_path / "cache" / legacy_cache_key(cfg.input, cfg.data) / "train" / "train_100_a_1"
    old.mkdir(parents=True)
    np.save(old / "image.npy", np.zeros((1, 2, 2, 2), np.float16))
    args = ["train", "--config", str(cfg_path), "--data", str(data), "--out", str(tmp_path / "run"),
            "--cache", str(tmp_path / "cache"), "--no-progress"]  # fmt: skip
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "format 2" in err and "rexground prepare --data DATA --config CONFIG --out CACHE" in err


def test_prepare_takes_its_shard_from_the_torchrun_rank(tmp_path, monkeypatch, capsys):
    from rexground.cli import main
    from rexground.synth import write_dataset

    data = tmp_path / "data"
    write_dataset(data, 3, seed=4)  # one scan per split
    cfg = _tiny_config_file(tmp_path)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    args = [
        "prepare",
        "--data",
        str(data),
        "--config",
        str(cfg),
        "--out",
        str(tmp_path / "c"),
        "--no-progress",
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert re.search(r"^shard +1/2$", out, re.M) and "0 in this shard (1 in the split)" in out
    assert main([*args, "--shard", "0/1"]) == 0  # an explicit --shard wins
    assert "1 prepared" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main([*args, "--shard", "2/2"])
