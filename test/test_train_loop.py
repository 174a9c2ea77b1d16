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
from rexground.train.loop import amp_dtype, lr_factor, train  # noqa: E402


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


def test_autocast_dtype_on_cpu_only_when_bf16_is_asked_for():
    cpu, cuda = torch.device("cpu"), torch.device("cuda", 0)
    assert amp_dtype("bf16", cpu) is torch.bfloat16
    assert amp_dtype("auto", cpu) is None and amp_dtype("fp16", cpu) is None and amp_dtype("off", cpu) is None
    assert amp_dtype("off", cuda) is None and amp_dtype("bf16", cuda) is torch.bfloat16


def test_a_wall_time_schedule_decays_the_lr_to_the_end_of_the_budget(tmp_path):
    cfg = tiny_config(steps=10**6, log_every=1, checkpoint_every=10**6)
    cfg = cfg.model_copy(update={"optim": cfg.optim.model_copy(update={"warmup_steps": 2})})
    summary = train(
        cfg,
        tmp_path / "run",
        [prepared(s, cfg) for s in (0, 1)],
        max_minutes=0.05,
        schedule_minutes=0.05,
        progress=False,
    )
    assert summary["stopped_early"] and 5 < summary["steps_done"] < 10**6
    lrs = [json.loads(x)["lr"] for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert max(lrs) > 0.5 * cfg.optim.lr  # it warmed up to (nearly) the full rate ...
    assert lrs[-1] < 0.35 * cfg.optim.lr  # ... and had decayed most of the way when the time ran out


def test_a_bf16_cpu_run_trains_and_its_checkpoint_loads(tmp_path):
    cfg = tiny_config(amp="bf16", steps=4)
    summary = train(cfg, tmp_path / "run", [prepared(s, cfg) for s in (0, 1)], progress=False)
    assert summary["steps_done"] == 4 and torch.isfinite(torch.tensor(summary["last"]["loss"]))
    net, _ = load_network(tmp_path / "run", which="last")
    assert all(p.dtype == torch.float32 for p in net.parameters())  # autocast leaves the weights in fp32


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
