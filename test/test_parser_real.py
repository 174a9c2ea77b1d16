"""The parser on real report sentences (../shared, skipped where absent): categories against the dataset's
labels, and side / lobes / segments against values checked by hand, sentence by sentence, keyed by
(scan, channel) so that no sentence is copied into the repository.

How the expected values were decided (the parser's documented reading, checked against each sentence):
lobes are those the sentence names or implies ("basal segments" -> lower lobes, "apical segments" -> upper
lobes, "middle lobe" -> RML); a lingula named with its parent ("inferior lingular segment of the left upper
lobe") is the lingula alone; apices, bases and "both lungs" are zones/sides, not lobes; side is bilateral when
the sentence says so or names lobes on both sides.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest

from rexground.text.parser import parse_finding

# (scan, channel) -> (side, lobes), verified by hand.
EXPECTED_SIDE_LOBES: dict[tuple[str, int], tuple[str, tuple[str, ...]]] = {
    ("train_19753_a_2.nii.gz", 0): ("right", ("RLL",)),
    ("train_19753_a_2.nii.gz", 1): ("right", ("RLL",)),
    ("train_19711_a_1.nii.gz", 0): ("right", ("RLL",)),
    ("train_18411_a_2.nii.gz", 0): ("left", ("LLL",)),
    ("train_3011_a_2.nii.gz", 0): ("bilateral", ("RLL", "lingula", "LLL")),
    ("train_3011_a_2.nii.gz", 1): ("bilateral", ()),
    ("train_13481_a_2.nii.gz", 0): ("right", ("RML",)),
    ("train_13481_a_2.nii.gz", 1): ("bilateral", ("RLL", "LLL")),
    ("train_13481_a_2.nii.gz", 2): ("unspecified", ()),
    ("train_13256_b_2.nii.gz", 0): ("bilateral", ()),
    ("train_13256_b_2.nii.gz", 1): ("bilateral", ()),
    ("train_19348_a_2.nii.gz", 0): ("bilateral", ()),
    ("train_19348_a_2.nii.gz", 1): ("bilateral", ()),
    ("train_2560_b_2.nii.gz", 0): ("right", ("RLL",)),
    ("train_18729_a_1.nii.gz", 0): ("bilateral", ()),
    ("train_13431_a_1.nii.gz", 0): ("left", ("LUL",)),
    ("train_18455_a_2.nii.gz", 0): ("bilateral", ("RML", "RLL", "LLL")),
    ("train_13440_a_1.nii.gz", 0): ("bilateral", ()),
    ("train_18382_b_2.nii.gz", 0): ("left", ("LLL",)),
    ("train_18382_b_2.nii.gz", 1): ("right", ("RML", "RLL")),
    ("train_18983_a_2.nii.gz", 0): ("right", ("RUL",)),
    ("train_18983_a_2.nii.gz", 1): ("right", ("RML",)),
    ("train_19368_a_2.nii.gz", 0): ("unspecified", ()),
    ("train_18414_a_2.nii.gz", 0): ("bilateral", ()),
    ("train_18414_a_2.nii.gz", 1): ("bilateral", ()),
    ("train_13301_a_2.nii.gz", 0): ("right", ("RUL",)),
    ("train_13301_a_2.nii.gz", 1): ("left", ("LUL",)),
    ("train_13301_a_2.nii.gz", 2): ("bilateral", ()),
    ("train_2213_a_1.nii.gz", 0): ("bilateral", ()),
    ("train_2639_a_1.nii.gz", 0): ("bilateral", ("RUL", "LUL", "LLL")),
    ("train_12991_a_1.nii.gz", 0): ("bilateral", ("RLL", "LLL")),
    ("train_12991_a_1.nii.gz", 1): ("bilateral", ("RLL", "LLL")),
    ("train_12991_a_1.nii.gz", 2): ("right", ("RML",)),
    ("train_12991_a_1.nii.gz", 3): ("bilateral", ("RLL", "LLL")),
    ("train_12991_a_1.nii.gz", 4): ("bilateral", ("RLL", "LLL")),
    ("train_2589_a_2.nii.gz", 0): ("bilateral", ()),
    ("train_13092_a_2.nii.gz", 0): ("right", ("RUL",)),
    ("train_13092_a_2.nii.gz", 1): ("bilateral", ()),
    ("train_13092_a_2.nii.gz", 2): ("left", ("LLL",)),
    ("train_19452_a_2.nii.gz", 0): ("right", ("RML",)),
    ("train_19452_a_2.nii.gz", 1): ("left", ("LLL",)),
    ("train_19452_a_2.nii.gz", 2): ("left", ("LLL",)),
    ("train_19452_a_2.nii.gz", 3): ("bilateral", ()),
    ("train_2477_a_2.nii.gz", 0): ("unspecified", ()),
    ("train_13430_a_2.nii.gz", 0): ("right", ("RLL",)),
    ("train_19877_a_2.nii.gz", 0): ("bilateral", ("RUL", "LUL")),
    ("train_18421_b_1.nii.gz", 0): ("right", ()),
    ("train_19443_b_2.nii.gz", 0): ("bilateral", ()),
    ("train_18662_a_1.nii.gz", 0): ("bilateral", ("lingula",)),
    ("train_13082_a_1.nii.gz", 0): ("right", ("RLL",)),
    ("train_13082_a_1.nii.gz", 1): ("right", ("RML",)),
    ("train_13082_a_1.nii.gz", 2): ("left", ("LLL",)),
    ("train_2443_a_2.nii.gz", 0): ("bilateral", ("LUL",)),
    ("train_2443_a_2.nii.gz", 1): ("right", ("RML",)),
    ("train_13492_b_2.nii.gz", 0): ("right", ("RML",)),
    ("train_13492_b_2.nii.gz", 1): ("right", ("RML",)),
    ("train_13492_b_2.nii.gz", 2): ("left", ("LLL",)),
    ("train_13492_b_2.nii.gz", 3): ("left", ("LLL",)),
    ("train_2646_a_1.nii.gz", 0): ("left", ("lingula",)),
    ("train_19767_a_1.nii.gz", 0): ("left", ("lingula",)),
    ("train_19767_a_1.nii.gz", 1): ("right", ("RUL",)),
    ("train_19180_a_2.nii.gz", 0): ("bilateral", ("RML", "lingula")),
    ("train_19180_a_2.nii.gz", 1): ("left", ("LLL",)),
    ("train_19397_a_1.nii.gz", 0): ("bilateral", ("LLL",)),
    ("train_13572_a_2.nii.gz", 0): ("right", ("RLL",)),
    ("train_13572_a_2.nii.gz", 1): ("right", ("RLL",)),
    ("train_19072_a_2.nii.gz", 0): ("bilateral", ()),
    ("train_19072_a_2.nii.gz", 1): ("bilateral", ("RML", "RLL", "lingula", "LLL")),
    ("train_2562_a_1.nii.gz", 0): ("left", ("LLL",)),
    ("train_2580_b_2.nii.gz", 0): ("right", ("RLL",)),
    ("train_2724_a_1.nii.gz", 0): ("bilateral", ()),
    ("train_13284_a_2.nii.gz", 0): ("bilateral", ("RUL", "RLL", "LUL", "LLL")),
    ("train_13284_a_2.nii.gz", 1): ("bilateral", ("RUL", "RLL", "LUL", "LLL")),
    ("train_2659_a_2.nii.gz", 0): ("bilateral", ()),
    ("train_2625_a_2.nii.gz", 0): ("left", ("LLL",)),
    ("train_18976_a_2.nii.gz", 0): ("left", ("LLL",)),
    ("train_13098_a_2.nii.gz", 0): ("bilateral", ()),
    ("train_13098_a_2.nii.gz", 1): ("bilateral", ("RLL", "LLL")),
    ("train_2564_c_1.nii.gz", 0): ("bilateral", ()),
    ("train_2564_c_1.nii.gz", 1): ("bilateral", ()),
    ("train_2564_c_1.nii.gz", 2): ("bilateral", ()),
    ("train_2666_a_2.nii.gz", 0): ("unspecified", ()),
    ("train_2148_a_2.nii.gz", 0): ("right", ("RLL",)),
    ("train_2148_a_2.nii.gz", 1): ("bilateral", ()),
    ("train_2148_a_2.nii.gz", 2): ("right", ("RML",)),
    ("train_2617_b_2.nii.gz", 0): ("left", ("LLL",)),
    ("train_2617_b_2.nii.gz", 1): ("left", ("LLL",)),
    ("train_2617_b_2.nii.gz", 2): ("right", ("RLL",)),
    ("train_2617_b_2.nii.gz", 3): ("unspecified", ()),
    ("train_2617_b_2.nii.gz", 4): ("left", ("LLL",)),
    ("train_2641_a_1.nii.gz", 0): ("bilateral", ("RLL", "LLL")),
    ("train_13339_a_1.nii.gz", 0): ("right", ("RLL",)),
    ("train_13339_a_1.nii.gz", 1): ("left", ("LLL",)),
    ("train_18956_a_1.nii.gz", 0): ("left", ("LUL",)),
    ("train_13111_a_2.nii.gz", 0): ("bilateral", ("RLL", "LLL")),
    ("train_19021_b_2.nii.gz", 0): ("bilateral", ("LLL",)),
    ("train_13316_a_2.nii.gz", 0): ("bilateral", ()),
    ("train_13316_a_2.nii.gz", 1): ("left", ("LLL",)),
    ("train_2555_a_1.nii.gz", 0): ("right", ("RLL",)),
    ("train_13155_a_2.nii.gz", 0): ("bilateral", ("RUL", "LUL")),
    ("train_13155_a_2.nii.gz", 1): ("bilateral", ()),
    ("train_13155_a_2.nii.gz", 2): ("bilateral", ()),
    ("train_13119_c_1.nii.gz", 0): ("bilateral", ()),
    ("train_13119_c_1.nii.gz", 1): ("bilateral", ()),
    ("train_13119_c_1.nii.gz", 2): ("left", ("LLL",)),
    ("train_13119_c_1.nii.gz", 3): ("bilateral", ()),
    ("train_18410_b_2.nii.gz", 0): ("unspecified", ()),
    ("train_19722_a_1.nii.gz", 0): ("bilateral", ("RUL", "LUL")),
    ("train_2455_a_1.nii.gz", 0): ("right", ("RLL",)),
    ("train_18399_a_2.nii.gz", 0): ("right", ("RML",)),
    ("train_2594_a_2.nii.gz", 0): ("right", ("RML",)),
    ("train_2594_a_2.nii.gz", 1): ("right", ("RML",)),
    ("train_2594_a_2.nii.gz", 2): ("bilateral", ()),
    ("train_2594_a_2.nii.gz", 3): ("bilateral", ()),
    ("train_2594_a_2.nii.gz", 4): ("bilateral", ()),
    ("train_12994_a_1.nii.gz", 0): ("bilateral", ()),
    ("train_12994_a_1.nii.gz", 1): ("bilateral", ()),
    ("train_12994_a_1.nii.gz", 2): ("left", ("lingula",)),
    ("train_18624_a_2.nii.gz", 0): ("bilateral", ("RML", "RLL", "LLL")),
    ("train_13278_b_2.nii.gz", 0): ("right", ()),
    ("train_13278_b_2.nii.gz", 1): ("right", ("RML", "RLL")),
    ("train_18948_a_2.nii.gz", 0): ("bilateral", ("LUL",)),
    ("train_18959_b_2.nii.gz", 0): ("bilateral", ()),
    ("train_18525_a_2.nii.gz", 0): ("left", ("LLL",)),
    ("train_2936_b_2.nii.gz", 0): ("bilateral", ("RLL", "LLL")),
    ("train_2936_b_2.nii.gz", 1): ("bilateral", ("RLL", "LLL")),
    ("train_1841_b_1.nii.gz", 0): ("bilateral", ("RLL", "LLL")),
    ("train_1841_b_1.nii.gz", 1): ("right", ("RLL",)),
    ("train_1841_b_1.nii.gz", 2): ("right", ("RUL",)),
    ("train_1841_b_1.nii.gz", 3): ("right", ("RML",)),
    ("train_13148_a_2.nii.gz", 0): ("right", ("RLL",)),
    ("train_13148_a_2.nii.gz", 1): ("left", ("LLL",)),
    ("train_2482_a_1.nii.gz", 0): ("right", ()),
    ("train_2482_a_1.nii.gz", 1): ("right", ()),
    ("train_2468_a_2.nii.gz", 0): ("right", ("RML",)),
    ("train_2468_a_2.nii.gz", 1): ("right", ("RLL",)),
    ("train_13447_a_1.nii.gz", 0): ("bilateral", ()),
    ("train_19028_a_2.nii.gz", 0): ("bilateral", ("RLL", "LLL")),
    ("train_19028_a_2.nii.gz", 1): ("bilateral", ("RLL", "LLL")),
    ("train_18721_a_2.nii.gz", 0): ("right", ("RML",)),
    ("train_18721_a_2.nii.gz", 1): ("right", ("RLL",)),
    ("train_18721_a_2.nii.gz", 2): ("left", ("LUL",)),
    ("train_18721_a_2.nii.gz", 3): ("left", ("lingula",)),
    ("train_18721_a_2.nii.gz", 4): ("bilateral", ("RLL", "LLL")),
    ("train_2493_a_1.nii.gz", 0): ("left", ("lingula",)),
    ("train_2493_a_1.nii.gz", 1): ("right", ()),
    ("train_19459_a_2.nii.gz", 0): ("bilateral", ()),
    ("train_19459_a_2.nii.gz", 1): ("bilateral", ()),
    ("train_2645_a_1.nii.gz", 0): ("bilateral", ("RLL", "LLL")),
    ("train_13426_a_2.nii.gz", 0): ("right", ("RLL",)),
    ("train_13426_a_2.nii.gz", 1): ("left", ("LLL",)),
    ("train_3027_a_2.nii.gz", 0): ("unspecified", ()),
    ("train_18399_b_2.nii.gz", 0): ("left", ("LLL",)),
    ("train_18399_b_2.nii.gz", 1): ("left", ()),
    ("train_19771_a_2.nii.gz", 0): ("left", ("lingula",)),
    ("train_19771_a_2.nii.gz", 1): ("right", ("RML",)),
    ("train_19771_a_2.nii.gz", 2): ("right", ()),
    ("train_13249_b_2.nii.gz", 0): ("unspecified", ()),
    ("train_13249_b_2.nii.gz", 1): ("bilateral", ("RLL", "LLL")),
    ("train_2680_a_2.nii.gz", 0): ("bilateral", ()),
    ("train_2680_a_2.nii.gz", 1): ("bilateral", ("RML", "RLL", "LLL")),
    ("train_2680_a_2.nii.gz", 2): ("right", ("RUL",)),
    ("train_205_a_1.nii.gz", 0): ("bilateral", ()),
    ("train_18397_a_2.nii.gz", 0): ("bilateral", ("RLL", "LLL")),
    ("train_19346_a_2.nii.gz", 0): ("bilateral", ()),
    ("train_18454_a_2.nii.gz", 0): ("right", ("RUL",)),
    ("train_19422_a_1.nii.gz", 0): ("bilateral", ()),
    ("train_19422_a_1.nii.gz", 1): ("bilateral", ()),
    ("train_299_a_1.nii.gz", 0): ("bilateral", ("RUL", "LUL")),
    ("train_18408_a_2.nii.gz", 0): ("bilateral", ()),
    ("train_18408_a_2.nii.gz", 1): ("bilateral", ("RML", "lingula", "LLL")),
    ("train_18569_a_2.nii.gz", 0): ("right", ("RUL",)),
    ("train_2995_a_2.nii.gz", 0): ("right", ("RLL",)),
    ("train_2568_a_5.nii.gz", 0): ("bilateral", ()),
    ("train_13479_e_1.nii.gz", 0): ("unspecified", ()),
    ("train_13479_e_1.nii.gz", 1): ("right", ("RLL",)),
    ("train_13479_e_1.nii.gz", 2): ("right", ("RLL",)),
    ("train_3026_b_2.nii.gz", 0): ("bilateral", ("RUL", "LUL")),
    ("train_3026_b_2.nii.gz", 1): ("bilateral", ("RUL", "LUL")),
    ("train_3026_b_2.nii.gz", 2): ("bilateral", ("RLL", "LLL")),
    ("train_3026_b_2.nii.gz", 3): ("bilateral", ()),
}

# (scan, channel) -> segments, verified by hand (sentences that name segments).
EXPECTED_SEGMENTS: dict[tuple[str, int], tuple[str, ...]] = {
    ("train_19753_a_2.nii.gz", 0): ("RLL lateral basal",),
    ("train_19753_a_2.nii.gz", 1): ("RLL lateral basal",),
    ("train_3011_a_2.nii.gz", 0): (
        "RLL lateral basal",
        "RLL posterior basal",
        "LUL inferior lingular",
        "LLL superior",
        "LLL anteromedial basal",
        "LLL lateral basal",
        "LLL posterior basal",
    ),
    ("train_2560_b_2.nii.gz", 0): ("RLL anterior basal", "RLL lateral basal", "RLL posterior basal"),
    ("train_13431_a_1.nii.gz", 0): ("LUL apicoposterior",),
    ("train_18455_a_2.nii.gz", 0): ("RLL anterior basal", "LLL anteromedial basal"),
    ("train_18382_b_2.nii.gz", 0): ("LLL lateral basal",),
    ("train_18382_b_2.nii.gz", 1): ("RLL posterior basal",),
    ("train_18983_a_2.nii.gz", 0): ("RUL anterior",),
    ("train_2639_a_1.nii.gz", 0): ("RUL posterior", "LUL anterior", "LLL lateral basal"),
    ("train_13092_a_2.nii.gz", 0): ("RUL posterior",),
    ("train_19452_a_2.nii.gz", 1): ("LLL anteromedial basal",),
    ("train_19452_a_2.nii.gz", 2): ("LLL anteromedial basal",),
    ("train_13430_a_2.nii.gz", 0): ("RLL superior",),
    ("train_18662_a_1.nii.gz", 0): ("LUL inferior lingular",),
    ("train_13082_a_1.nii.gz", 0): ("RLL anterior basal",),
    ("train_13082_a_1.nii.gz", 2): ("LLL posterior basal",),
    ("train_2443_a_2.nii.gz", 0): ("LUL apicoposterior",),
    ("train_2443_a_2.nii.gz", 1): ("RML medial",),
    ("train_13492_b_2.nii.gz", 0): ("RML lateral",),
    ("train_2646_a_1.nii.gz", 0): ("LUL inferior lingular",),
    ("train_19767_a_1.nii.gz", 0): ("LUL inferior lingular",),
    ("train_19767_a_1.nii.gz", 1): ("RUL anterior",),
    ("train_19180_a_2.nii.gz", 0): ("RML medial", "LUL inferior lingular"),
    ("train_19397_a_1.nii.gz", 0): ("LLL posterior basal",),
    ("train_13572_a_2.nii.gz", 0): ("RLL superior",),
    ("train_13572_a_2.nii.gz", 1): ("RLL posterior basal",),
    ("train_19072_a_2.nii.gz", 1): ("RML medial",),
    ("train_2562_a_1.nii.gz", 0): ("LLL superior",),
    ("train_18976_a_2.nii.gz", 0): ("LLL posterior basal",),
    ("train_2148_a_2.nii.gz", 0): ("RLL superior", "RLL posterior basal"),
    ("train_2148_a_2.nii.gz", 2): ("RML lateral",),
    ("train_2617_b_2.nii.gz", 0): ("LLL posterior basal",),
    ("train_2617_b_2.nii.gz", 1): ("LLL posterior basal",),
    ("train_2617_b_2.nii.gz", 2): ("RLL superior",),
    ("train_2617_b_2.nii.gz", 4): ("LLL lateral basal",),
    ("train_2641_a_1.nii.gz", 0): ("RLL posterior basal", "LLL posterior basal"),
    ("train_13339_a_1.nii.gz", 0): ("RLL anterior basal",),
    ("train_13339_a_1.nii.gz", 1): ("LLL lateral basal",),
    ("train_19021_b_2.nii.gz", 0): ("LLL posterior basal",),
    ("train_13316_a_2.nii.gz", 1): ("LLL anteromedial basal",),
    ("train_2555_a_1.nii.gz", 0): ("RLL posterior basal",),
    ("train_19722_a_1.nii.gz", 0): ("RUL apical", "LUL apicoposterior"),
    ("train_18399_a_2.nii.gz", 0): ("RML lateral",),
    ("train_2594_a_2.nii.gz", 0): ("RML lateral",),
    ("train_2594_a_2.nii.gz", 1): ("RML lateral",),
    ("train_12994_a_1.nii.gz", 2): ("LUL inferior lingular",),
    ("train_18624_a_2.nii.gz", 0): ("LLL lateral basal",),
    ("train_13278_b_2.nii.gz", 1): ("RLL lateral basal",),
    ("train_18948_a_2.nii.gz", 0): ("LUL apicoposterior",),
    ("train_18525_a_2.nii.gz", 0): ("LLL anteromedial basal", "LLL lateral basal"),
    ("train_1841_b_1.nii.gz", 1): ("RLL medial basal",),
    ("train_19028_a_2.nii.gz", 0): ("RLL lateral basal", "LLL lateral basal", "LLL posterior basal"),
    ("train_19028_a_2.nii.gz", 1): ("RLL lateral basal", "LLL lateral basal", "LLL posterior basal"),
    ("train_18721_a_2.nii.gz", 1): ("RLL superior",),
    ("train_18721_a_2.nii.gz", 2): ("LUL anterior",),
    ("train_2493_a_1.nii.gz", 0): ("LUL inferior lingular",),
    ("train_13426_a_2.nii.gz", 0): ("RLL posterior basal",),
    ("train_13426_a_2.nii.gz", 1): ("LLL lateral basal",),
    ("train_18399_b_2.nii.gz", 0): ("LLL anteromedial basal", "LLL lateral basal"),
    ("train_19771_a_2.nii.gz", 0): ("LUL inferior lingular",),
    ("train_19771_a_2.nii.gz", 1): ("RML medial",),
    ("train_2680_a_2.nii.gz", 1): (
        "RLL superior",
        "RLL posterior basal",
        "LLL superior",
        "LLL posterior basal",
    ),
    ("train_18397_a_2.nii.gz", 0): ("RLL superior", "LLL superior"),
    ("train_18408_a_2.nii.gz", 1): ("LUL inferior lingular",),
    ("train_18569_a_2.nii.gz", 0): ("RUL posterior",),
    ("train_2995_a_2.nii.gz", 0): ("RLL superior",),
    ("train_13479_e_1.nii.gz", 1): ("RLL medial basal",),
    ("train_13479_e_1.nii.gz", 2): ("RLL medial basal",),
    ("train_3026_b_2.nii.gz", 1): ("RUL apical", "LUL apicoposterior"),
    ("train_3026_b_2.nii.gz", 2): ("RLL posterior basal", "LLL posterior basal"),
}


def _rows(path) -> dict[tuple[str, int], dict]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return {(r["scan"], int(r["channel"])): r for r in rows}


def test_category_accuracy_on_real_sentences_is_at_least_90_percent(findings_jsonl):
    rows = _rows(findings_jsonl)
    correct = Counter()
    for row in rows.values():
        correct[parse_finding(row["text"]).category == row["category"]] += 1
    accuracy = correct[True] / len(rows)
    assert accuracy >= 0.90, f"category accuracy {accuracy:.3f}"


def test_every_real_sentence_parses_to_a_known_category(findings_jsonl):
    for row in _rows(findings_jsonl).values():
        assert parse_finding(row["text"]).known, row["text"]


def test_side_and_lobes_match_hand_checked_values(findings_jsonl):
    rows = _rows(findings_jsonl)
    present = [key for key in EXPECTED_SIDE_LOBES if key in rows]
    assert len(present) >= 60, "the shared sentence file no longer holds the hand-checked sentences"
    wrong = []
    for key in present:
        q = parse_finding(rows[key]["text"])
        if (q.side, q.lobes) != EXPECTED_SIDE_LOBES[key]:
            wrong.append((key, (q.side, q.lobes), EXPECTED_SIDE_LOBES[key]))
    assert not wrong, wrong


def test_segments_match_hand_checked_values(findings_jsonl):
    rows = _rows(findings_jsonl)
    wrong = []
    for key, expected in EXPECTED_SEGMENTS.items():
        if key not in rows:
            continue
        got = parse_finding(rows[key]["text"]).segments
        if got != expected:
            wrong.append((key, got, expected))
    assert not wrong, wrong


@pytest.mark.parametrize("field", ["side", "lobes"])
def test_hand_checked_set_is_large_and_varied(field):
    values = {getattr_expected(v, field) for v in EXPECTED_SIDE_LOBES.values()}
    assert len(EXPECTED_SIDE_LOBES) >= 60
    assert len(values) >= 4


def getattr_expected(value: tuple[str, tuple[str, ...]], field: str):
    return value[0] if field == "side" else value[1]
