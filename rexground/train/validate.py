"""Validation during training: held-out scans through the inference path's own route, with the torch network
as the tile backend, scored with the official logic (``rexground.metrics``) on each scan's CT grid.

The network input of a validation case is the one ``rexground.infer.preprocess.prepare`` computes for its
CT (the cache keeps validation images in float32 for this); the sliding window, and the way from logits
back to a postprocessed mask on the CT grid, are ``rexground.infer.scan`` and ``rexground.infer.masks``:
the very code the network engine runs. So the per-case Dice reported here is the one the exported package
gets in ``rexground predict-case`` / the container, scored by ``rexground evaluate``, up to the float
arithmetic of torch versus onnxruntime. Dice and component filtering do not depend on the axis order, so
scoring in canonical order equals scoring in raw order.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from rexground.infer.conditions import Conditions
from rexground.infer.masks import scan_masks
from rexground.infer.preprocess import PreparedVolume, air_value
from rexground.infer.scan import ScanLogits, network_logits
from rexground.metrics.aggregate import aggregate
from rexground.metrics.official import evaluate_case
from rexground.train.config import InputSpec
from rexground.train.data import PreparedCase
from rexground.train.network import GroundingNet
from rexground.train.tile_backend import TorchTileBackend


def network_input(case: PreparedCase, spec: InputSpec) -> PreparedVolume:
    """A prepared case as the inference path's ``PreparedVolume``: its image at the model's spacing, the
    crop of the CT grid it covers, and the grids and padding values to map results back."""
    image = np.asarray(case.image, dtype=np.float32)
    return PreparedVolume(
        image=image,
        crop=case.crop_slices,
        ct_shape=tuple(int(n) for n in case.native_shape),  # type: ignore[arg-type]
        ct_spacing=tuple(float(s) for s in case.native_spacing),  # type: ignore[arg-type]
        model_spacing=tuple(float(s) for s in spec.spacing_zyx),  # type: ignore[arg-type]
        pad_values=(air_value(spec.intensity), *([0.0] * (image.shape[0] - 1))),
    )


def case_logits(
    net: GroundingNet,
    case: PreparedCase,
    conditions: Conditions,
    spec: InputSpec,
    tile_step: float,
    device: torch.device | str = "cpu",
    amp_dtype: torch.dtype | None = None,
) -> ScanLogits:
    """The case's findings (rows of ``conditions``) through the torch network: averaged logits at the model's
    spacing, ready for ``rexground.infer.masks``."""
    backend = TorchTileBackend(net, device, amp_dtype)
    return network_logits(
        network_input(case, spec), backend, conditions, patch_size=spec.patch_size_zyx, tile_step=tile_step,
        batch_size=2,
    )  # fmt: skip


def validate(
    net: GroundingNet,
    cases: Sequence[PreparedCase],
    emb_table: torch.Tensor,
    query_table: torch.Tensor,
    text_index: dict[str, int],
    spec: InputSpec,
    threshold: float,
    tile_step: float,
    device: torch.device | str = "cpu",
    amp_dtype: torch.dtype | None = None,
) -> dict:
    """Per-case Dice (the leaderboard number), per-finding Dice and hit rate over ``cases``, and per case
    each finding's Dice and predicted voxels (after the official component filter), as
    ``rexground evaluate`` reports them."""
    was_training = net.training
    net.eval()
    results = []
    for case in cases:
        idx = torch.as_tensor([text_index[t] for t in case.texts])
        conditions = Conditions(emb_table[idx].float().cpu().numpy(), query_table[idx].float().cpu().numpy())
        scan = case_logits(net, case, conditions, spec, tile_step, device, amp_dtype)
        pred = scan_masks(scan, threshold)
        results.append(
            evaluate_case(case.labels_native(), pred, case.categories, name=case.name, global_only=True)
        )
    net.train(was_training)
    summary = aggregate(results, global_only=True)
    return {
        "dice_per_case": summary.dice_per_case,
        "dice_per_finding": float(np.mean([f.dice for r in results for f in r.findings])),
        "hit_rate": float(np.mean([f.hit for r in results for f in r.findings])),
        "n_cases": len(results),
        "per_case": {r.name: r.mean_dice for r in results},
        "per_finding": {
            r.name: [{"dice": f.dice, "pred_voxels": f.pred_voxels} for f in r.findings] for r in results
        },
    }
