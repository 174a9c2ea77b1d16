"""Free-text radiology reports in CT-RATE's layout read into sentences, and which sentences are lung findings.

CT-RATE's report tables (``VolumeName, ClinicalInformation_EN, Technique_EN, Findings_EN, Impressions_EN``)
are the sentences a grounding model meets in practice, phrased as radiologists (and their translators)
write them, not as a curated finding list. ``rexground bench text --reports CSV`` reads them with this module
to check that the parser never fails on real report language and to measure how often it cannot name a
category for a lung finding.

What counts as a lung finding is decided here with words of place and polarity only, never with the parser's
own finding vocabulary (else a vocabulary gap would hide itself). A sentence of the Findings or Impressions is
a lung finding when all of these hold:

- it is about the lungs: it names a place of the lung, airways or pleura ("lung", "lobe", "segment",
  "parenchyma", "pleural", "bronchi", "fissure", "apex", "subpleural", ...), or it stands in the lung part of
  the Findings (after "... lung parenchyma window;" and before the report turns to another organ);
- it names no organ outside the lungs (lymph nodes, mediastinum, heart, aorta, liver, kidney, bones, ...):
  a sentence about the mediastinum that mentions "both hilar" is not a lung finding, and a mixed sentence is
  left out rather than guessed;
- it is a positive statement: no negation or normality word ("no", "not", "without", "normal", "natural",
  "open", "preserved", "within normal limits", "resolved", ...), so "No pleural effusion was detected" and
  "Aeration of both lung parenchyma is normal" are not findings;
- it describes rather than interprets: it does not open with a reference to other findings or a
  recommendation ("The findings ...", "It is recommended ...", "Findings consistent with ...", "A similar
  appearance ..."), and it names more than a place ("Right lung lower lobe superior segment;").
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rexground.errors import InputFileError

REPORT_ID_COLUMN = "VolumeName"
REPORT_TEXT_COLUMNS = ("Findings_EN", "Impressions_EN")
_SECTION_OF = {"Findings_EN": "findings", "Impressions_EN": "impressions"}

# A sentence ends at . ! ; or a bullet followed by white space; a question mark or a colon ends one only before
# a capital ("Infectious bronchiolitis? A 6 mm nodule ...", "As far as can be observed: Heart contour ..."), so
# a hedge inside a sentence ("(small airway disease?, small vessel disease?)") and "3.5 mm" stay whole.
_SENTENCE_END = re.compile(r"(?<=[.!;·])\s+|(?<=[?:])\s+(?=[A-Z])")
_HAS_LETTER = re.compile(r"[A-Za-z]")

_LUNG_PLACE = re.compile(
    r"\b(?:lungs?|pulmonary|parenchym\w*|lobes?|lobar|lobules?|lingul\w*|segments?|segmental|subsegment\w*|"
    r"pleura\w*|pleuroparenchymal|hemithora\w*|bronch\w*|airways?|alveol\w*|fissur\w*|interlobar|"
    r"apex|apexes|apices|apical|apicoposterior|bases|basal|basals|bibasal|bibasilar|subpleural|perihilar|"
    r"posterobasal|laterobasal|mediobasal|anterobasal|anteromediobasal|costophrenic|interstiti\w*)\b",
    re.IGNORECASE,
)
_OTHER_ORGAN = re.compile(
    r"\b(?:lymph\w*|laps?|lymphadenopath\w*|mediastin\w*|hil(?:um|us|i)|aort\w*|coronar\w*|arter\w*|"
    r"heart|cardi\w*|pericard\w*|thyroid|thymus|thymic|esophag\w*|oesophag\w*|trache\w*|liver|hepat\w*|"
    r"spleen|splen\w*|kidneys?|renal|adrenal|gall\w*|bile|biliary|pancrea\w*|abdom\w*|stomach|gastric|"
    r"hiatal|hernia|bones?|osseous|vertebr\w*|ribs?|spin\w*|scoliosis|kyphosis|osteo\w*|sternum|"
    r"sternotomy|breasts?|axill\w*|subcutaneous|muscles?|\w*diaphragm\w*|catheter|pacemaker|tubes?|cannula|"
    r"trunk|conus|caudate)\b",
    re.IGNORECASE,
)
_NEGATIVE_OR_NORMAL = re.compile(
    r"\b(?:no|not|none|without|neither|nor|absence|absent|free of|ruled out|excluded|normal|natural|"
    r"within normal limits|preserved|symmetrical|unremarkable|open|clear|resolved|resorbed|regressed|"
    r"disappeared)\b",
    re.IGNORECASE,
)
_INTERPRETIVE = re.compile(
    r"^\W*(?:it|its|this|these|that|there (?:are|is) frequently|the (?:findings?|appearances?|outlook|"
    r"described|lesions?|patient|case|radiological|imaging)|findings?|appearances?|radiological|imaging|"
    r"clinical|other|in terms|in the differential|post treatment|post-treatment|posttreatment|close|note|"
    r"however|therefore|first of all|primarily|as far as|bacteria\w*|infective|infectious|shooting|when)\b"
    r"|\brecommend\w*|\bdescribed (?:findings?|appearances?|lesions?|manifestations?)|\betiology\b"
    r"|\bsimilar (?:appearances?|findings?|changes?|views?)|\bsame (?:appearances?|findings?)",
    re.IGNORECASE,
)
# A piece that only names a place ("Right lung lower lobe superior segment;") says nothing about what is there.
_PLACE_WORDS = frozenset((
    "right", "left", "both", "bilateral", "the", "of", "in", "at", "and", "lung", "lungs", "lobe", "lobes",
    "upper", "middle", "lower", "superior", "inferior", "anterior", "posterior", "lateral", "medial", "basal",
    "apical", "segment", "segments", "lingula", "lingular", "level",
))  # fmt: skip
# The lung part of CT-RATE's Findings opens with one of these ("When examined in the lung parenchyma window;").
_LUNG_WINDOW = re.compile(
    r"parenchyma windows?|lung parenchyma evaluation|evaluation of (?:both |the )?lung parenchyma|"
    r"evaluation made in the lung",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class ReportSentence:
    """One sentence of a report, where it came from and whether it is a lung finding."""

    report: str  # the report's VolumeName
    section: str  # "findings" or "impressions"
    text: str
    lung_finding: bool


def split_sentences(text: str) -> list[str]:
    """The sentences of a report section, white space trimmed, pieces without a letter dropped."""
    pieces = (p.strip() for p in _SENTENCE_END.split(text or ""))
    return [p for p in pieces if _HAS_LETTER.search(p)]


def is_lung_finding(sentence: str, *, in_lung_part: bool = False) -> bool:
    """A positive, descriptive statement about the lungs, airways or pleura (see the module docstring)."""
    if not (in_lung_part or _LUNG_PLACE.search(sentence)):
        return False
    if _OTHER_ORGAN.search(sentence) or _NEGATIVE_OR_NORMAL.search(sentence):
        return False
    if set(re.findall(r"[a-z]+", sentence.lower())) <= _PLACE_WORDS:
        return False
    return _INTERPRETIVE.search(sentence) is None


def _section_sentences(report: str, column: str, text: str) -> Iterator[ReportSentence]:
    section = _SECTION_OF[column]
    in_lung_part = False
    for sentence in split_sentences(text):
        if section == "findings":
            if _LUNG_WINDOW.search(sentence):
                in_lung_part = True
                continue  # the heading itself ("When examined in the lung parenchyma window;")
            if in_lung_part and _OTHER_ORGAN.search(sentence):
                in_lung_part = False  # the report has moved on (abdomen, bones)
        yield ReportSentence(report, section, sentence, is_lung_finding(sentence, in_lung_part=in_lung_part))


def read_report_sentences(path: str | Path) -> list[ReportSentence]:
    """Every sentence of the Findings and Impressions of a CT-RATE-layout CSV, in file order.

    Raises ``InputFileError`` naming the file when it is missing, not UTF-8 CSV, or lacks the text columns.
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "no such file")
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:  # a spreadsheet's byte-order mark is fine
            reader = csv.DictReader(fh)
            columns = reader.fieldnames or []
            missing = [c for c in REPORT_TEXT_COLUMNS if c not in columns]
            if missing:
                raise InputFileError(
                    path,
                    f"not a CT-RATE report table: no column {', '.join(missing)} (has {', '.join(columns)})",
                )
            out: list[ReportSentence] = []
            for n, row in enumerate(reader, start=1):
                report = row.get(REPORT_ID_COLUMN) or f"row {n}"
                for column in REPORT_TEXT_COLUMNS:
                    out.extend(_section_sentences(report, column, row.get(column) or ""))
    except UnicodeDecodeError as exc:
        raise InputFileError(path, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except csv.Error as exc:
        raise InputFileError(path, f"not valid CSV ({exc})") from None
    return out
