"""A parsed finding as a fixed-length float32 vector: the network's auxiliary text input.

numpy only, so the same function feeds training (torch) and inference (onnxruntime). Layout, in order
(offsets in ``FEATURE_SLICES``):

====================  =====  ==============================================================================
block                 width  meaning
====================  =====  ==============================================================================
category              15     one-hot over CATEGORY_CODES (14) then "unknown"
category_confidence   1      the parser's confidence in [0, 1] (0 for unknown)
side                  4      one-hot: left, right, bilateral, unspecified
lobes                 6      multi-hot: RUL, RML, RLL, LUL, lingula, LLL
segments              18     multi-hot over SEGMENT_ORDER ("RUL apical" ... "LLL posterior basal")
zones                 14     multi-hot over the Zone vocabulary, in its order
size                  3      has_size (0/1), log1p(size_mm) / log1p(100) (0 if none), size_is_upper_bound
multiplicity          4      one-hot: single, few, multiple, diffuse
flags                 2      negated, uncertain
====================  =====  ==============================================================================

Changing the layout changes ``QUERY_FEATURE_VERSION``; a model package records the version it was trained
with, so a mismatch is caught at load time rather than read silently as different features.
"""

from __future__ import annotations

import math
from typing import get_args

import numpy as np

from rexground.categories import CATEGORY_CODES
from rexground.text.location import SEGMENT_ORDER
from rexground.text.query import FindingQuery, Lobe, Multiplicity, Side, Zone

QUERY_FEATURE_VERSION = 1

CATEGORY_VOCAB: tuple[str, ...] = (*CATEGORY_CODES, "unknown")
SIDE_VOCAB: tuple[str, ...] = get_args(Side)
LOBE_VOCAB: tuple[str, ...] = get_args(Lobe)
SEGMENT_VOCAB: tuple[str, ...] = SEGMENT_ORDER
ZONE_VOCAB: tuple[str, ...] = get_args(Zone)
MULTIPLICITY_VOCAB: tuple[str, ...] = get_args(Multiplicity)
SIZE_SCALE_MM = 100.0  # log1p(size) / log1p(100): 1.0 at 10 cm, about 0.52 at 10 mm

_BLOCKS: tuple[tuple[str, int], ...] = (
    ("category", len(CATEGORY_VOCAB)),
    ("category_confidence", 1),
    ("side", len(SIDE_VOCAB)),
    ("lobes", len(LOBE_VOCAB)),
    ("segments", len(SEGMENT_VOCAB)),
    ("zones", len(ZONE_VOCAB)),
    ("size", 3),
    ("multiplicity", len(MULTIPLICITY_VOCAB)),
    ("flags", 2),
)


def _slices() -> dict[str, slice]:
    out, at = {}, 0
    for name, width in _BLOCKS:
        out[name] = slice(at, at + width)
        at += width
    return out


FEATURE_SLICES: dict[str, slice] = _slices()
QUERY_FEATURE_DIM: int = sum(width for _, width in _BLOCKS)


def query_features(q: FindingQuery) -> np.ndarray:
    """The feature vector of one parsed finding, shape ``(QUERY_FEATURE_DIM,)``, float32."""
    v = np.zeros(QUERY_FEATURE_DIM, dtype=np.float32)
    s = FEATURE_SLICES
    category = q.category if q.category in CATEGORY_VOCAB else "unknown"
    v[s["category"].start + CATEGORY_VOCAB.index(category)] = 1.0
    v[s["category_confidence"].start] = q.category_confidence if category != "unknown" else 0.0
    v[s["side"].start + SIDE_VOCAB.index(q.side)] = 1.0
    for lobe in q.lobes:
        v[s["lobes"].start + LOBE_VOCAB.index(lobe)] = 1.0
    for seg in q.segments:
        if seg in SEGMENT_VOCAB:  # a hand-made query may name a segment outside the vocabulary: ignored
            v[s["segments"].start + SEGMENT_VOCAB.index(seg)] = 1.0
    for zone in q.zones:
        v[s["zones"].start + ZONE_VOCAB.index(zone)] = 1.0
    if q.size_mm is not None and q.size_mm > 0:
        v[s["size"].start] = 1.0
        v[s["size"].start + 1] = math.log1p(q.size_mm) / math.log1p(SIZE_SCALE_MM)
        v[s["size"].start + 2] = float(q.size_is_upper_bound)
    v[s["multiplicity"].start + MULTIPLICITY_VOCAB.index(q.multiplicity)] = 1.0
    v[s["flags"].start] = float(q.negated)
    v[s["flags"].start + 1] = float(q.uncertain)
    return v


def batch_query_features(queries: list[FindingQuery]) -> np.ndarray:
    """Stacked features, shape ``(N, QUERY_FEATURE_DIM)``, float32 (``(0, DIM)`` for an empty list)."""
    if not queries:
        return np.zeros((0, QUERY_FEATURE_DIM), dtype=np.float32)
    return np.stack([query_features(q) for q in queries])
