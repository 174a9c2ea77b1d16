"""Where a finding is: lobes, bronchopulmonary segments, side and zones read from normalised report text.

Report language names places in a few shapes, all handled by one grammar:
- a lobe group with a side before it: "right middle and lower lobes", "both lower lobes", "bilateral upper lobes";
- a lobe group with the side after it: "upper and lower lobes of both lungs", "lower lobe of the left lung";
- a lobe without a side: "the middle lobe" (always right), "the lower lobes" (side from the sentence);
- the lingula ("lingula", "lingular", "inferior lingula");
- segment lists attached to a lobe, before or after it: "anterior, lateral, and posterobasal segments of the
  right lower lobe", "left lower lobe mediobasal and laterobasal segments", "at the posterobasal level of the
  left lung" (a basal descriptor implies the lower lobe).
Segment names are normalised per lobe (in a lower lobe "lateral" is "lateral basal"; in the left upper lobe
"apical" is "apicoposterior"); a descriptor that does not exist in the lobe is dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

LOBE_ORDER = ("RUL", "RML", "RLL", "LUL", "lingula", "LLL")
SEGMENT_ORDER = (
    "RUL apical", "RUL posterior", "RUL anterior",
    "RML lateral", "RML medial",
    "RLL superior", "RLL medial basal", "RLL anterior basal", "RLL lateral basal", "RLL posterior basal",
    "LUL apicoposterior", "LUL anterior", "LUL superior lingular", "LUL inferior lingular",
    "LLL superior", "LLL anteromedial basal", "LLL lateral basal", "LLL posterior basal",
)  # fmt: skip
ZONE_ORDER = (
    "apical", "upper", "mid", "lower", "basal",
    "subpleural", "peripheral", "central", "perihilar",
    "anterior", "posterior", "dependent", "fissural", "pleural",
)  # fmt: skip

_LOBE_OF = {("right", "upper"): "RUL", ("right", "middle"): "RML", ("right", "lower"): "RLL",
            ("left", "upper"): "LUL", ("left", "lower"): "LLL"}  # fmt: skip
LOBE_SIDE = {"RUL": "right", "RML": "right", "RLL": "right", "LUL": "left", "lingula": "left", "LLL": "left"}

# --- lobe mentions -------------------------------------------------------------------------------------------
_SIDE = r"(?:right|left|both|bilateral|the two)"
_LEVEL = r"(?:upper|middle|lower|mid|superior|inferior)"
_JOIN = r"(?:\s*,\s*and\s+|\s*,\s*|\s+and\s+|\s+or\s+|\s+as well as\s+|\s*&\s*)"
_LEVEL_ITEM = rf"(?:{_SIDE}\s+)?{_LEVEL}"
_LOBE_GROUP = re.compile(
    rf"\b(?P<pre>{_SIDE}\s+)?(?P<levels>{_LEVEL}(?:{_JOIN}{_LEVEL_ITEM})*)\s+(?P<noun>lobes?)\b"
    rf"(?:\s+of\s+(?:the\s+)?(?P<post>right|left|both|two|bilateral)\s+(?:lungs?|sides?|hemithora\w+))?"
)
_LINGULA = re.compile(
    r"\b(?:(?P<seg1>superior|inferior|upper|lower)\s+)?(?P<word>lingula|lingular)\b"
    r"(?:\s+(?P<seg2>superior|inferior)\b)?"
)

# --- segment mentions ----------------------------------------------------------------------------------------
_DESC = (
    r"(?:apicoposterior|apico posterior|anteromedial basal|antero medial basal|anteromedial|"
    r"anterior basal|anterobasal|antero basal|medial basal|mediobasal|medio basal|"
    r"lateral basal|laterobasal|latero basal|posterior basal|posterobasal|postero basal|"
    r"superior lingular|inferior lingular|lingular superior|lingular inferior|"
    r"apical|anterior|posterior|lateral|medial|superior|inferior|basal)"
)
_SEGMENT_LIST = re.compile(
    rf"\b(?P<list>{_DESC}(?:{_JOIN}{_DESC})*)\s+(?:lingular\s+)?(?P<noun>segments?|subsegments?|levels?)\b"
)
_ATTACH_AFTER = re.compile(r"^\s*(?:of|in|within)\s+(?:the\s+)?$")
_ATTACH_BEFORE = re.compile(r"^\s*(?:,\s*)?$")

_SIDE_WORDS = (
    (re.compile(r"\b(?:both|bilateral(?:ly)?|the two)\s+(?:lungs?|sides?|hemithora\w+|apices|bases|lung)|"
                r"\bbilateral(?:ly)?\b|\bbilat\b|\bbiapical\b|\bbibasal\b|\bboth\s+(?:upper|lower|middle|apical|basal|basilar|perihilar|hilar|lung)\b|"
                r"\b(?:the|lung) (?:bases|apices)\b"),
     "bilateral"),
    (re.compile(r"\bright\b|\bminor fissure\b|\bhorizontal fissure\b"), "right"),
    (re.compile(r"\bleft\b"), "left"),
)  # fmt: skip

_ZONE_PATTERNS: tuple[tuple[str, str], ...] = (
    ("apical", r"\b(?:apex|apices|apical|apically|biapical|apicoposterior|apico posterior)\b"),
    ("upper", r"\bupper (?:lung )?(?:zones?|fields?|lungs?|thirds?|thorax|parts?)\b|\bupper lung\b"),
    ("mid", r"\bmid ?(?:lung|zone)s?\b|\bmiddle (?:lung )?(?:zones?|fields?|thirds?)\b|\bmidlung\b"),
    ("lower", r"\blower (?:lung )?(?:zones?|fields?|lungs?|thirds?|parts?)\b|\blower lung\b"),
    ("basal", r"\b(?:bases?|basal|bibasal|posterobasal|anterobasal|laterobasal|mediobasal|"
              r"juxtadiaphragmatic|diaphragmatic|supradiaphragmatic|costophrenic)\b"),
    ("subpleural", r"\b(?:subpleural|juxtapleural|pleural based|pleura based|pleuroparenchymal|"
                   r"pleural surface|paripleural)\b"),
    ("peripheral", r"\b(?:peripheral|peripherally|periphery|cortical|outer third)\b"),
    ("central", r"\b(?:central|centrally|inner third)\b"),
    ("perihilar", r"\b(?:perihilar|parahilar|hilar|hila|hilum)\b"),
    ("anterior", r"\b(?:anterior|anteriorly|ventral)\b"),
    ("posterior", r"\b(?:posterior|posteriorly|dorsal|paravertebral|paraspinal|costovertebral)\b"),
    ("dependent", r"\b(?:dependent|gravity dependent)\b"),
    ("fissural", r"\b(?:fissures?|fissural|perifissural|interfissural|fissure based)\b"),
    ("pleural", r"\b(?:pleura|pleural|pleurae)\b(?! based)"),
)  # fmt: skip
_ZONE_RE = tuple((zone, re.compile(p)) for zone, p in _ZONE_PATTERNS)


@dataclass
class LobeMention:
    start: int
    end: int
    lobes: list[str]  # resolved lobes
    sided: bool  # whether the text itself fixed the side (else it came from context or is ambiguous)
    lingula_parent: bool = False  # a "left upper lobe" that only names the lingula's parent


@dataclass
class Location:
    lobes: tuple[str, ...] = ()
    segments: tuple[str, ...] = ()
    zones: tuple[str, ...] = ()
    side: str = "unspecified"
    sided_lobes: set[str] = field(default_factory=set)


def _levels(group: str, first_side: str | None) -> list[tuple[str | None, str]]:
    """'right middle and left lower' -> [('right','middle'), ('left','lower')]; a side carries forward."""
    items = re.split(_JOIN, group)
    out: list[tuple[str | None, str]] = []
    side = first_side
    for item in items:
        words = item.split()
        if len(words) >= 2 and words[0] in ("right", "left", "both", "bilateral"):
            side = words[0]
        elif len(words) >= 3 and words[0] == "the" and words[1] == "two":
            side = "both"
        level = {"mid": "middle", "superior": "upper", "inferior": "lower"}.get(words[-1], words[-1])
        out.append((side, level))
    return out


def _lobes_for(side: str | None, level: str) -> list[str]:
    if level == "middle":
        return ["RML"]
    if side in ("right", "left"):
        return [_LOBE_OF[(side, level)]]
    return [_LOBE_OF[("right", level)], _LOBE_OF[("left", level)]]


def _sentence_side_words(text: str) -> set[str]:
    found = set()
    for pattern, side in _SIDE_WORDS:
        if pattern.search(text):
            found.add(side)
    return found


def _find_lobe_mentions(text: str, context_sides: set[str]) -> list[LobeMention]:
    mentions: list[LobeMention] = []
    for m in _LOBE_GROUP.finditer(text):
        pre = (m.group("pre") or "").strip() or None
        post = m.group("post")
        if pre == "the two":
            pre = "both"
        side = pre or ({"two": "both"}.get(post, post) if post else None)
        levels = _levels(m.group("levels"), side)
        lobes: list[str] = []
        sided = True  # every item's side known (a mention counts towards the sentence's side only then)
        for item_side, level in levels:
            if item_side is None and level != "middle":
                # no side in the phrase: the nearest earlier sided mention, else the sentence's one side,
                # else a plural "lobes" means both sides, else ambiguous (both candidates, side unknown)
                earlier = [mm for mm in mentions if mm.sided and mm.lobes]
                one_side = context_sides - {"bilateral"}
                if earlier and m.group("noun") == "lobe":
                    item_side = LOBE_SIDE[earlier[-1].lobes[-1]]
                elif "bilateral" in context_sides or len(one_side) == 2:
                    item_side = "both"
                elif len(one_side) == 1:
                    item_side = next(iter(one_side))
                elif m.group("noun") == "lobes" and len(levels) == 1:
                    item_side = "both"  # "the lower lobes": one level, plural, so both sides
                else:
                    sided = False
            lobes.extend(_lobes_for(item_side, level))
        mentions.append(LobeMention(m.start(), m.end(), lobes, sided))
    return mentions


_SEG_CANON: dict[str, dict[str, tuple[str, ...]]] = {
    "upper_right": {"apical": ("apical",), "posterior": ("posterior",), "anterior": ("anterior",),
                    "apicoposterior": ("apical", "posterior")},
    "middle": {"lateral": ("lateral",), "medial": ("medial",)},
    "lower_right": {"superior": ("superior",), "apical": ("superior",), "medial": ("medial basal",),
                    "anterior": ("anterior basal",), "lateral": ("lateral basal",),
                    "posterior": ("posterior basal",), "anteromedial": ("medial basal", "anterior basal")},
    "upper_left": {"apicoposterior": ("apicoposterior",), "apical": ("apicoposterior",),
                   "posterior": ("apicoposterior",), "anterior": ("anterior",),
                   "superior lingular": ("superior lingular",), "inferior lingular": ("inferior lingular",)},
    "lingula": {"superior": ("superior lingular",), "inferior": ("inferior lingular",),
                "superior lingular": ("superior lingular",), "inferior lingular": ("inferior lingular",)},
    "lower_left": {"superior": ("superior",), "apical": ("superior",), "medial": ("anteromedial basal",),
                   "anterior": ("anteromedial basal",), "anteromedial": ("anteromedial basal",),
                   "lateral": ("lateral basal",), "posterior": ("posterior basal",)},
}  # fmt: skip
_LOBE_TABLE = {"RUL": "upper_right", "RML": "middle", "RLL": "lower_right", "LUL": "upper_left",
               "lingula": "lingula", "LLL": "lower_left"}  # fmt: skip


def _canonical_descriptor(desc: str) -> str:
    """'posterobasal' / 'postero basal' / 'posterior basal' -> 'posterior basal'; 'lingular inferior' ->
    'inferior lingular'. A bare 'lateral' stays bare: its lobe decides whether it means 'lateral basal'."""
    d = desc.replace(" ", "")
    if "lingular" in d:
        return d.replace("lingular", "") + " lingular"
    if d.startswith("apicoposterior"):
        return "apicoposterior"
    basal = d.endswith("basal") and d != "basal"
    d = d.removesuffix("basal") if basal else d
    for prefix, word in (("anteromedial", "anteromedial"), ("antero", "anterior"), ("medio", "medial"),
                         ("latero", "lateral"), ("postero", "posterior")):  # fmt: skip
        if d.startswith(prefix):
            d = word
            break
    return f"{d} basal" if basal else d


def _segments_in(lobe: str, descriptors: list[str]) -> list[str]:
    table = _SEG_CANON[_LOBE_TABLE[lobe]]
    parent = "LUL" if lobe == "lingula" else lobe
    lower = lobe in ("RLL", "LLL")
    out = []
    for d in descriptors:
        key = d.removesuffix(" basal") if lower else d  # "lateral basal" only exists in a lower lobe
        for name in table.get(key, ()):
            out.append(f"{parent} {name}")
    return out


# Numbered bronchopulmonary segments (S1-S10, Boyden): number -> segment per side.
_NUMBERED = {
    "right": {1: "RUL apical", 2: "RUL posterior", 3: "RUL anterior", 4: "RML lateral", 5: "RML medial",
              6: "RLL superior", 7: "RLL medial basal", 8: "RLL anterior basal", 9: "RLL lateral basal",
              10: "RLL posterior basal"},
    "left": {1: "LUL apicoposterior", 2: "LUL apicoposterior", 3: "LUL anterior", 4: "LUL superior lingular",
             5: "LUL inferior lingular", 6: "LLL superior", 7: "LLL anteromedial basal",
             8: "LLL anteromedial basal", 9: "LLL lateral basal", 10: "LLL posterior basal"},
}  # fmt: skip
_NUM_ITEM = r"(?:s\s?)?(?:10|[1-9])(?:\s?\+\s?(?:10|[1-9]))?"
_NUMBERED_SEGMENTS = re.compile(
    rf"\b(?:segments?\s+(?P<a>{_NUM_ITEM}(?:{_JOIN}{_NUM_ITEM})*)|(?P<b>s(?:10|[1-9])(?:\s?\+\s?(?:10|[1-9]))?))\b"
    r"(?!\s*(?:mm|cm|\.\d))"
)


def _numbered_segments(text: str, mentions: list[LobeMention], context_sides: set[str]) -> list[str]:
    """'segments 6 and 10 of the right lower lobe', 'S1+2 of the left upper lobe', 'left S6'."""
    out: list[str] = []
    for m in _NUMBERED_SEGMENTS.finditer(text):
        numbers = [int(n) for n in re.findall(r"10|[1-9]", m.group("a") or m.group("b"))]
        sides: set[str] = set()
        after = [lm for lm in mentions if lm.start >= m.end()]
        before = [lm for lm in mentions if lm.end <= m.start()]
        if after and _ATTACH_AFTER.match(text[m.end() : after[0].start]):
            sides = {LOBE_SIDE[lobe] for lobe in after[0].lobes}
        elif before and _ATTACH_BEFORE.match(text[before[-1].end : m.start()]):
            sides = {LOBE_SIDE[lobe] for lobe in before[-1].lobes}
        else:
            side_word = re.search(r"\b(right|left)\s*$", text[max(0, m.start() - 8) : m.start()])
            sides = (
                {side_word.group(1)} if side_word else (context_sides - {"bilateral"}) or {"right", "left"}
            )
        for side in sorted(sides):
            out.extend(_NUMBERED[side][n] for n in numbers if n in _NUMBERED[side])
    return out


def _implied_lobe_level(descriptors: list[str], raw: str) -> str | None:
    """A segment list without a lobe: basal names imply the lower lobe, apical names the upper lobe."""
    if "basal" in raw:
        return "lower"
    if any(d in ("apical", "apicoposterior") for d in descriptors):
        return "upper"
    return None


def read_location(text: str) -> Location:
    """Lobes, segments, side and zones of one normalised sentence."""
    context_sides = _sentence_side_words(text)
    mentions = _find_lobe_mentions(text, context_sides)
    lobes: set[str] = set()
    sided_lobes: set[str] = set()
    segments: set[str] = set()
    consumed: list[tuple[int, int]] = []  # spans that are segment names, masked before zone words

    # lingula: a mention of its own; a "left upper lobe" right next to it is only its parent
    for m in _LINGULA.finditer(text):
        lobes.add("lingula")
        sided_lobes.add("lingula")
        seg = m.group("seg1") or m.group("seg2")
        if seg in ("superior", "upper"):
            segments.add("LUL superior lingular")
        elif seg in ("inferior", "lower"):
            segments.add("LUL inferior lingular")
        consumed.append((m.start(), m.end()))
        for lm in mentions:
            if lm.lobes == ["LUL"]:
                gap_after = text[m.end() : lm.start]
                gap_before = text[lm.end : m.start()]
                if (
                    lm.start >= m.end()
                    and re.fullmatch(
                        r"\s*(?:segments?\s+)?(?:of|in)\s+(?:the\s+)?(?:left\s+lung\s+)?", gap_after
                    )
                ) or (lm.end <= m.start() and re.fullmatch(r"\s*(?:(?:superior|inferior)\s+)?", gap_before)):
                    lm.lingula_parent = True

    seg_matches = []  # (match, descriptors, attached lobe mention or None)
    for sm in _SEGMENT_LIST.finditer(text):
        descs = [_canonical_descriptor(d.strip()) for d in re.split(_JOIN, sm.group("list")) if d.strip()]
        if "lingular" in text[sm.start() : sm.end()]:
            continue  # "inferior lingular segment": already read as the lingula
        if re.match(r"\s*(?:of|in)\s+(?:the\s+)?lingula\b", text[sm.end() :]):
            segments.update(_segments_in("lingula", descs))  # "inferior segment of the lingula"
            consumed.append((sm.start(), sm.end()))
            continue
        target: LobeMention | None = None
        after = [lm for lm in mentions if lm.start >= sm.end()]
        if after and _ATTACH_AFTER.match(text[sm.end() : after[0].start]):
            target = after[0]
        seg_matches.append([sm, descs, target])
    # "the superior segment and posterobasal segment of the right lower lobe": a list joined to the next one
    # shares its lobe; otherwise a list right after a lobe belongs to it
    for i in range(len(seg_matches) - 1, -1, -1):
        sm, descs, target = seg_matches[i]
        if target is None and i + 1 < len(seg_matches):
            nxt = seg_matches[i + 1]
            if nxt[2] is not None and re.fullmatch(
                r"\s*,?\s*(?:and|or|,)?\s*(?:the\s+)?", text[sm.end() : nxt[0].start()]
            ):
                seg_matches[i][2] = nxt[2]
    for entry in seg_matches:
        sm, descs, target = entry
        if target is None:
            before = [lm for lm in mentions if lm.end <= sm.start()]
            if before:
                gap = text[before[-1].end : sm.start()]
                # "left lower lobe superior segment and medial, lateral, and posterior basal segments",
                # "both lower lobes, more prominent in the superior segments"
                if _ATTACH_BEFORE.match(gap) or (
                    len(gap) < 60 and not re.search(r"\blung|\blob|\bling", gap)
                ):
                    target = before[-1]
        consumed.append((sm.start(), sm.end()))
        if target is not None:
            for lobe in target.lobes:
                segments.update(_segments_in(lobe, descs))
            continue
        raw = sm.group("list")
        level = _implied_lobe_level(descs, raw)
        if level is None:
            continue
        # side from "of the left lung" right after, else the sentence's side words
        tail = re.match(r"\s*(?:of|in)\s+(?:the\s+)?(right|left|both)\s+lungs?", text[sm.end() :])
        sides = {tail.group(1)} if tail else (context_sides - {"bilateral"} or {"both"})
        if "bilateral" in context_sides or "both" in sides:
            sides = {"right", "left"}
        for side in sorted(sides):
            for lobe in _lobes_for(side, level):
                lobes.add(lobe)
                segments.update(_segments_in(lobe, descs))
                if tail or len(sides) == 1 or "bilateral" in context_sides:
                    sided_lobes.add(lobe)

    segments.update(_numbered_segments(text, mentions, context_sides))

    for lm in mentions:
        if lm.lingula_parent:
            continue
        lobes.update(lm.lobes)
        if lm.sided:
            sided_lobes.update(lm.lobes)
    for seg in segments:
        lobe = seg.split()[0]
        if "lingular" in seg:
            lobe = "lingula"
        lobes.add(lobe)

    # zones: segment names are masked so "anterior segment" is not an "anterior" zone
    masked = list(text)
    for a, b in consumed:
        for i in range(a, b):
            masked[i] = " "
    masked_text = "".join(masked)
    zones = {zone for zone, pattern in _ZONE_RE if pattern.search(masked_text)}
    if re.search(r"\b(?:posterobasal|anterobasal|laterobasal|mediobasal|basal)\b", text):
        zones.add("basal")
    if re.search(r"\bapical|apicoposterior\b", text):
        zones.add("apical")

    sides = set(context_sides)
    sides.update(LOBE_SIDE[lobe] for lobe in sided_lobes)
    if "bilateral" in sides or {"left", "right"} <= sides:
        side = "bilateral"
    elif "right" in sides:
        side = "right"
    elif "left" in sides:
        side = "left"
    else:
        side = "unspecified"
    return Location(
        lobes=tuple(x for x in LOBE_ORDER if x in lobes),
        segments=tuple(x for x in SEGMENT_ORDER if x in segments),
        zones=tuple(x for x in ZONE_ORDER if x in zones),
        side=side,
        sided_lobes=sided_lobes,
    )
