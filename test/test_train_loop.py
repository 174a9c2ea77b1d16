"""The training loop: checkpoints, exact resume, validation with the official metrics, the run folder."""

from __future__ import annotations

import itertools
import json

import pytest

torch = pytest.importorskip("torch")

from train_helpers import prepared, tiny_config  # noqa: E402

from rexground.errors import InputFileError  # noqa: E402
from rexground.train.checkpoint import load_network, read_checkpoint  # noqa: E402
from rexground.train.config import OptimConfig  # noqa: E402
from rexground.train.loop import lr_factor, train  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread():
    # Bit-exact comparisons need the same reduction order in every run; one thread also keeps the tests
    # from fighting over a shared machine's cores.
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def test_lr_warms_up_then_decays_to_zero():
    cfg = OptimConfig(warmup_steps=10, poly_exponent=0.9)
    f = [lr_factor(s, cfg, 100) for s in range(100)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in itertools.pairwise(f[10:]))
    assert lr_factor(100, cfg, 100) == 0.0


@pytest.mark.slow
def test_resume_reproduces_an_uninterrupted_run_exactly(tmp_path):
    cfg = tiny_config(steps=6, checkpoint_every=3)
    cases = [prepared(i, cfg) for i in range(3)]
    full = train(cfg, tmp_path / "full", cases, progress=False)
    assert full["steps_done"] == 6
    part = train(cfg, tmp_path / "split", cases, progress=False, stop_after_steps=3)  # interrupted at N/2
    assert part["stopped_early"] and part["steps_done"] == 3
    resumed = train(cfg, tmp_path / "split", cases, progress=False, resume=True)
    assert resumed["steps_done"] == 6
    a = read_checkpoint(tmp_path / "full" / "checkpoints" / "last.pt")
    b = read_checkpoint(tmp_path / "split" / "checkpoints" / "last.pt")
    assert a["step"] == b["step"] == 6
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), k
    sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]
    assert sa.keys() == sb.keys()
    for i in sa:
        assert all(torch.equal(sa[i][k], sb[i][k]) for k in sa[i]), i  # momentum buffers too
    lines = [json.loads(x) for x in (tmp_path / "split" / "log.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines if "loss" in x] == [2, 4, 6]


@pytest.mark.slow
def test_a_time_budget_stops_with_a_checkpoint(tmp_path):
    cfg = tiny_config(steps=50)
    out = train(cfg, tmp_path / "run", [prepared(0, cfg)], progress=False, max_minutes=0.0)
    assert out["stopped_early"] and out["steps_done"] == 1
    assert read_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["step"] == 1


@pytest.mark.slow
def test_a_used_run_folder_needs_resume(tmp_path):
    cfg = tiny_config(steps=1)
    cases = [prepared(0, cfg)]
    train(cfg, tmp_path / "run", cases, progress=False)
    with pytest.raises(InputFileError, match="--resume"):
        train(cfg, tmp_path / "run", cases, progress=False)
    with pytest.raises(InputFileError, match="differs"):
        train(cfg.model_copy(update={"seed": 99}), tmp_path / "run", cases, progress=False, resume=True)


@pytest.mark.slow
def test_validation_scores_held_out_cases_and_keeps_the_best(tmp_path):
    cfg = tiny_config(steps=2, val_every=2)
    out = train(cfg, tmp_path / "run", [prepared(0, cfg)], [prepared(7, cfg, split="val")], progress=False)
    val = out["val"]
    assert val["n_cases"] == 1 and 0.0 <= val["dice_per_case"] <= 1.0
    assert set(val["per_case"]) == {"case_7.nii.gz"}
    net, config = load_network(tmp_path / "run")  # best.pt, as the export step loads it
    assert not net.training and config == cfg
    assert read_checkpoint(tmp_path / "run" / "checkpoints" / "best.pt")["best"] == pytest.approx(
        val["dice_per_case"]
    )
