"""The challenge's finding categories: the 14 codes, their names, and which are focal or diffuse.

Ground level on purpose: the text parser, the metrics (per-category tables, distance kind), the dataset
reader and the phantom generator all need the list, and none of them should import another for it.
Codes 1a-1f are diffuse (non-focal) patterns, 2a-2h focal lesions; a finding the parser cannot place is
"unknown", which is not a code.
"""

from __future__ import annotations

CATEGORY_CODES: tuple[str, ...] = (
    "1a", "1b", "1c", "1d", "1e", "1f",
    "2a", "2b", "2c", "2d", "2e", "2f", "2g", "2h",
)  # fmt: skip
CATEGORY_NAMES: dict[str, str] = {
    "1a": "bronchial wall thickening",
    "1b": "bronchiectasis",
    "1c": "emphysema",
    "1d": "septal thickening",
    "1e": "micronodules",
    "1f": "other diffuse",
    "2a": "linear opacities",
    "2b": "atelectasis / consolidation",
    "2c": "ground-glass opacity",
    "2d": "nodule / mass",
    "2e": "pleural effusion / thickening",
    "2f": "honeycombing",
    "2g": "pneumothorax",
    "2h": "other focal",
}
FOCAL_CATEGORIES: frozenset[str] = frozenset(c for c in CATEGORY_CODES if c.startswith("2"))
DIFFUSE_CATEGORIES: frozenset[str] = frozenset(c for c in CATEGORY_CODES if c.startswith("1"))
