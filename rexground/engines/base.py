"""What every grounding engine offers: masks for findings of one CT, in the canonical (z, y, x) grid."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from rexground.text.query import FindingQuery


@dataclass
class FindingPrediction:
    """One finding's result on the CT's canonical grid (same shape as ``CTVolume.hu``)."""

    text: str
    mask: np.ndarray  # uint8 0/1, canonical (z, y, x); postprocessed (>= 10 voxels, <= 50 parts, never empty)
    score: np.ndarray | None = None  # float32 likelihood in [0, 1] on the same grid, when the engine has one
    info: dict = field(default_factory=dict)  # timings, fallbacks used, what the engine found: results.json


class Engine(Protocol):
    """A grounding engine. ``predict`` takes all parsed findings of one scan so shared work is done once
    (the ``Predictor`` parses each sentence once and hands the queries over)."""

    name: str

    def predict(self, ct, queries: Sequence[FindingQuery]) -> list[FindingPrediction]:  # ct: CTVolume
        ...


def as_queries(
    findings: Sequence[FindingQuery | str], parse: Callable[[str], FindingQuery] | None = None
) -> list[FindingQuery]:
    """The findings as queries: queries pass through, sentences are parsed (``parse``, default the finding
    parser), so an engine can also be called directly with sentences."""
    if parse is None and any(isinstance(f, str) for f in findings):
        from rexground.text.parser import parse_finding

        parse = parse_finding
    return [f if isinstance(f, FindingQuery) else parse(f) for f in findings]  # type: ignore[misc]
