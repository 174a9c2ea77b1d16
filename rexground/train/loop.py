"""The training loop: one process, or one per device under torchrun (DDP).

Each step: a batch of patches (a pure function of seed, rank and step, see ``data.PatchSampler``), one
encoder pass per patch and one decoder pass per prompt, BCE + Dice with deep supervision, gradient
clipping, optimizer and LR-schedule step (linear warm-up, then poly decay). AMP on CUDA (bf16 where the
GPU supports it, else fp16 with a gradient scaler); fp32 on the CPU.

Exact resume: ``checkpoints/last.pt`` holds the model, optimizer, scheduler, scaler, step and RNG states;
since batches depend only on (seed, rank, step), a run resumed at step k continues with the very batches
an uninterrupted run would have seen, and on the CPU reproduces its weights bit for bit (tested).
Validation (main rank; the others wait) runs the official metrics on held-out scans; the best per-case
Dice is kept as ``checkpoints/best.pt``. Every ``log_every`` steps a JSON line goes to ``log.jsonl``.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset

from rexground.errors import InputFileError
from rexground.train.augment import random_affines, spatial_augment
from rexground.train.checkpoint import read_checkpoint, save_checkpoint
from rexground.train.config import OptimConfig, TrainConfig
from rexground.train.data import Batch, PatchSampler, PreparedCase
from rexground.train.distributed import (
    DistInfo,
    any_flag,
    barrier,
    broadcast_float,
    cleanup,
    init_distributed,
)
from rexground.train.losses import grounding_loss
from rexground.train.network import GroundingNet
from rexground.train.text_inputs import sentence_embeddings, structure_features
from rexground.train.validate import validate


class StepDataset(Dataset):
    """Map-style view of the sampler indexed by step, so DataLoader workers prefetch deterministic batches."""

    def __init__(self, sampler: PatchSampler, rank: int, batch_size: int):
        self.sampler, self.rank, self.batch_size = sampler, rank, batch_size

    def __len__(self) -> int:
        return 2**62

    def __getitem__(self, step: int) -> dict:
        b: Batch = self.sampler.batch(int(step), self.rank, self.batch_size)
        image, target, weight = (
            torch.from_numpy(b.image),
            torch.from_numpy(b.target),
            torch.from_numpy(b.weight),
        )
        data = self.sampler.data
        if data.spatial_augment > 0:  # its own stream, so the patches drawn do not depend on it
            rng = np.random.default_rng([self.sampler.seed, self.rank, int(step), 1])
            affines = random_affines(
                rng,
                image.shape[0],
                image.shape[2:],
                self.sampler.spec.spacing_zyx,
                data.spatial_augment,
                data.augment_scale,
                data.augment_rotation_deg,
            )
            image, target, weight = spatial_augment(image, target, weight, b.prompts_per_image, affines)
        return {
            "image": image,
            "target": target,
            "weight": weight,
            "prompt": torch.from_numpy(b.prompt),
            "positive": torch.from_numpy(b.positive),
        }


def peak_rss_gb() -> float:
    """Peak resident memory of this process so far (GiB): logged, since a real-size run on a small machine
    is bounded by it."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def lr_factor(step: int, cfg: OptimConfig, total_steps: int) -> float:
    """Linear warm-up to 1 over ``warmup_steps``, then poly decay ``(1 - t)^exponent`` to 0 at the end."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    span = max(1, total_steps - cfg.warmup_steps)
    t = min(1.0, (step - cfg.warmup_steps) / span)
    return max(0.0, 1.0 - t) ** cfg.poly_exponent


def build_optimizer(net: GroundingNet, cfg: OptimConfig) -> torch.optim.Optimizer:
    """Two parameter groups: the image encoder (``encoder_lr_scale`` x lr, for fine-tuning) and the rest."""
    enc_ids = {id(p) for m in (net.stem, net.encoder) for p in m.parameters()}
    enc = [p for p in net.parameters() if id(p) in enc_ids]
    dec = [p for p in net.parameters() if id(p) not in enc_ids]
    groups = [
        {"params": enc, "lr": cfg.lr * cfg.encoder_lr_scale},
        {"params": dec, "lr": cfg.lr},
    ]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=True, weight_decay=cfg.weight_decay
        )
    return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)


def amp_dtype(setting: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype: bf16 or fp16 on CUDA ("auto" picks bf16 where supported); on the CPU only an
    explicit "bf16" (oneDNN runs bf16 convolutions about twice as fast on CPUs with AVX512-BF16 or AMX)."""
    if setting == "off":
        return None
    if device.type != "cuda":
        return torch.bfloat16 if setting == "bf16" else None
    if setting == "bf16" or (setting == "auto" and torch.cuda.is_bf16_supported()):
        return torch.bfloat16
    return torch.float16


