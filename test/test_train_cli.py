"""``rexground train`` end to end on a phantom dataset written in the challenge's layout."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")

from rexground.cli import main


@pytest.mark.slow
def test_train_command_prepares_trains_validates_and_resumes(tmp_path):
    from rexground.synth import write_dataset

    data = tmp_path / "data"
    write_dataset(data, 3, seed=4)  # one train, one val, one test scan
    config = {
        "net": {"preset": "tiny", "features": [8, 12, 16], "strides": [[1, 1, 1], [2, 2, 2], [2, 2, 2]],
                "encoder_blocks": [1, 1, 1], "deep_supervision": 1},
        "input": {"patch_size_zyx": [32, 48, 48], "spacing_zyx": [6.0, 6.0, 6.0], "text_encoder": "hashing-test"},
        "steps": 2, "val_every": 2, "checkpoint_every": 1, "log_every": 1, "amp": "off", "tile_step": 1.0,
    }  # fmt: skip
    cfg_path = tmp_path / "tiny.json"
    cfg_path.write_text(json.dumps(config))
    run = tmp_path / "run"
    args = ["train", "--config", str(cfg_path), "--data", str(data), "--out", str(run), "--no-progress"]
    assert main(args) == 0
    assert (run / "checkpoints" / "last.pt").is_file() and (run / "checkpoints" / "best.pt").is_file()
    records = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    val = [r["val"] for r in records if "val" in r]
    assert val and 0.0 <= val[-1]["dice_per_case"] <= 1.0 and val[-1]["n_cases"] == 1
    cached = list((run / "cache").glob("*/train/*/meta.json"))
    assert len(cached) == 1
    assert main(args) == 1  # a used run folder needs --resume
    assert main([*args, "--resume"]) == 0  # nothing left to do, but it loads and checks everything
    assert (
        main(
            [
                "train",
                "--config",
                str(cfg_path),
                "--data",
                str(tmp_path / "nowhere"),
                "--out",
                str(tmp_path / "r2"),
            ]
        )
        == 1
    )
