"""Validation during training: sliding-window prediction with the torch network on held-out scans, scored
with the official logic (``rexground.metrics``) on each scan's canonical CT grid.

The tiling, Gaussian weighting and averaging are the inference path's own (``rexground.infer``), with a
torch backend in place of onnxruntime, so the validation number is the number the exported model gets
(up to ONNX numerics). Predictions are resampled back to the native grid, thresholded and filtered by the
shared postprocessing (never empty), then scored against the exhaustive native entity labels. Dice and
component filtering do not depend on the axis order, so scoring in canonical order equals raw order.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch

from rexground.infer.preprocess import sigmoid_
from rexground.infer.sliding_window import HostAccumulator, predict_logits
from rexground.io import resample_zyx
from rexground.metrics.aggregate import aggregate
from rexground.metrics.official import evaluate_case
from rexground.postprocess import postprocess
from rexground.train.data import PreparedCase
from rexground.train.network import GroundingNet


class TorchTileBackend:
    """``rexground.infer.sliding_window.TileBackend`` on a torch network (eval mode, no grad)."""

    def __init__(
        self, net: GroundingNet, text_emb: torch.Tensor, query_feat: torch.Tensor, device, amp_dtype=None
    ):
        self.net, self.device, self.amp_dtype = net, device, amp_dtype
        self.text_emb, self.query_feat = text_emb.to(device), query_feat.to(device)
        self.acc = HostAccumulator()

    def start(self, volume_shape, n_findings, importance):
        self.acc.start(volume_shape, n_findings, importance)

    def _autocast(self):
        if self.amp_dtype is None:
            return torch.autocast(self.device.type, enabled=False)
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    @torch.no_grad()
    def encode(self, tiles: np.ndarray):
        with self._autocast():
            return self.net.encode_image(torch.from_numpy(tiles).to(self.device))

    @torch.no_grad()
    def decode_accumulate(self, features, finding: int, starts):
        b = features[0].shape[0]
        t = self.text_emb[finding : finding + 1].expand(b, -1)
        q = self.query_feat[finding : finding + 1].expand(b, -1)
        with self._autocast():
            logits = self.net.decode(*features, t, q)
        self.acc.add(finding, logits.float().cpu().numpy(), starts)

    def finish(self) -> np.ndarray:
        return self.acc.finish()


def predict_case_probabilities(
    net: GroundingNet,
    case: PreparedCase,
    text_emb: torch.Tensor,
    query_feat: torch.Tensor,
    patch_size: Sequence[int],
    pad_value: float,
    device: torch.device,
    step_fraction: float = 0.5,
    amp_dtype=None,
) -> np.ndarray:
    """(F, Z, Y, X) probabilities at the model's spacing for the case's findings (rows of text_emb)."""
    backend = TorchTileBackend(net, text_emb, query_feat, device, amp_dtype)
    volume = np.asarray(case.image, dtype=np.float32)
    pads = [pad_value] + [0.0] * (volume.shape[0] - 1)
    logits = predict_logits(
        volume,
        backend,
        text_emb.shape[0],
        patch_size,
        step_fraction=step_fraction,
        batch_size=2,
        pad_values=pads,
    )
    # the inference path's logistic: no overflow warning
    return sigmoid_(np.asarray(logits, dtype=np.float32))


def native_probabilities(probs: np.ndarray, case: PreparedCase, model_spacing) -> Iterator[np.ndarray]:
    """Each finding's probabilities at the model's spacing on the case's native canonical grid (resampled
    onto the crop's exact grid, pasted into the full grid), one finding at a time to bound memory. The
    yielded array is reused: copy it to keep it."""
    crop = case.crop_slices
    crop_shape = tuple(s.stop - s.start for s in crop)
    full = np.zeros(case.native_shape, np.float32)
    for f in range(probs.shape[0]):
        full[crop] = resample_zyx(
            probs[f].astype(np.float32), model_spacing, case.native_spacing, order=1, shape=crop_shape
        )
        yield full


def case_masks(probs: np.ndarray, case: PreparedCase, model_spacing, threshold: float) -> np.ndarray:
    """Probabilities at the model's spacing -> (F, z, y, x) uint8 masks on the case's native canonical grid
    (thresholded and filtered by the shared postprocessing)."""
    out = np.zeros((probs.shape[0], *case.native_shape), np.uint8)
    for f, full in enumerate(native_probabilities(probs, case, model_spacing)):
        out[f] = postprocess(full, threshold)
    return out


def validate(
    net: GroundingNet,
    cases: Sequence[PreparedCase],
    emb_table: torch.Tensor,
    query_table: torch.Tensor,
    text_index: dict[str, int],
    patch_size: Sequence[int],
    model_spacing: Sequence[float],
    pad_value: float,
    threshold: float,
    device: torch.device,
    step_fraction: float = 0.5,
    amp_dtype=None,
) -> dict:
    """Per-case Dice (the leaderboard number), per-finding Dice and hit rate over ``cases``."""
    was_training = net.training
    net.eval()
    results = []
    for case in cases:
        idx = torch.as_tensor([text_index[t] for t in case.texts])
        probs = predict_case_probabilities(
            net,
            case,
            emb_table[idx],
            query_table[idx],
            patch_size,
            pad_value,
            device,
            step_fraction,
            amp_dtype,
        )
        pred = case_masks(probs, case, model_spacing, threshold)
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
    }
