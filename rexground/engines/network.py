"""The learned grounding engine: an exported model package run with onnxruntime (no torch).

Per scan: parse and embed every finding, crop and resample the CT once, run the image encoder once per
tile and the decoder once per finding per tile, then bring each finding's probability back onto the CT's
crop grid and answer with the shared postprocessing (threshold, official component filter, never empty).
The CUDA execution provider is used when onnxruntime has one (``device="auto"``), else the CPU.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from rexground.engines.base import FindingPrediction
from rexground.errors import ModelPackageError
from rexground.infer.conditions import TextConditioner
from rexground.infer.onnx_session import create_backend
from rexground.infer.preprocess import paste
from rexground.infer.scan import crop_probability, finding_probability, run_network
from rexground.model_package import MANIFEST_NAME, load_package
from rexground.postprocess import postprocess

log = logging.getLogger("rexground.engines")

# (ct, channel names) -> {name: 0/1 mask on the CT's canonical grid}, for packages with anatomy priors.
RELATIVE_FALLBACK = 0.5  # postprocess's first fallback: voxels within this fraction of the score's peak
AnatomyProvider = Callable[[object, Sequence[str]], Mapping[str, np.ndarray]]


class NetworkEngine:
    """``Engine`` over a model package folder (``manifest.json`` + ONNX graphs + sentence encoder)."""

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
        return_scores: bool = False,
        progress: bool = False,
        anatomy_provider: AnatomyProvider | None = None,
    ):
        self.package = load_package(model_dir)
        m = self.package.manifest
        if len(m.input_channels) > 1 and anatomy_provider is None:
            # The priors training used (rexground.anatomy via rexground.train.anatomy_channels, torch-free).
            from rexground.train.anatomy_channels import anatomy_prior_masks, check_channel_names

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
            "network engine: %s on %s (%s), batch %d",
            self.package.root, self.choice.device, self.choice.variant, self.choice.batch_size,
        )  # fmt: skip
        self.conditioner = TextConditioner(self.package)
        self.return_scores = return_scores
        self.progress = progress

    @property
    def device(self) -> str:
        return self.choice.device

    def predict(self, ct, findings: list[str]) -> list[FindingPrediction]:
        """Masks (uint8 0/1, canonical, the CT's shape) for every finding of one CT (a ``CTVolume``)."""
        if not findings:
            return []
        from rexground.text.parser import parse_finding

        t0 = time.perf_counter()
        queries = [parse_finding(t) for t in findings]
        conditions = self.conditioner.conditions([q.text for q in queries], queries)
        m = self.package.manifest
        anatomy = None
        if len(m.input_channels) > 1:
            assert self.anatomy_provider is not None
            anatomy = self.anatomy_provider(ct, m.input_channels[1:])
        t_text = time.perf_counter()
        scan = run_network(
            ct.hu, ct.spacing_zyx, m, self.choice.backend, conditions, anatomy=anatomy,
            batch_size=self.choice.batch_size, progress=self.progress,
        )  # fmt: skip
        t_net = time.perf_counter()
        out = []
        for f, query in enumerate(queries):
            t_f = time.perf_counter()
            mask, pp = self._finding_mask(scan, f)
            score = None
            if self.return_scores:
                score = paste(crop_probability(scan, f), scan.prepared, fill=0.0, dtype=np.float32)
            info = {
                "engine": self.name,
                "query": query.model_dump(mode="json"),
                "device": self.choice.device,
                "variant": self.choice.variant,
                "fallback": pp.get("fallback", "none"),
                "voxels": int(np.count_nonzero(mask)),
                "postprocess_s": round(time.perf_counter() - t_f, 3),
                "network_s": round(t_net - t_text, 3),  # shared by all findings of the scan
                "text_s": round(t_text - t0, 3),
            }
            out.append(FindingPrediction(text=findings[f], mask=mask, score=score, info=info))
        return out

    def _finding_mask(self, scan, f: int) -> tuple[np.ndarray, dict]:
        """Postprocessed mask on the CT grid. Only a box of the crop is resampled: the box where the
        probability can reach the threshold, or, when nothing does, where it can reach half its peak (the
        postprocessing's first fallback). Every voxel the postprocessing keeps lies inside, so the answer
        is the one the whole map would give; the later fallbacks look at the whole map and get it."""
        threshold = self.package.manifest.threshold
        prob, box, kind = finding_probability(scan, f, threshold, relative_fallback=RELATIVE_FALLBACK)
        pp: dict = {}
        mask_box = postprocess(prob, threshold, relative_fallback=RELATIVE_FALLBACK, info=pp)
        crop_shape = scan.prepared.crop_shape
        answered = {"none"} if kind == "threshold" else {"none", "score_peak"}
        if pp.get("fallback", "none") not in answered and kind != "full":
            prob = crop_probability(scan, f)
            box = tuple(slice(0, n) for n in crop_shape)
            mask_box = postprocess(prob, threshold, relative_fallback=RELATIVE_FALLBACK, info=pp)
        del prob
        mask = np.zeros(scan.prepared.ct_shape, dtype=np.uint8)
        mask[scan.prepared.crop][box] = mask_box
        return mask, pp
