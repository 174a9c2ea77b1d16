"""The finding parser on report language written for these tests (real sentences: test_parser_real.py)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rexground.errors import FindingTextError
from rexground.text import parse_finding, vocab
from rexground.text.location import LOBE_SIDE
from rexground.text.query import CATEGORY_CODES, FindingQuery


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("Bronchial wall thickening in both lower lobes", "1a"),
        ("Cylindrical bronchiectasis in the left lower lobe", "1b"),
        ("Traction bronchiectasis with honeycombing at the bases", "1b"),
        ("Centrilobular emphysema predominantly in the upper lobes", "1c"),
        ("Paraseptal bullae at the right apex", "1c"),
        ("Interlobular septal thickening at both bases", "1d"),
        ("Reticulation in the subpleural lower zones", "1d"),
        ("Tree-in-bud opacities in the right lower lobe", "1e"),
        ("Tree-in-bud nodules in the right lower lobe", "1e"),
        ("Centrilobular micronodules throughout both lungs", "1e"),
        ("Mosaic attenuation in both lungs", "1f"),
        ("Plate-like atelectasis at the left base", "2a"),
        ("Fibrotic bands in the lingula", "2a"),
        ("Linear opacity in the right middle lobe", "2a"),
        ("Dense consolidation of the left lower lobe with air bronchograms", "2b"),
        ("Compressive atelectasis of the right lower lobe", "2b"),
        ("Patchy ground glass opacities in the right upper lobe", "2c"),
        ("Groundglass opacification in both lungs", "2c"),
        ("Crazy-paving pattern in the lower lobes", "2c"),
        ("A 1.2 cm spiculated mass in the RUL", "2d"),
        ("Solid pulmonary nodule in the LLL", "2d"),
        ("Nodule with a surrounding ground-glass halo in the right upper lobe", "2d"),
        ("Small right pleural effusion", "2e"),
        ("Calcified pleural plaques along the left hemithorax", "2e"),
        ("Honeycombing in the subpleural bases", "2f"),
        ("Small left apical pneumothorax", "2g"),
        ("Thin-walled cyst in the left lower lobe", "2h"),
        ("Cavitary lesion in the right upper lobe", "2h"),
        ("Consolidation with surrounding ground glass in the lingula", "2b"),
        ("Ground-glass opacity with interlobular septal thickening", "2c"),
        ("Ground-glass nodule measuring 8 mm in the right upper lobe", "2d"),  # head noun: nodule
        ("Mass-like consolidation in the left lower lobe", "2b"),  # head noun: consolidation
        ("Atelectatic bands in the lingula", "2a"),
        ("Cystic bronchiectasis in the left lower lobe", "1b"),
        ("Septal thickening and ground glass in both lungs (crazy paving)", "2c"),
        ("Fibrotic sequelae in the right apex", "2a"),
        ("Airspace opacities in the right lower lobe", "2b"),
        ("Peribronchial interstitial thickening", "1a"),
        ("Bronchiectatic changes in the right lower lobe", "1b"),  # adjective form
        ("Bronchiolectasis in the lower lobes", "1b"),
    ],
)
def test_category_follows_the_head_finding_word(text, category):
    assert parse_finding(text).category == category


# Each family of the dataset's categorisation schema, in the words CT reports use for it (CT-RATE's translated
# reports among them): hand-written sentences, one or more per family the schema defines.
@pytest.mark.parametrize(
    ("text", "category"),
    [
        # 1a the airway wall
        ("Increased bronchial wall thickness in the segmental bronchi", "1a"),
        ("Peribronchial thickness increases in both lungs", "1a"),
        ("Thickening of the peribronchial sheath around the left upper lobe bronchus", "1a"),
        # 1b airways wider than normal
        ("Bronchial dilatation in the left lower lobe", "1b"),
        ("Dilated bronchi in the medial segment of the right middle lobe", "1b"),
        ("Diffuse minimal enlargement in the center of the bronchial structures", "1b"),
        # 1c emphysema, paraseptal, panlobular, bullous
        ("Panlobular emphysematous changes in both lungs", "1c"),
        ("Bulla formations at the apex of both lungs", "1c"),
        ("Density reduction consistent with emphysema in both lungs", "1c"),
        # 1d septal thickening and reticulation
        ("Interlobar and interlobular septal thickness increases in both upper lobes", "1d"),
        ("Interseptal thickening in both lower lobes", "1d"),
        ("Reticulated nodular opacity increases in the right lower lobe", "1d"),
        # 1e micronodules: tree in bud however translated, centriacinar nodules
        ("Budding tree appearance in the right lower lobe", "1e"),
        ("Scattered focal bud branch views in the left lung", "1e"),
        ("Branches with buds in the superior segment of the left lower lobe", "1e"),
        ("Centracinary ground-glass nodules in the middle lobe", "1e"),
        # 1f other diffuse: aeration and attenuation patterns, interstitial disease
        ("Hyperaeration in both lungs", "1f"),
        ("Increased aeration in the lower lobes of both lungs", "1f"),
        (
            "Mosaic atteniation pattern in both lower lobes (small airway disease?, small vessel disease?)",
            "1f",
        ),
        ("Areas of air trapping in both lower lobes", "1f"),
        ("Interstitial fibrosis in both lower lobes", "1f"),
        # 2a linear: scarring, sequelae, fibrosis, subsegmental atelectasis
        ("Pleuroparenchymal sequelae changes at both apices", "2a"),
        ("Minimal fibroatelectatic changes at the bases of both lungs", "2a"),
        ("Reticulonodular sequela fibrotic density increases in both lung apexes", "2a"),
        ("Post-inflammatory sequelae in the right upper lobe", "2a"),
        ("Fibrosis in the left upper lobe", "2a"),
        ("Subpleural lines in both lower lobes", "2a"),
        # 2b atelectasis, consolidation
        ("Atelectesis in the middle lobe of the right lung", "2b"),
        ("Volume loss in the right lower lobe", "2b"),
        ("Parenchymal consolidations accompanying honeycomb appearance in both upper lobes", "2b"),
        ("Bronchopneumonic infiltration in the right upper lobe", "2b"),
        # 2c ground glass, "frosted glass" in translation
        ("Frosted glass densities in the left lower lobe", "2c"),
        ("Crayz paving appearance in the lower lobes", "2c"),
        # 2d nodules
        ("A ground-glass-like 5 mm diameter nodule in the right upper lobe", "2d"),
        ("Nodular lesions measuring 4 mm in the left lower lobe", "2d"),
        ("Intrapulmonary lymph node along the right major fissure", "2d"),
        # 2e pleural effusion or thickening, the fissures included
        ("Fissural thickening on the left", "2e"),
        ("Thickening of the right major fissure", "2e"),
        ("Both fissures are observed as thick", "2e"),
        ("Free fluid between the pleural leaves on the right", "2e"),
        ("Pleural thickness increase in the left hemithorax", "2e"),
        ("Apical pleural caps bilaterally", "2e"),
        # 2g pneumothorax, misspelt
        ("Pneumonthorax on the right", "2g"),
        # 2h other focal: blebs, airway occlusion and plugging, distortion
        ("Subpleural bleb in the apex of the right upper lobe", "2h"),
        ("Occluded bronchus in the right lower lobe", "2h"),
        ("The right lung lower lobe bronchus is obliterated from the bifurcation", "2h"),
        ("Diffuse narrowing of the upper lobe bronchi", "2h"),
        ("Secretions within the lower lobe bronchi", "2h"),
        ("Structural distortion in the right upper lobe", "2h"),
        ("Destroyed lung appearance in the right middle lobe", "2h"),
    ],
)
def test_every_family_of_the_schema_gets_its_category(text, category):
    assert parse_finding(text).category == category


def test_a_weaker_word_of_a_family_gives_way_to_a_specific_one():
    # hyperaeration leans to 1f; named emphysema is the finding when both are there
    assert parse_finding("Increased aeration consistent with panlobular emphysema").category == "1c"
    assert parse_finding("Bullae and blebs at both apices").category == "1c"
    # "centrilobular ground-glass opacities" keep their head noun; centrilobular nodules are micronodules
    assert parse_finding("Centrilobular ground-glass opacities in the right lower lobe").category == "2c"
    assert parse_finding("Centrilobular nodular opacities in the right lower lobe").category == "1e"


@pytest.mark.parametrize(
    ("text", "negated"),
    [
        ("No air trapping", True),
        ("Fissural thickening was not observed", True),
        ("No bronchial obstruction", True),
        ("No budding tree appearance in either lung", True),
        ("Hyperaeration has resolved", True),
        ("Pleural effusion-thickening was not detected", True),
        ("Hyperaeration in both lungs", False),
        ("Occluded bronchus in the right lower lobe", False),
    ],
)
def test_negation_works_on_the_new_families(text, negated):
    assert parse_finding(text).negated is negated


@pytest.mark.parametrize(
    ("text", "side", "lobes"),
    [
        ("Fissural thickening on the left", "left", ()),
        ("Budding tree appearance in the right lower lobe", "right", ("RLL",)),
        ("Occluded bronchus in the left lower lobe", "left", ("LLL",)),
        ("Hyperaeration in both lungs", "bilateral", ()),
        (
            "Pleuroparenchymal sequelae in the right middle lobe and the lingula",
            "bilateral",
            ("RML", "lingula"),
        ),
        ("Mosaic atteniation pattern in both lower lobes", "bilateral", ("RLL", "LLL")),
    ],
)
def test_new_vocabulary_leaves_side_and_lobes_as_they_were(text, side, lobes):
    q = parse_finding(text)
    assert (q.side, q.lobes) == (side, lobes)


def test_rewrites_apply_in_order_when_any_applies():
    # "haemorrhag" -> "hemorrhag" before "haem" -> "hem"; a sentence needing no rewrite is left alone
    assert parse_finding("Haemorrhagic nodule in the RUL").category_evidence == ("nodule",)
    assert parse_finding("Perifissural nodule").zones == ("fissural",)


def test_british_and_hyphenated_spellings_read_the_same():
    a = parse_finding("Ground-glass opacities in the right lower lobe")
    b = parse_finding("ground glass opacities in the RLL")
    c = parse_finding("GGOs in the right lower lobe")
    assert a.category == b.category == c.category == "2c"
    assert a.lobes == b.lobes == c.lobes == ("RLL",)
    assert parse_finding("Localised oedema-like haziness in the left lung").side == "left"
    assert parse_finding("Sub-pleural honey-comb cysts at the bi-basilar lungs").category == "2f"
    q = parse_finding("Peri-hilar non-calcified sub-centimetre nodule")
    assert (q.category, q.zones, q.size_mm, q.size_is_upper_bound) == ("2d", ("perihilar",), 10.0, True)


@pytest.mark.parametrize(
    ("text", "side", "lobes"),
    [
        ("Nodule in the RUL", "right", ("RUL",)),
        ("Nodules in the RML and LLL", "bilateral", ("RML", "LLL")),
        ("Consolidation in the middle lobe of the right lung", "right", ("RML",)),
        ("Consolidation in the middle lobe", "right", ("RML",)),
        ("Scarring in the lower lobe of the left lung", "left", ("LLL",)),
        ("Atelectasis in both lower lobes", "bilateral", ("RLL", "LLL")),
        ("Atelectasis in bilateral lower lobes", "bilateral", ("RLL", "LLL")),
        ("Opacities in the upper and lower lobes of both lungs", "bilateral", ("RUL", "RLL", "LUL", "LLL")),
        ("Ground glass in the right middle and lower lobes", "right", ("RML", "RLL")),
        ("Ground glass in the right upper and left lower lobes", "bilateral", ("RUL", "LLL")),
        ("Linear atelectasis in the lingula", "left", ("lingula",)),
        ("Lingular scarring", "left", ("lingula",)),
        ("Biapical pleuroparenchymal scarring", "bilateral", ()),
        ("Emphysema in both lungs", "bilateral", ()),
        ("Bilateral pleural effusions", "bilateral", ()),
        ("Left pleural effusion", "left", ()),
        ("Nodule in the right lung", "right", ()),
        ("Scattered nodules", "unspecified", ()),
        ("Atelectasis in the dependent lower lobes", "bilateral", ("RLL", "LLL")),
        ("Nodule in the lower lobe", "unspecified", ("RLL", "LLL")),
        ("Consolidation in the inferior lobe of the right lung", "right", ("RLL",)),
        ("Subsegmental atelectasis in the right lung lower lobe", "right", ("RLL",)),
        ("Honeycombing at the lung bases", "bilateral", ()),
        ("Nodules in the lower lobes bilaterally", "bilateral", ("RLL", "LLL")),
        ("Atelectasis in the lingular segment of the left lung upper lobe", "left", ("lingula",)),
        ("Consolidation in the left lung lower lobe superior segment", "left", ("LLL",)),
        ("Linear atelectasis in both apical regions", "bilateral", ()),
        ("Scarring in both basal segments", "bilateral", ("RLL", "LLL")),
    ],
)
def test_side_and_lobes(text, side, lobes):
    q = parse_finding(text)
    assert (q.side, q.lobes) == (side, lobes)


@pytest.mark.parametrize(
    ("text", "segments"),
    [
        ("Nodule in the posterobasal segment of the right lower lobe", ("RLL posterior basal",)),
        ("Nodule in the postero-basal segment of the RLL", ("RLL posterior basal",)),
        ("Ground glass in the apicoposterior segment of the LUL", ("LUL apicoposterior",)),
        ("Nodule in the superior segment of the right lower lobe", ("RLL superior",)),
        ("Atelectasis in the inferior lingular segment", ("LUL inferior lingular",)),
        ("Atelectasis in the superior segment of the lingula", ("LUL superior lingular",)),
        ("Scarring in the medial segment of the middle lobe", ("RML medial",)),
        ("Opacities in the anterior and lateral basal segments of the LLL",
         ("LLL anteromedial basal", "LLL lateral basal")),
        ("Nodules in the left lower lobe mediobasal and laterobasal segments",
         ("LLL anteromedial basal", "LLL lateral basal")),
        ("Opacity in the anterior segment of the right upper lobe", ("RUL anterior",)),
        ("Scarring in the posterior basal segments of both lower lobes",
         ("RLL posterior basal", "LLL posterior basal")),
        ("Consolidation at the posterobasal level of the left lung", ("LLL posterior basal",)),
        ("Opacity in the laterobasal segment of the right middle and lower lobes", ("RLL lateral basal",)),
        ("Nodules in segments 6 and 10 of the right lower lobe", ("RLL superior", "RLL posterior basal")),
        ("Consolidation in S1+2 of the left upper lobe", ("LUL apicoposterior",)),
        ("Ground glass in left S6", ("LLL superior",)),
    ],
)  # fmt: skip
def test_segments_are_normalised_per_lobe(text, segments):
    q = parse_finding(text)
    assert q.segments == segments
    for seg in segments:  # a segment implies its lobe
        lobe = "lingula" if "lingular" in seg else seg.split()[0]
        assert lobe in q.lobes


def test_segment_names_do_not_become_zones_but_aspects_do():
    assert "anterior" not in parse_finding("Nodule in the anterior segment of the right upper lobe").zones
    assert "anterior" in parse_finding("Nodule in the anterior aspect of the right upper lobe").zones
    assert "posterior" in parse_finding("Opacity in the paravertebral right lower lobe").zones


@pytest.mark.parametrize(
    ("text", "zones"),
    [
        ("Scarring at both apices", {"apical"}),
        ("Atelectasis at the lung bases", {"basal"}),
        ("Bibasilar atelectasis", {"basal"}),
        ("Subpleural reticulation", {"subpleural"}),
        ("Peripheral ground glass opacities", {"peripheral"}),
        ("Perihilar consolidation", {"perihilar"}),
        ("Dependent atelectasis", {"dependent"}),
        ("Perifissural nodule along the major fissure", {"fissural"}),
        ("Pleural thickening", {"pleural"}),
        ("Emphysema in the upper lung zones", {"upper"}),
        ("Ground glass in the mid lung zones", {"mid"}),
        ("Reticulation in the lower zones", {"lower"}),
        ("Central bronchiectasis", {"central"}),
    ],
)
def test_zone_vocabulary(text, zones):
    assert zones <= set(parse_finding(text).zones)


@pytest.mark.parametrize(
    ("text", "size", "bound"),
    [
        ("6 mm nodule in the RLL", 6.0, False),
        ("6x5 mm nodule", 6.0, False),
        ("Nodule measuring 12 x 9 mm", 12.0, False),
        ("A 1.2 cm nodule", 12.0, False),
        ("Mass of 3.4 x 2.1 x 2.8 cm", 34.0, False),
        ("Nodule of 12 mm x 9 mm", 12.0, False),
        ("Nodules of 6 mm and 7 mm", 7.0, False),
        ("Nodules measuring 2-3 mm", 3.0, False),
        ("Subcentimeter nodules", 10.0, True),
        ("Sub-centimetre nodule", 10.0, True),
        ("Nodules less than 5 mm", 5.0, True),
        ("Nodule <5 mm", 5.0, True),
        ("Ground glass in the left lower lobe", None, False),
        ("2-3 nodules in the right lung", None, False),
    ],
)
def test_size_is_the_largest_stated_dimension_in_mm(text, size, bound):
    q = parse_finding(text)
    assert (q.size_mm, q.size_is_upper_bound) == (size, bound)


@pytest.mark.parametrize(
    ("text", "multiplicity"),
    [
        ("Nodule in the right upper lobe", "single"),
        ("A solitary nodule", "single"),
        ("Two nodules in the right lung", "few"),
        ("A few nodules in the left lung", "few"),
        ("2-3 nodules in the right lung", "few"),
        ("Multiple nodules in both lungs", "multiple"),
        ("Nodules in the right lower lobe", "multiple"),
        ("Scattered ground glass opacities", "multiple"),
        ("Diffuse ground glass opacities", "diffuse"),
        ("Innumerable tiny nodules", "diffuse"),
        ("Emphysema", "diffuse"),
        ("Focal bronchiectasis in the right upper lobe", "single"),
        ("Linear atelectasis in both lower lobes", "multiple"),
        ("Nonspecific nodules with a diameter of 3 mm in the right upper lobe", "multiple"),
        ("Indeterminate nodules (two) in the right lower lobe", "few"),
        ("Largest nodule in the left lower lobe measures 6 mm", "multiple"),
    ],
)
def test_multiplicity(text, multiplicity):
    assert parse_finding(text).multiplicity == multiplicity


@pytest.mark.parametrize(
    ("text", "negated"),
    [
        ("No pleural effusion", True),
        ("No evidence of pneumothorax", True),
        ("Absence of consolidation", True),
        ("Nodule without calcification", False),
        ("Nonspecific nodule in the right lower lobe", False),
        ("Noncalcified nodule", False),
        ("Resolved consolidation in the left lower lobe", True),
        ("The consolidation previously seen has resolved", True),
        ("Nodule in the right lower lobe, unchanged", False),
        ("No significant change in the right lower lobe nodule", False),
        ("No new nodules", True),
    ],
)
def test_negation_scopes_over_the_finding_after_the_cue(text, negated):
    assert parse_finding(text).negated is negated


@pytest.mark.parametrize(
    ("text", "uncertain"),
    [
        ("Possible small nodule in the RUL", True),
        ("Opacity, likely atelectasis", True),
        ("Pneumonia cannot be excluded", True),
        ("Nodule difficult to distinguish from a vessel", True),
        ("Opacity consistent with scarring", False),
        ("Indeterminate 4 mm nodule", False),
    ],
)
def test_uncertainty_flag(text, uncertain):
    assert parse_finding(text).uncertain is uncertain


@pytest.mark.parametrize("bad", ["", "   ", "\n\t"])
def test_blank_text_is_a_clear_error(bad):
    with pytest.raises(FindingTextError, match="empty"):
        parse_finding(bad)


@pytest.mark.parametrize("bad", [None, 5, 3.2, ["nodule"], {"text": "nodule"}, b"nodule"])
def test_non_string_is_a_clear_error(bad):
    with pytest.raises(FindingTextError, match="must be a string"):
        parse_finding(bad)


@pytest.mark.parametrize(
    "text",
    [
        "Rundherd im rechten Unterlappen",  # German
        "肺结节",  # Chinese
        "Nódulo pulmonar en el lóbulo inferior derecho",  # Spanish, accented
        "The patient was seen today.",
        "12345",
        "???",
    ],
)
def test_text_without_a_finding_is_unknown_with_zero_confidence(text):
    q = parse_finding(text)
    assert q.category == "unknown"
    assert q.category_confidence == 0.0
    assert not q.known
    assert q.category_evidence == ()


def test_very_long_text_parses_quickly_and_keeps_the_original_text():
    text = "Multiple nodules in the right lower lobe, " + "unchanged since the prior study, " * 2000
    t0 = time.perf_counter()
    q = parse_finding(text)
    assert time.perf_counter() - t0 < 2.0
    assert q.text == text
    assert q.category == "2d"
    assert q.lobes == ("RLL",)


def test_query_is_a_valid_frozen_model_and_round_trips_json():
    q = parse_finding("Two 4 mm nodules in the posterobasal segment of the LLL, possibly granulomas")
    assert q.category in CATEGORY_CODES
    assert 0.0 < q.category_confidence <= 1.0
    assert "nodules" in q.category_evidence
    assert FindingQuery.model_validate_json(q.model_dump_json()) == q
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen-instance error
        q.side = "left"  # type: ignore[misc]


def test_weaker_evidence_gives_lower_confidence():
    strong = parse_finding("Nodule in the right upper lobe")
    weak = parse_finding("Opacity in the right upper lobe")
    assert weak.category_confidence < strong.category_confidence


def test_cli_prints_one_json_query_per_text_in_order(tmp_path):
    cmd = [sys.executable, "-m", "rexground.cli", "parse", "Nodule in the RUL", "Left pleural effusion"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.splitlines()
    assert [json.loads(line)["category"] for line in out] == ["2d", "2e"]


def test_cli_jsonl_keeps_order_and_names_bad_lines(tmp_path):
    good = tmp_path / "good.jsonl"
    good.write_text(
        "\n".join(json.dumps({"text": t, "id": i}) for i, t in enumerate(["GGO in RLL", "No nodule"]))
    )
    out = subprocess.run(
        [sys.executable, "-m", "rexground.cli", "parse", "--jsonl", str(good)], capture_output=True, text=True
    )
    assert out.returncode == 0
    assert [json.loads(line)["text"] for line in out.stdout.splitlines()] == ["GGO in RLL", "No nodule"]

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "Nodule"}\n{"text": 7}\n{"text": "  "}\nnot json\n')
    out = subprocess.run(
        [sys.executable, "-m", "rexground.cli", "parse", "--jsonl", str(bad)], capture_output=True, text=True
    )
    assert out.returncode == 1
    assert "line 2" in out.stderr and "must be a string" in out.stderr
    out = subprocess.run(
        [sys.executable, "-m", "rexground.cli", "parse", "--keep-going", "--jsonl", str(bad)],
        capture_output=True,
        text=True,
    )
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert out.returncode == 1
    assert lines[0]["category"] == "2d"
    assert [entry.get("line") for entry in lines[1:]] == [2, 3, 4]


def test_cli_without_input_is_a_clear_error():
    out = subprocess.run([sys.executable, "-m", "rexground.cli", "parse"], capture_output=True, text=True)
    assert out.returncode == 1
    assert "--jsonl" in out.stderr


_SALAD = (
    "nodule nodules mass ground glass consolidation atelectasis scarring effusion pleural right left both "
    "lungs lobe lobes upper middle lower lingula lingular segment segments of the in and with no possible "
    "6 mm 1.2 cm x 5 subcentimeter posterobasal apicoposterior superior inferior basal apical RUL LLL , ; ("
)
_WORDS = _SALAD.split()


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(_WORDS), min_size=1, max_size=30))
def test_any_word_salad_of_report_vocabulary_gives_a_valid_query(words):
    q = parse_finding(" ".join(words))
    assert q.category == "unknown" or q.category in CATEGORY_CODES
    assert (q.category == "unknown") == (q.category_confidence == 0.0)
    assert q.size_mm is None or q.size_mm > 0
    assert len(set(q.lobes)) == len(q.lobes)
    if q.lobes and q.side == "unspecified":  # lobes without a side are listed on both sides
        assert {LOBE_SIDE[lobe] for lobe in q.lobes} == {"left", "right"}


@settings(max_examples=60, deadline=None)
@given(st.text(min_size=1, max_size=200).filter(lambda t: t.strip()))
def test_arbitrary_unicode_never_crashes(text):
    q = parse_finding(text)
    assert q.text == text


_REPORT_WORDS = (
    "hyperaeration", "mosaic", "atteniation", "fissural", "fissure", "thickening", "thick", "bleb", "bullae",
    "occluded", "obliterated", "bronchus", "bronchi", "budding", "tree", "bud", "branches", "buds", "frosted",
    "glass", "sequelae", "pleuroparenchymal", "fibroatelectatic", "interlobar", "interlobular", "septal",
    "thickness", "increases", "secretions", "leaves", "pleural", "effusion-thickening", "not", "detected",
    "no", "was", "observed", "is", "are", "3.5", "mm", "5x4", "?", "(", ")", ";", ":", "-", "/", ",", "crayz",
    "pneumonthorax", "atelectesis", "centracinary",
)  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.one_of(st.sampled_from(_REPORT_WORDS), st.text(min_size=0, max_size=6)), min_size=1, max_size=40
    )
    .map(" ".join)
    .filter(lambda t: t.strip())
)
def test_report_words_mixed_with_arbitrary_text_never_crash_and_give_a_valid_query(text):
    q = parse_finding(text)
    assert q.text == text
    assert q.category == "unknown" or q.category in CATEGORY_CODES
    assert (q.category == "unknown") == (q.category_confidence == 0.0)
    assert all(words in vocab.normalise(text) for words in q.category_evidence)  # the words that decided
