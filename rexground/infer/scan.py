"""One scan through the network: preprocess, sliding window, and each finding's score back on the CT grid.

Shared by the network engine (onnxruntime) and the export's parity check (the same code around a torch
backend), so that "identical masks" compares the networks and nothing else.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from rexground.infer.onnx_session import Conditions
from rexground.infer.preprocess import PreparedVolume, above_threshold_box, prepare, sigmoid_, to_crop_grid
from rexground.infer.sliding_window import TileBackend, predict_logits
from rexground.model_package import Manifest


@dataclass
class ScanLogits:
    prepared: PreparedVolume  # image dropped after the sliding window to free its memory
    logits: np.ndarray  # (F, Z, Y, X) float32 averaged logits at the model's spacing


def run_network(
    hu: np.ndarray,
    spacing_zyx: tuple[float, float, float],
    manifest: Manifest,
    backend: TileBackend,
    conditions: Conditions,
    *,
    anatomy: Mapping[str, np.ndarray] | None = None,
    batch_size: int = 2,
    progress: bool = False,
) -> ScanLogits:
    """Canonical HU of one CT -> averaged logits of every finding at the model's spacing."""
    prepared = prepare(
        hu, spacing_zyx, target_spacing=manifest.target_spacing, norm=manifest.normalisation,
        crop=manifest.crop, channels=manifest.input_channels, anatomy=anatomy,
    )  # fmt: skip
    backend.set_conditions(conditions)  # type: ignore[attr-defined]
    logits = predict_logits(
        prepared.image, backend, conditions.n_findings, manifest.patch_size,
        step_fraction=manifest.step_fraction, batch_size=batch_size, pad_values=prepared.pad_values,
        progress=progress,
    )  # fmt: skip
    slim = PreparedVolume(
        image=np.empty((0, 0, 0, 0), np.float32), crop=prepared.crop, ct_shape=prepared.ct_shape,
        ct_spacing=prepared.ct_spacing, model_spacing=prepared.model_spacing, pad_values=prepared.pad_values,
    )  # fmt: skip
    return ScanLogits(prepared=slim, logits=logits)


def crop_probability(scan: ScanLogits, finding: int) -> np.ndarray:
    """Finding ``finding``'s probability (float32) on the CT crop's grid (``scan.prepared.crop``)."""
    return sigmoid_(to_crop_grid(scan.logits[finding], scan.prepared))


def finding_probability(
    scan: ScanLogits, finding: int, threshold: float, relative_fallback: float = 0.5
) -> tuple[np.ndarray, tuple[slice, slice, slice], str]:
    """Probability on a box of the crop grid that holds everything the postprocessing looks at.

    When some voxel reaches ``threshold``: the box of voxels that can (``above_threshold_box``). When none
    does, the postprocessing answers with the voxels at or above ``relative_fallback`` x the map's peak;
    the peak is at least L, the best value next to the strongest model voxel, so the box of voxels that can
    reach ``relative_fallback * L`` holds them all, and the peak itself.
    Returns (probability, box, which box: "threshold", "peak" or "full").
    """
    logits = scan.logits[finding]
    shape = scan.prepared.crop_shape
    full = tuple(slice(0, n) for n in shape)
    box = above_threshold_box(logits, shape, logit_of(threshold))
    kind = "threshold"
    if box is None:
        kind = "peak"
        centre = np.unravel_index(int(np.argmax(logits)), logits.shape)
        near = []
        for i, n_in, n_out in zip(centre, logits.shape, shape, strict=True):
            r = n_out / n_in
            near.append(
                slice(max(0, int(np.floor((i - 1.5) * r)) - 1), min(n_out, int(np.ceil((i + 1.5) * r)) + 1))
            )
        lower = float(sigmoid_(to_crop_grid(logits, scan.prepared, tuple(near))).max())
        target = relative_fallback * lower
        box = above_threshold_box(logits, shape, logit_of(target)) if 0.0 < target < 1.0 else None
    if box is None or box == full:
        box, kind = full, "full"
    return sigmoid_(to_crop_grid(logits, scan.prepared, box)), box, kind  # type: ignore[return-value]


def logit_of(threshold: float) -> float:
    return math.log(threshold / (1.0 - threshold))
