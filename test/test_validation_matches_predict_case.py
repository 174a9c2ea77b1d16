"""The Dice that training reports is the Dice the container produces: ``rexground train`` validates a tiny
network on held-out phantoms, ``rexground export`` packages it, ``rexground predict-case --engine network``
(and ``rexground predict``, the challenge route, which writes the same masks in the submission layout)
grounds the same phantoms' findings with the package (onnxruntime) and ``rexground evaluate`` scores them:
the per-case Dice of the last validation and of the evaluation agree to 1e-6, and every finding's mask has
the same number of voxels.

Both go through ``rexground.infer``: the same network input (the validation cache holds what
``infer.preprocess.prepare`` computes for the CT), the same sliding window and the same way back from logits
to a postprocessed mask on the CT grid (``infer.masks``); only the tile backend differs (torch, onnxruntime).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch")

from rexground.cli import main

CONFIG = """
seed = 0
batch_size = 2
steps = 12
val_every = 12
checkpoint_every = 12
log_every = 4
amp = "off"
tile_step = 0.75  # not the default: the manifest carries it to the engine

[net]
preset = "tiny"

[input]
patch_size_zyx = [16, 32, 32]
spacing_zyx = [6.0, 6.0, 6.0]
text_encoder = "hashing-test"

[data]
positives_per_patch = 2
negatives_per_patch = 1
max_val_cases = 2

[optim]
optimizer = "adamw"
lr = 3e-3
warmup_steps = 2
"""

# A config with anatomy channels, for the exactness of the cached network input.
ANATOMY_CONFIG = CONFIG.replace(
    '[net]\npreset = "tiny"', '[net]\npreset = "tiny"\nin_channels = 4\nanatomy_gate_maps = 2'
).replace(
    'text_encoder = "hashing-test"',
    'text_encoder = "hashing-test"\nanatomy_channels = ["lung_right", "lung_left", "coord_height"]',
)


def test_a_validation_case_holds_exactly_the_network_input_inference_computes(tmp_path):
    """The cache's validation image is bit for bit what the network engine feeds the network for the CT
    (crop, padding clip, resampling, normalisation, anatomy channels and their scaling)."""
    import tomllib

    from rexground.infer.channels import anatomy_prior_masks
    from rexground.infer.preprocess import prepare
    from rexground.io import read_ct
    from rexground.synth import write_dataset
    from rexground.train.config import parse_config
    from rexground.train.data import load_case
    from rexground.train.prepare import prepare_split
    from rexground.train.validate import network_input

    config = parse_config(tomllib.loads(ANATOMY_CONFIG))
    assert config.input.anatomy_channels
    data = tmp_path / "data"
    write_dataset(data, n_cases=2, seed=1)  # case 1 is a validation case
    (folder,) = prepare_split(
        data, "val", config.input, config.data, tmp_path / "cache", limit=1, progress=False
    ).folders
    case = load_case(folder)
    (ct_path,) = (data / "ct_rate").rglob(case.name)
    ct = read_ct(ct_path)
    channels = ("ct", *config.input.anatomy_channels)
    expected = prepare(
        ct.hu, ct.spacing_zyx, target_spacing=config.input.spacing_zyx, norm=config.input.intensity,
        channels=channels, anatomy=anatomy_prior_masks(ct, channels[1:]),
    )  # fmt: skip
    got = network_input(case, config.input)
    assert got.image.dtype == np.float32 and np.array_equal(got.image, expected.image)
    assert got.crop == expected.crop and got.ct_shape == expected.ct_shape
    assert got.pad_values == expected.pad_values and got.model_spacing == expected.model_spacing


@pytest.mark.slow
def test_training_validation_dice_equals_predict_case_scored_by_evaluate(tmp_path, capsys):
    from rexground.io import read_mask_raw

    data, run, model, pred = tmp_path / "data", tmp_path / "run", tmp_path / "model", tmp_path / "pred"
    assert main(["synth", "--out", str(data), "--cases", "6", "--seed", "0"]) == 0  # 2 train, 2 val scans
    config = tmp_path / "tiny.toml"
    config.write_text(CONFIG)
    assert main(["train", "--config", str(config), "--data", str(data), "--out", str(run), "--no-progress",
                 "--device", "cpu"]) == 0  # fmt: skip
    val = [
        json.loads(line)["val"] for line in (run / "log.jsonl").read_text().splitlines() if '"val"' in line
    ]
    reported = val[-1]  # the last validation: the weights of checkpoints/last.pt
    assert len(reported["per_case"]) == 2

    assert main(["export", "--run", str(run), "--checkpoint", "last", "--out", str(model), "--allow-test-embedder",
                 "--no-fp16", "--parity-scans", "1", "--parity-phantoms", "builtin"]) == 0  # fmt: skip
    assert main(["predict", "--dataset", str(data / "dataset.json"), "--split", "val", "--ct-root",
                 str(data / "ct_rate"), "--out", str(pred), "--engine", "network", "--model", str(model),
                 "--device", "cpu", "--no-progress"]) == 0  # fmt: skip
    # predict-case answers each scan with the same masks (a 3D mask for one finding, else channels)
    for entry in json.loads((data / "dataset.json").read_text())["val"]:
        (ct,) = (data / "ct_rate").rglob(entry["name"])
        out = tmp_path / "case" / entry["name"]
        args = ["predict-case", "--ct", str(ct), "--out", str(out), "--engine", "network", "--model", str(model),
                "--device", "cpu"]  # fmt: skip
        for key in sorted(entry["findings"], key=int):
            args += ["--finding", entry["findings"][key]]
        assert main(args) == 0
        single = read_mask_raw(out)
        submitted = read_mask_raw(pred / entry["name"])
        np.testing.assert_array_equal(single if single.ndim == 4 else single[None], submitted)

    metrics = tmp_path / "metrics.json"
    assert main(["evaluate", "--gt-dir", str(data / "segmentations"), "--pred-dir", str(pred), "--dataset",
                 str(data / "dataset.json"), "--split", "val", "--global-only", "--quiet",
                 "--out", str(metrics)]) == 0  # fmt: skip
    capsys.readouterr()
    cases = {case["name"]: case for case in json.loads(metrics.read_text())["cases"]}
    assert set(cases) == set(reported["per_case"])
    for name, dice in reported["per_case"].items():
        scored = [f["dice"] for f in cases[name]["findings"]]
        assert float(np.mean(scored)) == pytest.approx(dice, abs=1e-6), (name, scored, reported)
        # the very masks: every finding's predicted voxels after the official component filter
        voxels = [f["pred_voxels"] for f in cases[name]["findings"]]
        assert voxels == [f["pred_voxels"] for f in reported["per_finding"][name]], name
    assert json.loads((model / "manifest.json").read_text())["tile_step"] == 0.75