def _rng_states() -> dict:
    states = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_rng_states(states: dict) -> None:
    torch.set_rng_state(states["torch"])
    np.random.set_state(states["numpy"])
    random.setstate(states["python"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


class JsonlLog:
    def __init__(self, path: Path | None):
        self.fh = open(path, "a") if path is not None else None  # noqa: SIM115 (open for the run's lifetime)

    def write(self, record: dict) -> None:
        if self.fh is not None:
            self.fh.write(json.dumps(record) + "\n")
            self.fh.flush()

    def close(self) -> None:
        if self.fh is not None:
            self.fh.close()


def _check_run_folder(out_dir: Path, config: TrainConfig, resume: bool) -> None:
    cfg_path = out_dir / "config.json"
    last = out_dir / "checkpoints" / "last.pt"
    if last.exists() and not resume:
        raise InputFileError(
            out_dir, "already holds a training run (checkpoints/last.pt); pass --resume or use a new folder"
        )
    if resume and cfg_path.exists():
        # Read through the config model, so a run folder written by an older rexground compares equal.
        old = TrainConfig.model_validate(json.loads(cfg_path.read_text())).model_dump(mode="json")
        new = config.model_dump(mode="json")
        if old != new:
            diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            raise InputFileError(
                cfg_path, f"differs from the config given to --resume (sections: {', '.join(diff)})"
            )
    out_dir.mkdir(parents=True, exist_ok=True)
    cfg_path.write_text(json.dumps(config.model_dump(mode="json"), indent=1))


def train(
    config: TrainConfig,
    out_dir: str | Path,
    train_cases: Sequence[PreparedCase],
    val_cases: Sequence[PreparedCase] = (),
    *,
    resume: bool = False,
    device: str = "auto",
    max_minutes: float | None = None,
    stop_after_steps: int | None = None,
    progress: bool = True,
    info: DistInfo | None = None,
    text_cache: Path | None = None,
    schedule_minutes: float | None = None,
) -> dict:
    """Train on prepared cases; returns a summary (steps done, last losses, best validation).

    ``max_minutes`` / ``stop_after_steps`` end this invocation early (with a checkpoint) without changing
    the schedule, e.g. for time-limited cluster jobs that ``--resume`` each other.

    ``schedule_minutes`` plans the learning-rate schedule in wall time instead of ``config.steps``: after
    every step the number of steps that fit in the budget is re-estimated from the pace so far (rank 0's
    estimate on every rank), so warm-up and poly decay end when the time does. For time-boxed runs (the
    learning benchmark) with ``max_minutes`` equal to it; a resumed run starts the clock again, so such a
    run is not bit-for-bit resumable."""
    out_dir = Path(out_dir)
    own_group = info is None
    info = info or init_distributed(device)
    try:
        return _train(
            config,
            out_dir,
            list(train_cases),
            list(val_cases),
            resume,
            max_minutes,
            stop_after_steps,
            progress,
            info,
            text_cache=text_cache,
            schedule_minutes=schedule_minutes,
        )
    finally:
        if own_group:
            cleanup(info)


def _train(
    config,
    out_dir,
    train_cases,
    val_cases,
    resume,
    max_minutes,
    stop_after_steps,
    progress,
    info: DistInfo,
    text_cache=None,
    schedule_minutes: float | None = None,
) -> dict:
    if info.is_main:
        _check_run_folder(out_dir, config, resume)
    barrier(info)
    dev = info.device
    texts = sorted({t for c in train_cases + val_cases for t in c.texts})
    emb_table = torch.from_numpy(sentence_embeddings(texts, config.input.text_encoder, text_cache)).to(dev)
    query_table = torch.from_numpy(structure_features(texts)).to(dev)
    text_index = {t: i for i, t in enumerate(texts)}

    torch.manual_seed(config.seed)  # identical initial weights on every rank (DDP broadcasts them anyway)
    net = GroundingNet(config.net).to(dev)
    model: torch.nn.Module = net
    if info.enabled:
        model = DistributedDataParallel(net, device_ids=[dev.index] if dev.type == "cuda" else None)
    optimizer = build_optimizer(net, config.optim)
    planned = [config.steps]  # the schedule's length; re-estimated per step with ``schedule_minutes``
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, config.optim, planned[0]))
    dtype = amp_dtype(config.amp, dev)
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)

    start_step, best = 0, -math.inf
    last_path, best_path = out_dir / "checkpoints" / "last.pt", out_dir / "checkpoints" / "best.pt"
    if resume and last_path.exists():
        ckpt = read_checkpoint(last_path)
        net.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        scaler.load_state_dict(ckpt["scaler"])
        _set_rng_states(ckpt["rng"])
        start_step, best = int(ckpt["step"]), float(ckpt.get("best", -math.inf))

    def payload(step: int) -> dict:
        return {
            "model": net.state_dict(),
            "config": config.model_dump(mode="json"),
            "step": step,
            "best": best,
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(),
            "rng": _rng_states(),
            "texts": texts,
        }

    sampler = PatchSampler(
        train_cases, texts, config.input, config.data, config.seed, config.loss.ignore_weight
    )
    loader = DataLoader(
        StepDataset(sampler, info.rank, config.batch_size),
        batch_size=None,
        sampler=range(start_step, config.steps),
        num_workers=config.data.num_workers,
        pin_memory=dev.type == "cuda",
    )
    log = JsonlLog(out_dir / "log.jsonl" if info.is_main else None)
    bar = None
    if progress and info.is_main:
        from tqdm import tqdm

        bar = tqdm(total=config.steps, initial=start_step, desc="train", unit="step", dynamic_ncols=True)
    P = config.data.prompts_per_patch
    use_ds = config.net.deep_supervision > 0
    t_start = time.monotonic()
    t_log = time.monotonic()
    done = start_step
    last_parts: dict = {}
    val_result: dict | None = None
    stopped_early = False
    model.train()
    for step, batch in zip(range(start_step, config.steps), loader, strict=False):
        x = batch["image"].to(dev, non_blocking=True)
        target = batch["target"].to(dev, non_blocking=True)
        weight = batch["weight"].to(dev, non_blocking=True)
        positive = batch["positive"].to(dev)
        prompt = batch["prompt"].to(dev)
        with torch.autocast(dev.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            outs = model(
                x, emb_table[prompt], query_table[prompt], prompts_per_image=P, deep_supervision=use_ds
            )
        loss, parts = grounding_loss(outs, target, weight, positive, config.loss)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(net.parameters(), config.optim.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        if schedule_minutes is not None:
            pace = (step + 1 - start_step) / max(time.monotonic() - t_start, 1e-6)
            estimate = broadcast_float(info, start_step + pace * schedule_minutes * 60.0)
            planned[0] = max(step + 2, min(config.steps, int(estimate)))
            if bar is not None:
                bar.total = planned[0]
        scheduler.step()
        done = step + 1
        last_parts = parts
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{parts['loss']:.3f}", lr=f"{scheduler.get_last_lr()[-1]:.2e}")
        if done % config.log_every == 0 or done == config.steps:
            now = time.monotonic()
            log.write(
                {
                    "step": done,
                    **parts,
                    "grad_norm": float(grad_norm),
                    "lr": scheduler.get_last_lr()[-1],
                    "sec_per_step": (now - t_log) / config.log_every,
                    "elapsed_s": now - t_start,
                    "peak_rss_gb": peak_rss_gb(),
                }
            )
            t_log = now
        out_of_time = False
        if max_minutes is not None:  # every rank must stop at the same step
            out_of_time = any_flag(info, (time.monotonic() - t_start) > max_minutes * 60)
        if stop_after_steps is not None and done - start_step >= stop_after_steps:
            out_of_time = True
        if val_cases and (done % config.val_every == 0 or done == config.steps or out_of_time):
            if info.is_main:
                val_result = validate(
                    net,
                    val_cases,
                    emb_table,
                    query_table,
                    text_index,
                    config.input,
                    config.threshold,
                    config.tile_step,
                    dev,
                    dtype,
                )
                log.write({"step": done, "val": val_result, "peak_rss_gb": peak_rss_gb()})
                if bar is not None:
                    bar.write(f"step {done}: val dice per case {val_result['dice_per_case']:.4f}")
                if val_result["dice_per_case"] > best:
                    best = val_result["dice_per_case"]
                    save_checkpoint(best_path, payload(done))
            barrier(info)
            model.train()
        if done % config.checkpoint_every == 0 or done == config.steps or out_of_time:
            if info.is_main:
                save_checkpoint(last_path, payload(done))
            barrier(info)
        if out_of_time:
            stopped_early = True
            break
    if bar is not None:
        bar.close()
    log.close()
    with torch.no_grad():  # equal on every rank when DDP kept the replicas in sync
        checksum = float(sum(p.double().abs().sum() for p in net.parameters()))
    return {
        "param_checksum": checksum,
        "steps_done": done,
        "stopped_early": stopped_early,
        "last": last_parts,
        "best_val_dice_per_case": best if best > -math.inf else None,
        "val": val_result,
        "elapsed_s": time.monotonic() - t_start,
    }
