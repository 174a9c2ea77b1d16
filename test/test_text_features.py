"""The parsed-finding feature vector: fixed layout, one-hot blocks, numpy only."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from rexground.text import parse_finding
from rexground.text.features import (
    CATEGORY_VOCAB,
    FEATURE_SLICES,
    LOBE_VOCAB,
    QUERY_FEATURE_DIM,
    SEGMENT_VOCAB,
    ZONE_VOCAB,
    batch_query_features,
    query_features,
)
from rexground.text.query import FindingQuery


def test_layout_covers_the_vector_exactly_once():
    covered = np.zeros(QUERY_FEATURE_DIM, dtype=int)
    for sl in FEATURE_SLICES.values():
        covered[sl] += 1
    assert (covered == 1).all()
    assert QUERY_FEATURE_DIM == 67


@pytest.mark.parametrize(
    "text",
    ["Nodule in the RUL", "No pleural effusion", "Rundherd rechts", "Diffuse ground glass in both lungs"],
)
def test_one_hot_blocks_have_exactly_one_active_entry(text):
    v = query_features(parse_finding(text))
    assert v.shape == (QUERY_FEATURE_DIM,) and v.dtype == np.float32
    for block in ("category", "side", "multiplicity"):
        assert v[FEATURE_SLICES[block]].sum() == 1.0, block
    assert np.isfinite(v).all() and (v >= 0).all() and (v <= 1).all()


def test_features_encode_the_parsed_facts():
    q = parse_finding("Possible 6 mm nodule in the posterobasal segment of the left lower lobe, subpleural")
    v = query_features(q)
    assert v[FEATURE_SLICES["category"]][CATEGORY_VOCAB.index("2d")] == 1.0
    assert v[FEATURE_SLICES["lobes"]][LOBE_VOCAB.index("LLL")] == 1.0
    assert v[FEATURE_SLICES["segments"]][SEGMENT_VOCAB.index("LLL posterior basal")] == 1.0
    assert v[FEATURE_SLICES["zones"]][ZONE_VOCAB.index("subpleural")] == 1.0
    size = v[FEATURE_SLICES["size"]]
    assert size[0] == 1.0 and size[1] == pytest.approx(np.log1p(6) / np.log1p(100)) and size[2] == 0.0
    assert v[FEATURE_SLICES["flags"]].tolist() == [0.0, 1.0]


def test_unknown_category_has_zero_confidence_and_its_own_slot():
    v = query_features(parse_finding("The patient was seen today"))
    assert v[FEATURE_SLICES["category"]][CATEGORY_VOCAB.index("unknown")] == 1.0
    assert v[FEATURE_SLICES["category_confidence"]][0] == 0.0


def test_different_findings_give_different_vectors():
    a = query_features(parse_finding("Nodule in the right upper lobe"))
    b = query_features(parse_finding("Nodule in the left upper lobe"))
    assert not np.array_equal(a, b)


def test_hand_made_query_with_a_segment_outside_the_vocabulary_is_accepted():
    q = FindingQuery(text="x", category="2d", category_confidence=1.0, segments=("RUL subapical",))
    assert query_features(q)[FEATURE_SLICES["segments"]].sum() == 0.0


def test_batch_stacks_and_handles_empty():
    qs = [parse_finding("Nodule"), parse_finding("Emphysema")]
    assert batch_query_features(qs).shape == (2, QUERY_FEATURE_DIM)
    assert batch_query_features([]).shape == (0, QUERY_FEATURE_DIM)


def test_features_module_does_not_import_torch():
    code = "import sys, rexground.text.features, rexground.text.parser; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
