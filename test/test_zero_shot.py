"""Zero-shot rules and engine on a small hand-built chest, with an anatomy stand-in so each rule is tested
on its own (the real anatomy and parser are exercised by the slow real-CT tests and by the phantom test)."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pytest
from rule_phantoms import LobedAnatomyStandIn

from rexground.engines.rules import RULES, Features, RuleContext, rule_for
from rexground.engines.zero_shot import ZeroShotEngine, named_region, segment_zones
from rexground.geometry import Geometry
from rexground.io import CTVolume
from rexground.text.query import CATEGORY_CODES, FindingQuery

SPACING = (1.5, 1.5, 1.5)
SHAPE = (48, 72, 96)  # z, y (anterior->posterior), x (patient right->left)


def _ellipsoid(centre, radii, shape=SHAPE):
    g = np.ogrid[tuple(slice(0, s) for s in shape)]
    return sum(((gi - c) / r) ** 2 for gi, c, r in zip(g, centre, radii, strict=True)) <= 1.0


@dataclass
class Phantom:
    hu: np.ndarray
    lungs: dict
    targets: dict


def make_phantom(seed: int = 0) -> Phantom:
    rng = np.random.default_rng(seed)
    hu = np.full(SHAPE, -1000.0, np.float32)
    body = _ellipsoid((0, 36, 48), (1e9, 34, 46))
    hu[body] = 40.0
    cav_r = _ellipsoid((24, 36, 26), (21, 24, 17))  # right pleural cavity (low x)
    cav_l = _ellipsoid((24, 36, 70), (21, 24, 17))
    effusion = cav_r & (np.arange(SHAPE[1])[None, :, None] >= 52)  # dependent fluid in the right cavity
    lung_r = cav_r & ~effusion
    lung_l = cav_l.copy()
    hu[lung_r | lung_l] = -850.0
    hu[effusion] = 15.0
    # Vessels: tubes along z, dense, in both lungs (the distractors of every dense-blob rule).
    for cy, cx in ((30, 20), (40, 30), (28, 66), (42, 76), (34, 60)):
        tube = np.zeros(SHAPE, bool)
        g = np.ogrid[0 : SHAPE[0], 0 : SHAPE[1], 0 : SHAPE[2]]
        tube |= ((g[1] - cy) ** 2 + (g[2] - cx) ** 2 <= 1.2**2) & np.ones(SHAPE, bool)
        hu[tube & (lung_r | lung_l)] = 30.0
    targets = {}
    targets["nodule_left"] = _ellipsoid((30, 30, 72), (3.5, 3.5, 3.5)) & lung_l
    targets["nodule_right"] = _ellipsoid((30, 30, 24), (2.5, 2.5, 2.5)) & lung_r  # smaller distractor
    targets["ggo_right_lower"] = _ellipsoid((12, 36, 26), (5, 7, 7)) & lung_r & ~targets["nodule_right"]
    targets["emphysema_left_upper"] = _ellipsoid((36, 30, 66), (4, 5, 5)) & lung_l
    targets["effusion_right"] = effusion
    hu[targets["nodule_left"]] = 35.0
    hu[targets["nodule_right"]] = 35.0
    hu[targets["ggo_right_lower"] & (hu < -800)] = -550.0
    hu[targets["emphysema_left_upper"] & (hu < -800)] = -990.0
    hu += rng.normal(0, 12, SHAPE).astype(np.float32)
    lungs = {"right": lung_r, "left": lung_l, "cav_r": cav_r, "cav_l": cav_l, "body": body}
    return Phantom(hu=hu, lungs=lungs, targets=targets)


class FakeAnatomy(LobedAnatomyStandIn):
    """Just enough of rexground.anatomy.Anatomy: exact lungs, z-split lobes, working grid = CT grid."""

    def __init__(self, ph: Phantom):
        self.hu = ph.hu
        self.spacing_zyx = SPACING
        self.body = ph.lungs["body"]
        self.lung_right = ph.lungs["right"]
        self.lung_left = ph.lungs["left"]
        self.lungs = self.lung_right | self.lung_left
        self.lung_envelope = self.lungs.copy()
        self.pleural_envelope = ph.lungs["cav_r"] | ph.lungs["cav_l"]
        self.airways = np.zeros(SHAPE, bool)
        z = np.arange(SHAPE[0])[:, None, None]
        lobes = np.zeros(SHAPE, np.uint8)
        lobes[self.lung_right & (z < 20)] = 3
        lobes[self.lung_right & (z >= 20) & (z < 26)] = 2
        lobes[self.lung_right & (z >= 26)] = 1
        lobes[self.lung_left & (z < 22)] = 6
        lobes[self.lung_left & (z >= 22)] = 4
        self.lobes = lobes

    def zone(self, name, side="unspecified"):
        z = np.arange(SHAPE[0])[:, None, None]
        base = self.region(side)
        return base & (z < 20) if name == "basal" else base


def _ct(ph: Phantom) -> CTVolume:
    geom = Geometry(
        size=SHAPE[::-1], spacing=SPACING[::-1], origin=(0.0, 0.0, 0.0), direction=tuple(np.eye(3).ravel())
    )
    return CTVolume(hu=np.round(ph.hu).astype(np.int16), geometry=geom)


def _query(text, category, side="unspecified", lobes=(), zones=(), size_mm=None, multiplicity="single"):
    return FindingQuery(
        text=text, category=category, category_confidence=1.0, side=side, lobes=lobes, zones=zones,
        size_mm=size_mm, multiplicity=multiplicity,
    )  # fmt: skip


@pytest.fixture(scope="module")
def phantom():
    return make_phantom()


def _engine_for(ph: Phantom, queries: dict[str, FindingQuery], keep_score: bool = False) -> ZeroShotEngine:
    anat = FakeAnatomy(ph)
    return ZeroShotEngine(anatomy_fn=lambda ct: anat, parse_fn=lambda t: queries[t], keep_score=keep_score)


def _dice(a, b):
    a, b = a > 0, b > 0
    return 2 * (a & b).sum() / max(a.sum() + b.sum(), 1)


def test_every_category_has_a_rule():
    assert set(RULES) == set(CATEGORY_CODES)
    assert rule_for("unknown") is not None


def test_nodule_rule_finds_the_named_side_not_the_vessels(phantom):
    q = _query("A 10 mm nodule in the left upper lobe.", "2d", side="left", lobes=("LUL",), size_mm=10.0)
    pred = _engine_for(phantom, {q.text: q}).predict(_ct(phantom), [q.text])[0]
    assert pred.info["rule"] == "nodule" and pred.info["fallback"] == "none"
    assert _dice(pred.mask, phantom.targets["nodule_left"]) > 0.6
    assert not (pred.mask.astype(bool) & phantom.targets["nodule_right"]).any()


def test_right_nodule_sentence_picks_the_right_nodule(phantom):
    q = _query("Small nodule in the right upper lobe.", "2d", side="right", lobes=("RUL",))
    pred = _engine_for(phantom, {q.text: q}).predict(_ct(phantom), [q.text])[0]
    assert _dice(pred.mask, phantom.targets["nodule_right"]) > 0.5


def test_mass_rule_returns_the_lesion_within_the_envelope(phantom):
    q = _query("Mass in the left upper lobe.", "2d", side="left", lobes=("LUL",))
    pred = _engine_for(phantom, {q.text: q}).predict(_ct(phantom), [q.text])[0]
    assert pred.info["rule"] == "mass"
    assert _dice(pred.mask, phantom.targets["nodule_left"]) > 0.6


def test_ground_glass_in_the_named_lobe(phantom):
    q = _query("Ground-glass opacity in the right lower lobe.", "2c", side="right", lobes=("RLL",))
    pred = _engine_for(phantom, {q.text: q}).predict(_ct(phantom), [q.text])[0]
    m = pred.mask.astype(bool)
    target = phantom.targets["ggo_right_lower"]
    assert (m & target).sum() / m.sum() > 0.8
    assert (m & target).sum() / target.sum() > 0.3


def test_effusion_is_outside_the_lung_on_the_named_side(phantom):
    q = _query("Small right pleural effusion.", "2e", side="right", zones=("pleural",))
    pred = _engine_for(phantom, {q.text: q}).predict(_ct(phantom), [q.text])[0]
    assert _dice(pred.mask, phantom.targets["effusion_right"]) > 0.7


def test_emphysema_below_minus_950(phantom):
    q = _query("Bullous emphysema in the left upper lobe.", "1c", side="left", lobes=("LUL",))
    pred = _engine_for(phantom, {q.text: q}).predict(_ct(phantom), [q.text])[0]
    assert _dice(pred.mask, phantom.targets["emphysema_left_upper"]) > 0.6


@pytest.mark.parametrize("category", [*CATEGORY_CODES, "unknown"])
def test_every_rule_answers_with_a_valid_never_empty_mask(phantom, category):
    q = _query(f"finding of category {category} in the right lung", category, side="right")
    pred = _engine_for(phantom, {q.text: q}, keep_score=True).predict(_ct(phantom), [q.text])[0]
    assert "rule_error" not in pred.info
    assert pred.mask.shape == SHAPE and pred.mask.dtype == np.uint8 and pred.mask.sum() >= 10
    assert pred.score is not None and pred.score.shape == SHAPE and pred.score.dtype == np.float32
    assert pred.score.min() >= 0.0 and pred.score.max() <= 1.0
    json.dumps(pred.info)  # goes to results.json


def test_anatomy_is_computed_once_for_all_findings(phantom):
    calls = []
    anat = FakeAnatomy(phantom)

    def anatomy_fn(ct):
        calls.append(1)
        return anat

    qs = [
        _query("Nodule in the left lung.", "2d", side="left"),
        _query("Right pleural effusion.", "2e", side="right"),
        _query("Emphysema.", "1c"),
    ]
    eng = ZeroShotEngine(anatomy_fn=anatomy_fn, parse_fn={q.text: q for q in qs}.__getitem__)
    preds = eng.predict(_ct(phantom), [q.text for q in qs])
    assert len(calls) == 1 and [p.text for p in preds] == [q.text for q in qs]
    assert all(p.score is None for p in preds)  # score maps are opt-in (memory)


def test_named_region_drops_what_the_anatomy_cannot_answer(phantom):
    class Picky(FakeAnatomy):
        def region(self, side="unspecified", lobes=(), zones=()):
            if zones:
                raise ValueError("unknown zone")
            return super().region(side, lobes, zones)

    anat = Picky(phantom)
    q = _query(
        "Nodule in the fissural right lower lobe.", "2d", side="right", lobes=("RLL",), zones=("fissural",)
    )
    region, named, dropped = named_region(anat, q)
    assert named and dropped
    np.testing.assert_array_equal(region, anat.region("right", ("RLL",)))


def test_features_hessian_tells_blobs_from_tubes(phantom):
    anat = FakeAnatomy(phantom)
    f = Features(anat, phantom.hu, SPACING)
    where = np.zeros(SHAPE, bool)
    where[30, 30, 72] = True  # centre of the left nodule
    where[10, 42, 76] = True  # on an isolated vessel (tube along z)
    ev = f.hessian_eigenvalues(1.5, where)
    # np.argwhere order: the vessel voxel (z=10) comes first.
    vessel, blob = ev[0], ev[1]
    assert (blob < 0).all()
    assert abs(vessel[2]) < 0.3 * abs(vessel[0])


def test_rule_context_exposes_the_lowercased_text(phantom):
    anat = FakeAnatomy(phantom)
    ctx = RuleContext(_query("Mass", "2d"), Features(anat, phantom.hu, SPACING), anat.lungs, False)
    assert ctx.text == "mass" and ctx.anat is anat


def test_a_failing_anatomy_region_falls_back_to_the_lungs(phantom):
    class Broken(FakeAnatomy):
        def region(self, side="unspecified", lobes=(), zones=()):
            raise IndexError("bug in the lobe model")

    anat = Broken(phantom)
    q = _query("Right pleural effusion.", "2e", side="right")
    eng = ZeroShotEngine(anatomy_fn=lambda ct: anat, parse_fn=lambda t: q)
    pred = eng.predict(_ct(phantom), [q.text])[0]
    assert "IndexError" in pred.info["region_error"] and pred.mask.sum() >= 10


def test_segments_narrow_the_lobe_by_their_zones():
    assert segment_zones(("RLL posterior basal",)) == ("basal", "posterior")
    assert segment_zones(("LUL apicoposterior",)) == ("apical", "posterior")
    assert segment_zones(("LUL anterior",)) == ("anterior",)
    assert segment_zones(("RML lateral",)) == ()  # no zone for it: the whole lobe
    assert segment_zones(("RLL posterior basal", "RLL anterior basal")) == ()  # disagreeing segments


def test_named_region_passes_segment_zones_to_the_anatomy(phantom):
    seen = []

    class Recording(FakeAnatomy):
        def region(self, side="unspecified", lobes=(), zones=()):
            seen.append(tuple(zones))
            return super().region(side, lobes, zones)

    q = FindingQuery(text="x", category="2a", category_confidence=1.0, side="left", lobes=("LUL",),
                     segments=("LUL anterior",))  # fmt: skip
    named_region(Recording(phantom), q)
    assert seen[0] == ("anterior",)
