"""Read one finding sentence into a ``FindingQuery``: category, side, lobes, segments, zones, size, count, flags.

Rules over vocabularies (``vocab``, ``location``), no learned weights, so every decision can be traced to the
words in ``category_evidence``. Text with no finding word gives category "unknown" with confidence 0; the
engines fall back to the whole lungs for it.

What the fields mean (the contract the engines read):
- ``category``: the strongest finding word decides (a specific noun over a modifier over a generic word);
  among equals the first noun phrase, and within a noun phrase its last noun ("ground glass nodule": 2d;
  "consolidation with ground glass halo": 2b); a preposition or participle between two words starts a new
  phrase ("consolidations accompanying honeycomb appearance": 2b), a size between them does not ("ground glass
  like 5 mm nodule": 2d). What each code covers is the dataset's own categorisation schema (see ``vocab``).
  Confidence 0.95 / 0.9 / 0.6 / 0.35 by the word's strength, 0.15 less when another category was named as
  strongly.
- ``lobes``: the lobes the sentence names or implies ("basal segments" -> the lower lobes, "middle lobe" ->
  RML). ``LUL`` means the whole left upper lobe, the lingula included; ``lingula`` means the lingula alone, and
  replaces ``LUL`` when the sentence names the lingula with its parent ("inferior lingular segment of the left
  upper lobe" -> ``("lingula",)``). A lobe without a side in the text takes the sentence's side; where the
  sentence has none, both candidates are listed and ``side`` stays "unspecified".
- ``side``: "bilateral" when the text says so ("both lungs", "bilateral", "biapical", "the lung bases") or
  names places on both sides; else the one side named or implied by the lobes.
- ``segments``: "<lobe> <segment>" over ``location.SEGMENT_ORDER`` (lingular segments under ``LUL``).
- ``zones``: every zone word named, as a list of places, not a conjunction: "peripheral subpleural" are
  qualifiers of one place, but "apices ... and basal segments" are two places. Segment names do not become
  zones ("anterior segment" is not the "anterior" zone); basal and apical segments do add basal / apical.
- ``size_mm``: the largest dimension stated (cm converted); "subcentimeter" alone gives 10 as an upper bound,
  "millimetric" 5, "< 5 mm" / "less than 5 mm" 5 as an upper bound.
- ``multiplicity``: count words before the finding noun ("a few", "multiple", "one"), a count or "largest"
  after it; else diffuse for non-focal categories, else plural noun or several places -> multiple.
- ``texture``: solid / part-solid / ground-glass / calcified from the sentence's density words
  (``rexground.text.texture``), None when it names none.
- ``negated``: a negation cue before the decisive word in its clause ("no", "without", "absence of"), or
  "resolved" / "no longer seen" after it. ``uncertain``: a hedge anywhere ("possible", "likely", "cannot be
  excluded", "difficult to distinguish"); "indeterminate" and "nonspecific" describe a finding's nature
  and are not hedges.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rexground.errors import FindingTextError
from rexground.text import vocab
from rexground.text.location import read_location
from rexground.text.query import FindingQuery
from rexground.text.texture import read_texture

# Reports are short; a "finding" far longer than this is a pasted report, read only to this many characters
# so a pathological input cannot make the regular expressions slow.
MAX_CHARS = 4000

_CONFIDENCE = {4: 0.95, 3: 0.9, 2: 0.6, 1: 0.35}
_PREPOSITION = re.compile(
    r"^(?:in|of|at|on|with|along|throughout|within|involving|measuring|including|from|to|and|or|"
    r"are|is|were|was|seen|noted|present|observed|largest|more|predominantly|bilateral(?:ly)?)$"
)
_PLURAL = re.compile(r"^[a-z]*(?:ies|[^siu']s)$")


@dataclass(frozen=True)
class _Hit:
    start: int
    end: int
    category: str
    strength: int
    words: str


def _category_hits(text: str) -> list[_Hit]:
    hits = [
        _Hit(m.start(), m.end(), cat, strength, m.group(0))
        for any_term, terms in vocab.CATEGORY_TERM_GROUPS
        if any_term.search(text)
        for pattern, cat, strength in terms
        for m in pattern.finditer(text)
    ]
    # a match inside a longer one is part of that term ("centrilobular nodules" is not also "nodules")
    kept = []
    for h in hits:
        inside = any(
            o is not h and o.start <= h.start and h.end <= o.end and (o.end - o.start) > (h.end - h.start)
            for o in hits
        )
        if not inside:
            kept.append(h)
    # the same span found by two patterns of one category counts once
    unique = {(h.start, h.end, h.category): h for h in kept}
    return sorted(unique.values(), key=lambda h: (h.start, -h.strength))


_PHRASE_GAP = re.compile(r"\s*(?:[a-z]+\s+){0,2}")
# A preposition, verb or participle between two finding words starts a new phrase ("consolidations
# accompanying honeycomb appearance" is a consolidation); adjacent words are one phrase with its head last.
_PHRASE_BREAK = re.compile(
    r"\b(?:with|in|of|at|on|and|or|along|within|without|involving|including|from|to|and|but|than|as|"
    r"is|are|was|were|suggest\w*|consistent|compatible|likely|versus|vs|accompan\w*|associated|causing|"
    r"caused|surround\w*|around|adjacent|near|showing|containing|extending|together|due|secondary|after|"
    r"distal|proximal|leading|resulting|seen|observed|noted)\b"
)
# A size between two words of one phrase does not break it ("ground glass like 5 mm diameter nodule").
_SIZE_IN_GAP = re.compile(
    r"\d+(?:\.\d+)?(?:\s*x\s*\d+(?:\.\d+)?)*\s*(?:mm|cm)\b(?:\s+(?:in\s+)?(?:diameter|size|sized))?|\bdiameter\b"
)


def _decisive(text: str, hits: list[_Hit]) -> _Hit | None:
    """The strongest term; among equals the head of the first noun phrase that names one.

    Report findings open with their head phrase ("consolidation with ground glass halo": consolidation), and
    in English the head of a noun phrase is its last noun ("ground glass nodule": a nodule; "mass like
    consolidation": a consolidation), so adjacent terms with no preposition between them resolve to the last.
    """
    if not hits:
        return None
    top = max(h.strength for h in hits)
    best = [h for h in hits if h.strength == top]
    head = best[0]
    for nxt in best[1:]:
        gap = _SIZE_IN_GAP.sub(" ", text[head.end : nxt.start])
        if nxt.start >= head.end and _PHRASE_GAP.fullmatch(gap) and not _PHRASE_BREAK.search(gap):
            head = nxt
        else:
            break
    return head


def _is_negated(text: str, hit: _Hit) -> bool:
    """A negation cue earlier in the same clause as the decisive term."""
    before = text[: hit.start]
    breaks = list(vocab.CLAUSE_BREAK.finditer(before))
    clause = before[breaks[-1].end() :] if breaks else before
    cues = list(vocab.NEGATION.finditer(clause))
    if cues and not vocab.NEGATED_CHANGE.match(clause[cues[-1].end() :]):
        return True
    return vocab.NEGATION_AFTER.search(text[hit.end :]) is not None  # "consolidation has resolved"


def _is_plural(text: str, hit: _Hit) -> bool:
    """The decisive term or the noun right after it is plural ('nodules', 'ground glass opacities')."""
    words = hit.words.split()
    for w in text[hit.end :].split()[:2]:
        w = w.strip(",;.:()")
        if not w or _PREPOSITION.match(w):
            break
        words.append(w)
    return any(_PLURAL.match(w) for w in words)


def _multiplicity(text: str, decisive: _Hit | None, category: str, places: int) -> str:
    """Count words first: anywhere for diffuse ones ('innumerable', 'throughout'); before the finding noun for
    the others ('a few nodules', 'one calcified nodule'; not 'nodules with a diameter of 3 mm'); after it only
    a count ('nodules (two)') or 'largest'. Else diffuse for a non-focal category; else the grammatical number
    of the finding noun, or several places named ('in both lungs')."""
    if vocab.DIFFUSE_CUES.search(text):
        return "diffuse"
    head_end = decisive.end if decisive is not None else len(text)
    patterns = ((vocab.FEW_CUES, "few"), (vocab.MULTIPLE_CUES, "multiple"), (vocab.SINGLE_CUES, "single"))
    for part, allowed in (
        (text[:head_end], ("few", "multiple", "single")),
        (text[head_end:], ("few", "multiple")),
    ):
        cues = []
        for pattern, label in patterns:
            m = pattern.search(part)
            if m and label in allowed:
                cues.append((m.start(), label))
        if cues:
            return min(cues)[1]
    plural = decisive is not None and _is_plural(text, decisive)
    if category.startswith("1"):
        return "single" if vocab.FOCAL_CUE.search(text) and not plural else "diffuse"
    if plural or places > 1:
        return "multiple"
    return "single"


def _size(text: str) -> tuple[float | None, bool]:
    """Largest stated dimension in mm, and whether it is only an upper bound ('< 5 mm', 'subcentimeter')."""
    best: float | None = None
    bound = False
    spans: list[tuple[int, int]] = []
    for pattern in (vocab.SIZE_RANGE, vocab.SIZE_DIMS):
        for m in pattern.finditer(text):
            if any(a <= m.start() < b for a, b in spans):
                continue
            spans.append((m.start(), m.end()))
            unit = m.groups()[-1]
            scale = 10.0 if unit.startswith("c") else 1.0
            values = [float(g) * scale for g in m.groups()[:-1] if g is not None]
            value = max(values)
            if not 0.0 < value <= 600.0:
                continue
            is_bound = vocab.UPPER_BOUND_CUE.search(text[max(0, m.start() - 20) : m.start()]) is not None
            if best is None or value > best:
                best, bound = value, is_bound
    if best is None and vocab.SUBCENTIMETER.search(text):
        word = vocab.SUBCENTIMETER.search(text).group(0)
        return (5.0 if "millimet" in word else 10.0), True
    return best, bound


def _places(loc) -> int:
    """How many separate places the sentence names: both sides, or several lobes, count as more than one."""
    if loc.side == "bilateral":
        return 2
    if loc.side == "unspecified":
        return 1  # lobes without a side are candidates for one place ("the lower lobe"), not several places
    return max(len(loc.lobes), len(loc.segments), 1)


def parse_finding(text: object) -> FindingQuery:
    """Parse one finding sentence. Raises ``FindingTextError`` for a non-string or blank text."""
    if not isinstance(text, str):
        raise FindingTextError(f"a finding must be a string, got {type(text).__name__}: {text!r:.80}")
    if not text.strip():
        raise FindingTextError("a finding is empty or only whitespace")
    norm = vocab.normalise(text[:MAX_CHARS])

    hits = _category_hits(norm)
    decisive = _decisive(norm, hits)
    if decisive is None:
        category, confidence, evidence = "unknown", 0.0, ()
    else:
        category = decisive.category
        confidence = _CONFIDENCE[decisive.strength]
        rivals = {h.category for h in hits if h.strength == decisive.strength and h.category != category}
        if rivals:
            confidence -= 0.15  # another category was named as strongly ("atelectasis with ground glass")
        evidence = tuple(dict.fromkeys(h.words for h in hits if h.category == category))

    loc = read_location(norm)
    size_mm, size_bound = _size(norm)
    return FindingQuery(
        text=text,
        category=category,
        category_confidence=round(confidence, 3),
        category_evidence=evidence,
        side=loc.side,
        lobes=loc.lobes,
        segments=loc.segments,
        zones=loc.zones,
        size_mm=size_mm,
        size_is_upper_bound=size_bound,
        multiplicity=_multiplicity(norm, decisive, category, _places(loc)),
        texture=read_texture(norm),
        negated=decisive is not None and _is_negated(norm, decisive),
        uncertain=vocab.UNCERTAINTY.search(norm) is not None,
    )
