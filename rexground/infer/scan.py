"""One scan through the network: the network input of a CT, the sliding window, the averaged logits.

``run_network`` is what the network engine and the export's parity check run on a CT (canonical HU and,
for packages with anatomy channels, the prior masks); ``network_logits`` is the part after preparation,
which training validation runs on the network input its cache holds. The backend decides where the tiles
run (onnxruntime on the CPU or CUDA, or torch: ``rexground.train.tile_backend``), so comparing two backends
compares the networks and nothing else. The way back to masks on the CT grid is ``rexground.infer.masks``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from rexground.infer.conditions import Conditions
from rexground.infer.package import Manifest
from rexground.infer.preprocess import PreparedVolume, prepare
from rexground.infer.sliding_window import TileBackend, predict_logits


@dataclass
class ScanLogits:
    """Every finding's averaged logits at the model's spacing, and the facts that map them onto the CT."""

    prepared: PreparedVolume  # its image dropped after the sliding window, to free the memory
    logits: np.ndarray  # (F, Z, Y, X) float32 at the model's spacing, over the crop


def network_logits(
    prepared: PreparedVolume,
    backend: TileBackend,
    conditions: Conditions,
    *,
    patch_size: Sequence[int],
    tile_step: float,
    batch_size: int = 2,
    progress: bool = False,
) -> ScanLogits:
    """A prepared network input -> averaged logits of every finding (``conditions`` rows)."""
    backend.set_conditions(conditions)
    logits = predict_logits(
        prepared.image, backend, conditions.n_findings, patch_size, tile_step=tile_step,
        batch_size=batch_size, pad_values=prepared.pad_values, progress=progress,
    )  # fmt: skip
    return ScanLogits(prepared=prepared.without_image(), logits=logits)


def run_network(
    hu: np.ndarray,
    spacing_zyx: tuple[float, float, float],
    manifest: Manifest,
    backend: TileBackend,
    conditions: Conditions,
    *,
    anatomy: Mapping[str, np.ndarray] | None = None,
    tile_step: float | None = None,
    batch_size: int = 2,
    progress: bool = False,
) -> ScanLogits:
    """Canonical HU of one CT -> averaged logits of every finding, as the package's manifest says to run
    it (``tile_step`` overrides the manifest's)."""
    prepared = prepare(
        hu, spacing_zyx, target_spacing=manifest.target_spacing, norm=manifest.normalisation,
        crop=manifest.crop, channels=manifest.input_channels, anatomy=anatomy,
    )  # fmt: skip
    return network_logits(
        prepared, backend, conditions, patch_size=manifest.patch_size,
        tile_step=manifest.tile_step if tile_step is None else tile_step, batch_size=batch_size,
        progress=progress,
    )  # fmt: skip
