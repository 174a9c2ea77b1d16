"""Zero-shot rules, one module per family of finding categories, and the table that picks one.

Each rule is ``predict(ctx: RuleContext) -> RuleOutput``: it reads the scan's shared ``Features`` (the
anatomy's working grid, cached smoothings, Hessians, distances) and the parsed sentence, and returns a
score map in [0, 1] on the working grid (and optionally a mask refined at the CT's own resolution) plus
the region to fall back to when nothing is found.
"""

from __future__ import annotations

from collections.abc import Callable

from rexground.engines.rules import (
    airway,
    consolidation,
    emphysema,
    ground_glass,
    interstitial,
    linear,
    micronodules,
    nodules,
    other,
    pleural,
)
from rexground.engines.rules.common import Features, RuleContext, RuleOutput

Rule = Callable[[RuleContext], RuleOutput]

RULES: dict[str, Rule] = {
    "1a": airway.predict,
    "1b": airway.predict,
    "1c": emphysema.predict,
    "1d": interstitial.predict,
    "1e": micronodules.predict,
    "1f": other.predict,
    "2a": linear.predict,
    "2b": consolidation.predict,
    "2c": ground_glass.predict,
    "2d": nodules.predict,
    "2e": pleural.predict,
    "2f": interstitial.predict,
    "2g": pleural.predict_pneumothorax,
    "2h": other.predict,
}


def rule_for(category: str) -> Rule:
    """The rule of a category code; unknown categories use the region-prior rule."""
    return RULES.get(category, other.predict)


__all__ = ["RULES", "Features", "Rule", "RuleContext", "RuleOutput", "rule_for"]
