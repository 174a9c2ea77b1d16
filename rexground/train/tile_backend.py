"""The torch network as a sliding-window backend (``rexground.infer.sliding_window.TileBackend``).

The one torch backend: training validation runs held-out scans through it, the export's parity check
compares it with onnxruntime, and the ONNX benchmark uses it as the eager baseline. Everything around it
(network input, tiling, weighting, the way back to masks) is the inference path's own code, so a number
computed with it is the number the exported package gets, up to the backends' float arithmetic.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from rexground.infer.conditions import Conditions
from rexground.infer.sliding_window import HostAccumulator, Shape3


class TorchTileBackend:
    """A ``GroundingNet`` (eval mode, no grad) on ``device``, optionally under autocast (``amp_dtype``);
    weighted logits are summed on the host."""

    def __init__(
        self, net: nn.Module, device: torch.device | str = "cpu", amp_dtype: torch.dtype | None = None
    ):
        self.net = net.eval()
        self.device = torch.device(device)
        self.amp_dtype = amp_dtype
        self.acc = HostAccumulator()
        self._text: torch.Tensor | None = None
        self._query: torch.Tensor | None = None

    def set_conditions(self, conditions: Conditions) -> None:
        self._text = torch.from_numpy(conditions.text_embedding).to(self.device)
        self._query = torch.from_numpy(conditions.query_features).to(self.device)

    def start(self, volume_shape: Shape3, n_findings: int, importance: np.ndarray) -> None:
        self.acc.start(volume_shape, n_findings, importance)

    def _autocast(self):
        if self.amp_dtype is None:
            return torch.autocast(self.device.type, enabled=False)
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    @torch.inference_mode()
    def encode(self, tiles: np.ndarray) -> tuple[torch.Tensor, ...]:
        batch = torch.from_numpy(np.ascontiguousarray(tiles, dtype=np.float32)).to(self.device)
        with self._autocast():
            return self.net.encode_image(batch)

    @torch.inference_mode()
    def decode(self, features: tuple[torch.Tensor, ...], finding: int) -> np.ndarray:
        """(B, 1, pz, py, px) float32 logits of finding ``finding`` on the encoded tiles."""
        assert self._text is not None and self._query is not None, "set_conditions() first"
        b = features[0].shape[0]
        text = self._text[finding : finding + 1].expand(b, -1)
        query = self._query[finding : finding + 1].expand(b, -1)
        with self._autocast():
            logits = self.net.decode(*features, text, query)
        return logits.float().cpu().numpy()

    def decode_accumulate(self, features, finding: int, starts: Sequence[Shape3]) -> None:
        self.acc.add(finding, self.decode(features, finding), starts)

    def finish(self) -> np.ndarray:
        return self.acc.finish()
