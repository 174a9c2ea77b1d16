"""What every grounding engine offers: masks for findings of one CT, in the canonical (z, y, x) grid."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


@dataclass
class FindingPrediction:
    """One finding's result on the CT's canonical grid (same shape as ``CTVolume.hu``)."""

    text: str
    mask: np.ndarray  # uint8 0/1, canonical (z, y, x); postprocessed (>= 10 voxels, <= 50 parts, never empty)
    score: np.ndarray | None = None  # float32 likelihood in [0, 1] on the same grid, when the engine has one
    info: dict = field(default_factory=dict)  # parsed query, timings, fallbacks used: goes to results.json


class Engine(Protocol):
    """A grounding engine. ``predict`` takes all findings of one scan so shared work is done once."""

    name: str

    def predict(self, ct, findings: list[str]) -> list[FindingPrediction]:  # ct: rexground.io.CTVolume
        ...
