"""The distributed path: two CPU processes on the gloo backend train one model with DistributedDataParallel."""

from __future__ import annotations

import json
import os
import socket

import pytest

torch = pytest.importorskip("torch")
mp = pytest.importorskip("torch.multiprocessing")

from train_helpers import prepared, tiny_config  # noqa: E402

from rexground.train.checkpoint import read_checkpoint  # noqa: E402
from rexground.train.loop import train  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)
    cfg = tiny_config(steps=3, checkpoint_every=3)
    cases = [prepared(i, cfg) for i in range(3)]
    summary = train(cfg, os.path.join(out, "run"), cases, device="cpu", progress=False)
    with open(os.path.join(out, f"rank{rank}.json"), "w") as fh:
        json.dump({"checksum": summary["param_checksum"], "steps": summary["steps_done"]}, fh)


@pytest.mark.slow
def test_two_gloo_processes_keep_identical_weights_and_average_gradients(tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    r0 = json.loads((tmp_path / "rank0.json").read_text())
    r1 = json.loads((tmp_path / "rank1.json").read_text())
    assert r0["steps"] == r1["steps"] == 3
    assert r0["checksum"] == r1["checksum"]  # DDP kept the replicas identical
    ckpt = read_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")  # written by rank 0 only
    assert ckpt["step"] == 3
    assert float(sum(p.double().abs().sum() for p in ckpt["model"].values() if p.is_floating_point())) > 0

    # A single process sees only rank 0's batches: different gradients, different weights.
    torch.set_num_threads(1)
    cfg = tiny_config(steps=3, checkpoint_every=3)
    single = train(
        cfg, tmp_path / "single", [prepared(i, cfg) for i in range(3)], device="cpu", progress=False
    )
    assert single["param_checksum"] != r0["checksum"]
