"""Finding-text understanding: the structured query and the sentence encoder."""

from rexground.text.parser import parse_finding
from rexground.text.query import CATEGORY_CODES, CATEGORY_NAMES, FOCAL_CATEGORIES, FindingQuery

__all__ = ["CATEGORY_CODES", "CATEGORY_NAMES", "FOCAL_CATEGORIES", "FindingQuery", "parse_finding"]
