"""Benchmark the real network (configs/real.toml, 48.5M parameters) on the CPU: peak memory and CPU seconds of
one training step and of validating one CT-RATE-size scan.

    python bench/bench_real_step.py [--config configs/real.toml] [--step 1:off 1:bf16 2:bf16]
        [--data DIR [--cache CACHE]]

``--step B:AMP`` runs one optimiser step on a batch of B patches (``batch_size``; each with the config's
prompts per patch) under autocast AMP (off = fp32, bf16), on random inputs of the real shapes. ``--data``
(a ``rexground synth --size real`` dataset) also prepares its first validation scan and validates the
real network (random weights) on it exactly as training validates: sliding window over the whole grid, the
inference path's tiling, resampling to the native grid, postprocessing, official metrics. Each
measurement runs in a fresh process, so its peak RSS (``ru_maxrss``) is its own. The machine may be shared:
CPU seconds are the measure. fp32 batch 2 needs about 25 GB; ask for it only on a machine that has it.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", type=Path, default=REPO / "configs" / "real.toml")
    p.add_argument("--step", nargs="*", default=["1:off", "1:bf16", "2:bf16"], help="B:AMP, AMP off or bf16")
    p.add_argument("--data", type=Path, default=None, help="a `rexground synth --size real` dataset")
    p.add_argument("--cache", type=Path, default=None)
    p.add_argument("--threads", type=int, default=2)
    return p.parse_args()


def train_step(config_path: Path, batch: int, amp: str, threads: int) -> dict:
    import torch

    from rexground.train.config import load_config
    from rexground.train.loop import amp_dtype, build_optimizer, peak_rss_gb
    from rexground.train.losses import grounding_loss
    from rexground.train.network import GroundingNet

    torch.set_num_threads(threads)
    cfg = load_config(config_path)
    P, shape = cfg.data.prompts_per_patch, cfg.input.patch_size_zyx
    net = GroundingNet(cfg.net)
    opt = build_optimizer(net, cfg.optim)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, cfg.net.in_channels, *shape, generator=g)
    text, query = (
        torch.randn(batch * P, cfg.net.text_dim, generator=g),
        torch.randn(batch * P, cfg.net.query_dim, generator=g),
    )
    target = (torch.rand(batch * P, 1, *shape, generator=g) > 0.995).float()
    weight, positive = torch.ones_like(target), torch.ones(batch * P, dtype=torch.bool)
    dtype = amp_dtype(amp, torch.device("cpu"))
    before = peak_rss_gb()
    cpu, wall = time.process_time(), time.perf_counter()
    with torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
        outs = net(x, text, query, prompts_per_image=P, deep_supervision=cfg.net.deep_supervision > 0)
    loss, _ = grounding_loss(outs, target, weight, positive, cfg.loss)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return {"what": f"train step, batch {batch} x {P} prompts, amp {amp}", "cpu_s": time.process_time() - cpu,
            "wall_s": time.perf_counter() - wall, "peak_gb": peak_rss_gb(), "before_gb": before}  # fmt: skip


def validation(config_path: Path, data: Path, cache: Path, threads: int) -> dict:
    import torch

    from rexground.train.config import load_config
    from rexground.train.data import load_case
    from rexground.train.loop import peak_rss_gb
    from rexground.train.network import GroundingNet
    from rexground.train.prepare import prepare_split
    from rexground.train.text_inputs import sentence_embeddings, structure_features
    from rexground.train.validate import validate

    torch.set_num_threads(threads)
    cfg = load_config(config_path)
    res = prepare_split(
        data, cfg.data.val_split, cfg.input, cfg.data, cache, limit=1, rebuild_old=True, progress=False
    )
    case = load_case(res.folders[0])
    texts = sorted(case.texts)
    emb = torch.from_numpy(sentence_embeddings(texts, "hashing-test"))  # the embedder does not change memory
    qf = torch.from_numpy(structure_features(texts))
    torch.manual_seed(0)
    net = GroundingNet(cfg.net)
    before = peak_rss_gb()
    cpu, wall = time.process_time(), time.perf_counter()
    out = validate(net, [case], emb, qf, {t: i for i, t in enumerate(texts)}, cfg.input, cfg.threshold,
                   cfg.tile_step, torch.device("cpu"))  # fmt: skip
    grid = "x".join(map(str, case.shape))
    native = "x".join(map(str, case.native_shape))
    return {"what": f"validation of {case.name} ({case.n_findings} findings; model grid {grid}, native {native}), fp32",
            "cpu_s": time.process_time() - cpu, "wall_s": time.perf_counter() - wall, "peak_gb": peak_rss_gb(),
            "before_gb": before, "dice": out["dice_per_case"]}  # fmt: skip


def main() -> int:
    args = _parse()
    ctx = multiprocessing.get_context("spawn")
    rows = []
    for spec in args.step:
        b, amp = spec.split(":")
        with ctx.Pool(1) as pool:
            rows.append(pool.apply(train_step, (args.config, int(b), amp, args.threads)))
        print(f"done: {rows[-1]['what']}", file=sys.stderr, flush=True)
    if args.data is not None:
        cache = args.cache or Path(tempfile.mkdtemp(prefix="bench_real_step_"))
        with ctx.Pool(1) as pool:
            rows.append(pool.apply(validation, (args.config, args.data, cache, args.threads)))
    print(f"\n{args.config.name}, CPU, {args.threads} torch threads (shared machine: compare CPU seconds)")
    print(f"{'measurement':78s} {'CPU s':>7s} {'wall s':>7s} {'peak GiB':>9s}")
    for r in rows:
        print(f"{r['what']:78s} {r['cpu_s']:7.1f} {r['wall_s']:7.1f} {r['peak_gb']:9.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
