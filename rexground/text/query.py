"""The structured form of a finding sentence: what the parser produces and both engines consume."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# Re-exported for code written before rexground.categories existed; the package imports them from there.
from rexground.categories import CATEGORY_CODES, CATEGORY_NAMES, FOCAL_CATEGORIES  # noqa: F401

Side = Literal["left", "right", "bilateral", "unspecified"]
Lobe = Literal["RUL", "RML", "RLL", "LUL", "lingula", "LLL"]
Zone = Literal[
    "apical", "upper", "mid", "lower", "basal",
    "subpleural", "peripheral", "central", "perihilar",
    "anterior", "posterior", "dependent", "fissural", "pleural",
]  # fmt: skip
Multiplicity = Literal["single", "few", "multiple", "diffuse"]
# The lesion's density as the sentence states it ("ground-glass nodule", "part-solid", "calcified granuloma");
# None when it states none. Rules use it to pick the density a lesion is looked for at.
Texture = Literal["solid", "part-solid", "ground-glass", "calcified"]


class FindingQuery(BaseModel):
    """A finding sentence read into the facts that decide which voxels count."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    text: str
    category: str = Field(description="one of CATEGORY_CODES, or 'unknown' when nothing decided it")
    category_confidence: float = Field(ge=0.0, le=1.0)
    category_evidence: tuple[str, ...] = ()  # the words that decided the category
    side: Side = "unspecified"
    lobes: tuple[Lobe, ...] = ()
    segments: tuple[str, ...] = ()  # e.g. "RLL posterior basal", "LUL apicoposterior"
    zones: tuple[Zone, ...] = ()
    size_mm: float | None = None  # largest stated dimension
    size_is_upper_bound: bool = False  # "subcentimeter", "< 5 mm"
    multiplicity: Multiplicity = "single"
    texture: Texture | None = None
    negated: bool = False
    uncertain: bool = False

    @property
    def is_focal(self) -> bool:
        return self.category in FOCAL_CATEGORIES

    @property
    def known(self) -> bool:
        return self.category != "unknown"
