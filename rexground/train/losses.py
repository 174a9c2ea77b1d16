"""The training loss: weighted BCE on every prompt + soft Dice on prompts whose target is non-empty.

Why this mix: published fine-tuning on ReXGroundingCT found that Dice on empty targets (negative prompts)
collapses training to background, while BCE handles negatives gracefully; Dice on positives keeps small
lesions from drowning in the background. The per-voxel ``weight`` carries the partial-label ignore mask and
the out-of-volume padding (weight 0). Deep supervision: every coarser head gets the target max-pooled to its
size (a small lesion stays visible) and the weight min-pooled (a voxel is ignored when any voxel under it
is); heads are weighted 1, 1/2, 1/4, ... and normalised, as nnU-Net does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from rexground.train.config import LossConfig


def bce_term(logits: Tensor, target: Tensor, weight: Tensor, pos_weight: float) -> Tensor:
    per_voxel = F.binary_cross_entropy_with_logits(
        logits.float(), target, reduction="none", pos_weight=torch.tensor(pos_weight, device=logits.device)
    )
    return (per_voxel * weight).sum() / weight.sum().clamp_min(1.0)


def dice_term(logits: Tensor, target: Tensor, weight: Tensor, positive: Tensor) -> Tensor:
    """1 - mean soft Dice over the prompts with a non-empty target (0 when there is none)."""
    if not bool(positive.any()):
        return logits.sum() * 0.0
    prob = torch.sigmoid(logits.float())[positive]
    tgt, w = target[positive], weight[positive]
    dims = tuple(range(1, prob.ndim))
    inter = (prob * tgt * w).sum(dims)
    denom = (prob * w).sum(dims) + (tgt * w).sum(dims)
    dice = (2.0 * inter + 1e-5) / (denom + 1e-5)
    return 1.0 - dice.mean()


def downsample_target(target: Tensor, weight: Tensor, size: tuple[int, ...]) -> tuple[Tensor, Tensor]:
    if tuple(target.shape[2:]) == tuple(size):
        return target, weight
    return F.adaptive_max_pool3d(target, size), -F.adaptive_max_pool3d(-weight, size)


def deep_supervision_weights(n: int) -> list[float]:
    raw = [0.5**k for k in range(n)]
    total = sum(raw)
    return [r / total for r in raw]


def grounding_loss(
    outputs: Tensor | list[Tensor], target: Tensor, weight: Tensor, positive: Tensor, cfg: LossConfig
) -> tuple[Tensor, dict[str, float]]:
    """``outputs``: full-resolution logits, or [full, coarser, ...] with deep supervision."""
    outs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    total = outs[0].new_zeros((), dtype=torch.float32)
    bce_full = dice_full = 0.0
    for k, (out, w_k) in enumerate(zip(outs, deep_supervision_weights(len(outs)), strict=True)):
        t, w = downsample_target(target, weight, tuple(out.shape[2:]))
        bce = bce_term(out, t, w, cfg.pos_weight)
        dice = dice_term(out, t, w, positive)
        total = total + w_k * (cfg.bce_weight * bce + cfg.dice_weight * dice)
        if k == 0:
            bce_full, dice_full = float(bce.detach()), float(dice.detach())
    return total, {"loss": float(total.detach()), "bce": bce_full, "dice_loss": dice_full}
