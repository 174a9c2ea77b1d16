"""The zero-shot grounding engine: anatomy + the parsed sentence + one density/shape rule per category.

No weights. For one CT it computes the anatomy once (lungs, sides, lobes, zones, envelopes) and the shared
features (smoothings, Hessians, distances, cached), then for each finding: parse the sentence, resolve the
place it names into a working-grid region, run its category's rule (``rexground.engines.rules``), map the
result to the CT grid and postprocess it (threshold, official component filter, never empty). It is the
container's default engine until a trained model package is mounted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

import numpy as np

from rexground.engines.base import FindingPrediction, as_queries
from rexground.engines.rules import Features, RuleContext, RuleOutput, rule_for
from rexground.postprocess import postprocess
from rexground.text.query import FindingQuery

log = logging.getLogger(__name__)


# Bronchopulmonary segments as zones of their lobe (the anatomy models lobes, not segments): the part of
# the lobe a segment occupies, by the zone that contains most of it. Segments without such a zone
# (lateral, medial, superior, inferior, lingular) leave the whole lobe.
_SEGMENT_ZONES: dict[str, tuple[str, ...]] = {
    "apical": ("apical",),
    "apicoposterior": ("apical", "posterior"),
    "anterior": ("anterior",),
    "posterior": ("posterior",),
    "anterior basal": ("basal", "anterior"),
    "anteromedial basal": ("basal", "anterior"),
    "posterior basal": ("basal", "posterior"),
    "posterobasal": ("basal", "posterior"),
    "lateral basal": ("basal",),
    "medial basal": ("basal",),
}


def segment_zones(segments: tuple[str, ...]) -> tuple[str, ...]:
    """Zones implied by the named segments ("RLL posterior basal" -> basal, posterior), when all named
    segments agree on them (two segments in different parts of a lobe imply no zone)."""
    found: list[tuple[str, ...]] = []
    for seg in segments:
        words = seg.split(" ", 1)
        name = words[1].lower() if len(words) == 2 else seg.lower()
        if name not in _SEGMENT_ZONES:
            return ()
        found.append(_SEGMENT_ZONES[name])
    if not found or any(z != found[0] for z in found):
        return ()
    return found[0]


def named_region(anat, query: FindingQuery) -> tuple[np.ndarray, bool, list[str]]:
    """The working-grid region the sentence names, its being named at all, and what had to be dropped.

    The anatomy answers side + lobes + zones (the sentence's zones and those its segments imply); if that
    is empty (a zone the anatomy does not model, a lobe that is absent), the segment zones, the zones,
    then the lobes are dropped, so the answer is the most specific place that exists, down to the lungs
    of the named side."""
    side = query.side if query.side in ("left", "right", "bilateral") else "unspecified"
    named = side in ("left", "right") or bool(query.lobes) or bool(query.zones)
    dropped: list[str] = []
    zones = tuple(dict.fromkeys((*query.zones, *segment_zones(tuple(query.segments)))))
    attempts = [
        (side, tuple(query.lobes), zones),
        (side, tuple(query.lobes), tuple(query.zones)),
        (side, tuple(query.lobes), ()),
        (side, (), ()),
        ("unspecified", (), ()),
    ]
    for i, (s, lobes, zones) in enumerate(attempts):
        if i > 0 and attempts[i] == attempts[i - 1]:
            continue
        try:
            region = anat.region(side=s, lobes=lobes, zones=zones)
        except (KeyError, ValueError) as exc:  # a zone or lobe name the anatomy does not model
            dropped.append(f"{s}/{lobes}/{zones}: {exc}")
            continue
        region = np.asarray(region, bool)
        if region.any():
            return region, named, dropped
        dropped.append(f"{s}/{lobes}/{zones}: empty")
    return np.asarray(anat.lungs, bool), named, dropped


class ZeroShotEngine:
    """``predict(ct, findings)``: one mask per finding, anatomy computed once per CT.

    Every rule makes a score map in [0, 1]; with ``keep_score=True`` it is returned on the CT grid
    (``FindingPrediction.score``, float32: as large as twice the int16 CT per finding, so off by default
    in the container). ``anatomy_fn`` and ``parse_fn`` replace the anatomy and the parser (tests)."""

    name = "rules"

    def __init__(
        self,
        *,
        keep_score: bool = False,
        anatomy_fn: Callable | None = None,
        parse_fn: Callable[[str], FindingQuery] | None = None,
    ):
        self.keep_score = keep_score
        self._anatomy_fn = anatomy_fn
        self._parse_fn = parse_fn

    def _anatomy(self, ct):
        if self._anatomy_fn is None:
            from rexground.anatomy import compute_anatomy

            self._anatomy_fn = compute_anatomy
        return self._anatomy_fn(ct)

    def _parse(self, text: str) -> FindingQuery:
        if self._parse_fn is None:
            from rexground.text.parser import parse_finding

            self._parse_fn = parse_finding
        return self._parse_fn(text)

    def predict(self, ct, findings: Sequence[FindingQuery | str]) -> list[FindingPrediction]:
        queries = as_queries(findings, self._parse)  # sentences are parsed before the costly anatomy
        t0 = time.perf_counter()
        anat = self._anatomy(ct)
        t_anat = time.perf_counter() - t0
        features = Features(anat, ct.hu, ct.spacing_zyx)
        return [self._predict_one(anat, features, q, t_anat) for q in queries]

    def _predict_one(self, anat, features: Features, query: FindingQuery, t_anat: float) -> FindingPrediction:
        t0 = time.perf_counter()
        cpu0 = time.process_time()
        info: dict = {"engine": self.name, "anatomy_s": round(t_anat, 3)}
        try:
            region, named, dropped = named_region(anat, query)
        except Exception as exc:  # an anatomy failure on one place must not cost the answer: use the lungs
            log.exception("named region of %r failed; using the lungs", query.text)
            info["region_error"] = f"{type(exc).__name__}: {exc}"
            region, named, dropped = np.asarray(anat.lungs, bool), False, []
        ctx = RuleContext(query=query, features=features, region=region, region_is_named=named)
        if dropped:
            info["region_dropped"] = dropped
        try:
            out = rule_for(query.category)(ctx)
        except Exception as exc:  # one broken rule must not cost the other findings their answers
            log.exception("rule for %r failed; answering with the named region", query.text)
            info["rule_error"] = f"{type(exc).__name__}: {exc}"
            out = RuleOutput(score=np.zeros(features.shape, np.float32), fallback=region)
        info.update(out.notes)
        raw = out.mask_ct if out.mask_ct is not None else anat.to_ct_grid(out.score >= out.threshold)
        fallback_ct = anat.to_ct_grid(np.asarray(out.fallback, bool))
        pp: dict = {}
        mask = postprocess(raw, fallback_region=fallback_ct, info=pp)
        info["fallback"] = pp["fallback"]
        info["rule_s"] = round(time.perf_counter() - t0, 3)
        info["rule_cpu_s"] = round(time.process_time() - cpu0, 3)  # comparable on a shared machine
        score = None
        if self.keep_score:
            score = anat.to_ct_grid(out.score.astype(np.float32))
            if out.mask_ct is not None:
                score = np.where(mask > 0, np.maximum(score, 1.0), np.minimum(score, 0.49)).astype(np.float32)
        return FindingPrediction(text=query.text, mask=mask, score=score, info=info)
