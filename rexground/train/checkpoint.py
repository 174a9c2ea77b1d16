"""Checkpoints of a training run, and loading a trained network from one (what the export step uses).

A checkpoint is one ``torch.save`` dict: ``model`` (state dict of the bare network, never DDP-prefixed),
``config`` (the whole ``TrainConfig`` as JSON-able dict: ``config["net"]`` builds the network,
``config["input"]`` is the input contract: patch size, spacing, intensity window, anatomy channels, text
encoder), ``step``, and for exact resume ``optimizer``, ``scheduler``, ``scaler`` and the RNG states.
Written atomically (temporary name, then rename), so a run killed mid-save keeps its previous checkpoint.

Run folder layout: ``RUN_DIR/config.json``, ``RUN_DIR/checkpoints/{last,best}.pt``, ``RUN_DIR/log.jsonl``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from rexground.errors import InputFileError
from rexground.io import atomic_path
from rexground.train.config import TrainConfig
from rexground.train.network import GroundingNet


def save_checkpoint(path: Path, payload: dict) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        torch.save(payload, fh)
    return path


def read_checkpoint(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "checkpoint not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # a truncated or foreign file: say which
        raise InputFileError(path, f"not a readable checkpoint: {exc}") from exc


def resolve_checkpoint(run_or_file: str | Path, which: str = "best") -> Path:
    """A run folder -> its ``best.pt`` (or ``last.pt`` when no validation ran yet); a file -> itself."""
    p = Path(run_or_file)
    if p.is_file():
        return p
    for name in (f"{which}.pt", "last.pt"):
        candidate = p / "checkpoints" / name
        if candidate.is_file():
            return candidate
    raise InputFileError(p, "no checkpoints/best.pt or checkpoints/last.pt in this run folder")


def load_network(run_or_file: str | Path, which: str = "best") -> tuple[GroundingNet, TrainConfig]:
    """The trained network in eval mode on the CPU, and the run's config (``config.input`` for inference)."""
    path = resolve_checkpoint(run_or_file, which)
    ckpt = read_checkpoint(path)
    try:
        config = TrainConfig.model_validate(ckpt["config"])
        net = GroundingNet(config.net)
        net.load_state_dict(ckpt["model"])
    except Exception as exc:
        raise InputFileError(path, f"checkpoint does not match the network: {exc}") from exc
    return net.eval(), config
