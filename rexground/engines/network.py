"""The learned grounding engine: an exported model package run with onnxruntime (no torch).

Per scan, in reading order: embed every parsed finding (``rexground.infer.conditions``), compute the
anatomy prior channels the package reads (``rexground.infer.channels``), crop, resample and normalise the
CT once and run the sliding window, the image encoder once per tile and the decoder once per finding per
tile (``rexground.infer.scan``), then bring each finding's logits back onto the CT grid and postprocess
them (``rexground.infer.masks``: the one route that training validation and the export's parity check use
too). The CUDA execution provider is used when onnxruntime has one (``device="auto"``), else the CPU.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from rexground.engines.base import FindingPrediction, as_queries
from rexground.errors import ModelPackageError
from rexground.infer.conditions import TextConditioner
from rexground.infer.masks import finding_mask, finding_score
from rexground.infer.onnx_session import create_backend
from rexground.infer.package import MANIFEST_NAME, load_package
from rexground.infer.scan import run_network
from rexground.infer.sliding_window import check_tile_step
from rexground.text.query import FindingQuery

log = logging.getLogger("rexground.engines")

# (ct, channel names) -> {name: uint8 array on the CT's canonical grid}, for packages with anatomy priors.
AnatomyProvider = Callable[[object, Sequence[str]], Mapping[str, np.ndarray]]


class NetworkEngine:
    """``Engine`` over a model package folder (``manifest.json`` + ONNX graphs + sentence encoder).

    ``tile_step`` overrides the manifest's sliding-window step (a fraction of the patch: smaller is
    slower and smoother)."""

    name = "network"

    def __init__(
        self,
        model_dir: str | Path,
        device: str = "auto",
        *,
        variant: str | None = None,
        batch_size: int | None = None,
        threads: int | None = None,
        io_binding: bool | None = None,
        tile_step: float | None = None,
        return_scores: bool = False,
        progress: bool = False,
        anatomy_provider: AnatomyProvider | None = None,
    ):
        self.package = load_package(model_dir)
        m = self.package.manifest
        self.tile_step = m.tile_step if tile_step is None else check_tile_step(tile_step)
        if len(m.input_channels) > 1 and anatomy_provider is None:
            # The priors training used, computed by rexground.anatomy (torch-free).
            from rexground.infer.channels import anatomy_prior_masks, check_channel_names

            try:
                check_channel_names(m.input_channels[1:])
            except ValueError as exc:
                raise ModelPackageError(
                    f"{self.package.root / MANIFEST_NAME}: input_channels: {exc}"
                ) from None
            anatomy_provider = anatomy_prior_masks
        self.anatomy_provider = anatomy_provider
        self.choice = create_backend(
            self.package,
            device,
            variant=variant,
            batch_size=batch_size,
            threads=threads,
            io_binding=io_binding,
        )
        if self.choice.note:
            log.warning(self.choice.note)
        log.info(
            "network engine: %s on %s (%s), batch %d, tile step %g",
            self.package.root, self.choice.device, self.choice.variant, self.choice.batch_size,
            self.tile_step,
        )  # fmt: skip
        self.conditioner = TextConditioner(self.package)
        self.return_scores = return_scores
        self.progress = progress

    @property
    def device(self) -> str:
        return self.choice.device

    def predict(self, ct, queries: Sequence[FindingQuery | str]) -> list[FindingPrediction]:
        """Masks (uint8 0/1, canonical, the CT's shape) for every finding of one CT (a ``CTVolume``)."""
        if not queries:
            return []
        t0 = time.perf_counter()
        parsed = as_queries(queries)
        conditions = self.conditioner.conditions(parsed)
        m = self.package.manifest
        anatomy = None
        if len(m.input_channels) > 1:
            assert self.anatomy_provider is not None
            anatomy = self.anatomy_provider(ct, m.input_channels[1:])
        t_text = time.perf_counter()
        scan = run_network(
            ct.hu, ct.spacing_zyx, m, self.choice.backend, conditions, anatomy=anatomy,
            tile_step=self.tile_step, batch_size=self.choice.batch_size, progress=self.progress,
        )  # fmt: skip
        t_net = time.perf_counter()
        out = []
        for f, query in enumerate(parsed):
            t_f = time.perf_counter()
            mask, fallback = finding_mask(scan, f, m.threshold)
            score = finding_score(scan, f) if self.return_scores else None
            info = {
                "engine": self.name,
                "device": self.choice.device,
                "variant": self.choice.variant,
                "tile_step": self.tile_step,
                "fallback": fallback,
                "postprocess_s": round(time.perf_counter() - t_f, 3),
                "network_s": round(t_net - t_text, 3),  # shared by all findings of the scan
                "text_s": round(t_text - t0, 3),
            }
            out.append(FindingPrediction(text=query.text, mask=mask, score=score, info=info))
        return out
