"""Reports in CT-RATE's layout read into sentences and lung findings, and `bench text --reports` on them.

The reports here are written for these tests in the style of CT-RATE's translated reports; the real corpus is
third-party data and stays out of the repository.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from rexground.errors import InputFileError
from rexground.text.parser import parse_finding
from rexground.text.reports import is_lung_finding, read_report_sentences, split_sentences

REPO = Path(__file__).resolve().parents[1]

FINDINGS = (
    "Trachea, both main bronchi are open. Mediastinal main vascular structures, heart contour, size are normal. "
    "No enlarged lymph nodes in prevascular or hilar regions were detected. When examined in the lung "
    "parenchyma window; Emphysematous changes are observed. A 4x3.5 mm nodule is observed in the anterior "
    "segment of the right lung upper lobe. Mosaic atteniation pattern in both lungs (small airway disease?, "
    "small vessel disease?). Fissural thickening was observed on the left. Budding tree appearances are seen "
    "in the left lower lobe. Pleural effusion-thickening was not detected. The findings were evaluated in "
    "favor of infection. Upper abdominal organs included in the sections are normal. Hepatosteatosis is "
    "observed. Degenerative changes in the bone structures."
)
IMPRESSIONS = (
    "Emphysema in both lungs.  Millimetric nodule in the right lung. Hiatal hernia. It is recommended to be "
    "evaluated together with clinical findings."
)


def _write_reports(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["VolumeName", "ClinicalInformation_EN", "Technique_EN", "Findings_EN", "Impressions_EN"])
        for name, findings, impressions in rows:
            w.writerow([name, "Not given.", "Non-contrast images, 1.5 mm.", findings, impressions])
    return path


def test_sentences_split_at_stops_but_not_inside_sizes_or_hedges():
    text = "A 3.5 mm nodule. Mosaic pattern (small airway disease?, small vessel disease?). Bronchiolitis? A cyst"
    assert split_sentences(text) == [
        "A 3.5 mm nodule.",
        "Mosaic pattern (small airway disease?, small vessel disease?).",
        "Bronchiolitis?",
        "A cyst",
    ]
    assert split_sentences("As far as can be observed: Heart contour is normal; Emphysema.") == [
        "As far as can be observed:",
        "Heart contour is normal;",
        "Emphysema.",
    ]
    assert split_sentences("") == [] and split_sentences(" . ; ") == []


@pytest.mark.parametrize(
    ("sentence", "lung"),
    [
        ("Fissural thickening was observed on the left.", True),
        ("There are budding tree appearances in both lungs.", True),
        ("Millimetric nodule in the right lung.", True),
        ("No pleural effusion was detected.", False),  # negated
        ("Aeration of both lung parenchyma is normal.", False),  # normal
        ("Trachea, both main bronchi are open.", False),  # normal, and the trachea
        ("Lymph nodes are observed at both hilar levels.", False),  # another organ
        ("A cyst in the right kidney.", False),  # no place of the lung
        ("The findings were evaluated in favor of Covid-19 pneumonia in both lungs.", False),  # interpretive
        ("A similar appearance is observed in the left lower lobe.", False),  # refers to another sentence
        ("Right lung lower lobe superior segment;", False),  # only a place
    ],
)
def test_lung_finding_is_a_positive_description_of_a_lung_place(sentence, lung):
    assert is_lung_finding(sentence) is lung


def test_the_lung_part_of_the_findings_counts_without_a_place_word(tmp_path):
    sentences = read_report_sentences(
        _write_reports(tmp_path / "r.csv", [("valid_1_a", FINDINGS, IMPRESSIONS)])
    )
    lung = [s.text for s in sentences if s.lung_finding]
    assert lung == [
        "Emphysematous changes are observed.",  # in the lung window, no place word needed
        "A 4x3.5 mm nodule is observed in the anterior segment of the right lung upper lobe.",
        "Mosaic atteniation pattern in both lungs (small airway disease?, small vessel disease?).",
        "Fissural thickening was observed on the left.",
        "Budding tree appearances are seen in the left lower lobe.",
        "Emphysema in both lungs.",
        "Millimetric nodule in the right lung.",
    ]
    # after the report turns to the abdomen, a sentence without a lung place is no longer a lung finding
    assert not any(s.lung_finding for s in sentences if s.text.startswith("Hepatosteatosis"))
    assert {s.section for s in sentences} == {"findings", "impressions"}
    assert {s.report for s in sentences} == {"valid_1_a"}


def test_every_sentence_of_hand_written_reports_parses_and_lung_findings_get_a_category(tmp_path):
    path = _write_reports(tmp_path / "r.csv", [("valid_1_a", FINDINGS, IMPRESSIONS), ("valid_2_a", "", "")])
    sentences = read_report_sentences(path)
    queries = [parse_finding(s.text) for s in sentences]  # never raises
    lung = [q for s, q in zip(sentences, queries, strict=True) if s.lung_finding]
    assert [q.category for q in lung] == ["1c", "2d", "1f", "2e", "1e", "1c", "2d"]


def test_bad_report_tables_are_clear_errors_naming_the_file(tmp_path):
    with pytest.raises(InputFileError, match=r"missing\.csv: no such file"):
        read_report_sentences(tmp_path / "missing.csv")
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("VolumeName,Findings\nvalid_1_a,Emphysema.\n", encoding="utf-8")
    with pytest.raises(
        InputFileError, match=r"wrong\.csv: not a CT-RATE report table: no column Findings_EN"
    ):
        read_report_sentences(wrong)
    latin = tmp_path / "latin.csv"
    latin.write_bytes("VolumeName,Findings_EN,Impressions_EN\nv,Ödem,\n".encode("latin-1"))
    with pytest.raises(InputFileError, match=r"latin\.csv: not UTF-8"):
        read_report_sentences(latin)


def test_bench_text_reports_counts_unknown_lung_findings_and_lists_their_phrasing(tmp_path):
    odd = "When examined in the lung parenchyma window; Vanishing lung syndrome in the right upper lobe."
    path = _write_reports(tmp_path / "r.csv", [("valid_1_a", FINDINGS, IMPRESSIONS), ("valid_2_a", odd, "")])
    labelled = tmp_path / "labelled.jsonl"
    labelled.write_text(json.dumps({"text": "Fissural thickening on the left", "category": "2e"}) + "\n")
    cmd = [
        sys.executable,
        str(REPO / "bench" / "bench_text.py"),
        "--findings",
        str(labelled),
        "--reports",
        str(path),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "category accuracy  1.000  (1/1)" in out
    assert "exceptions         0" in out
    assert "unknown category   0.125  (1/8 lung findings)" in out
    assert "vanishing syndrome" in out  # the unknown phrasing, places and fillers left out

    bad = subprocess.run([*cmd[:4], "--reports", str(tmp_path / "nope.csv")], capture_output=True, text=True)
    assert bad.returncode == 1 and "nope.csv: no such file" in bad.stderr
