"""The density a sentence gives its lesion: solid, part-solid, ground-glass or calcified (``FindingQuery.texture``).

Radiologists name a nodule's attenuation because it changes what the lesion looks like: a solid nodule is
soft tissue (about 0 to 60 HU), a ground-glass one only raises the lung's density (about -800 to -500 HU)
with vessels visible through it, a part-solid one is both, a calcified one is brighter than bone marrow.
The words, on text already passed through ``vocab.normalise`` (lower case, hyphens as spaces, "non-" joined):

* calcified: "calcified", "calcific", "calcification", "calcium", unless negated ("without calcification",
  "no calcification", "not calcified"; "noncalcified" is one word after normalisation and does not match);
* part-solid: "part solid", "partly/partially solid", "semi solid", "subsolid" (a subsolid nodule is
  ground-glass or part-solid; part-solid covers both densities), "mixed density/attenuation", or a sentence
  naming both solid and ground-glass parts ("ground glass nodule with a solid component");
* ground-glass: "ground glass" (also from "GGO"/"GGN"), "nonsolid", "hazy";
* solid: "solid", "soft tissue density/attenuation".

Priority when several match: calcified, part-solid, ground-glass, solid. None when no word matches.
"""

from __future__ import annotations

import re

_NEGATED_CALCIFICATION = re.compile(r"\b(?:without|no|not|nor|absent)\s+(?:\w+\s+){0,2}?calcif\w*")
_CALCIFIED = re.compile(r"\bcalcif\w*|\bcalcium\b")
_PART_SOLID = re.compile(
    r"\bpart(?:ly|ially)?\s+solid\b|\bsemi\s*solid\b|\bsubsolid\b|\bmixed\s+(?:density|attenuation)\b"
)
_GROUND_GLASS = re.compile(r"\bground glass\b|\bnonsolid\b|\bhazy\b")
_SOLID = re.compile(r"\bsolid\b|\bsoft tissue (?:density|attenuation)\b")


def read_texture(norm: str) -> str | None:
    """The texture named in a normalised sentence (see the module docstring), or None."""
    if _CALCIFIED.search(_NEGATED_CALCIFICATION.sub(" ", norm)):
        return "calcified"
    if _PART_SOLID.search(norm):
        return "part-solid"
    ground_glass = _GROUND_GLASS.search(norm) is not None
    solid = _SOLID.search(norm) is not None
    if ground_glass and solid:
        return "part-solid"
    if ground_glass:
        return "ground-glass"
    if solid:
        return "solid"
    return None
