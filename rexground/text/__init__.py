"""Finding-text understanding: the structured query and the sentence encoder."""

from rexground.categories import CATEGORY_CODES, CATEGORY_NAMES, FOCAL_CATEGORIES
from rexground.text.encoder import SentenceEncoder
from rexground.text.features import QUERY_FEATURE_DIM, query_features
from rexground.text.parser import parse_finding
from rexground.text.query import FindingQuery

__all__ = [
    "CATEGORY_CODES",
    "CATEGORY_NAMES",
    "FOCAL_CATEGORIES",
    "QUERY_FEATURE_DIM",
    "FindingQuery",
    "SentenceEncoder",
    "parse_finding",
    "query_features",
]
