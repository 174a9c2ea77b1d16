"""Anatomy on small synthetic chests built here (fast), and the working-grid maps."""

from __future__ import annotations

import numpy as np
import pytest

from rexground.anatomy import LOBE_LABELS, ZONE_NAMES, compute_anatomy_from_array
from rexground.anatomy.grid import WorkingGrid

SPACING = (4.0, 1.0, 1.0)
SHAPE = (56, 240, 300)


def _ellipsoid(shape, spacing, centre_mm, semi_mm):
    zz, yy, xx = np.ogrid[: shape[0], : shape[1], : shape[2]]
    q = sum(
        ((g * s - c) / a) ** 2 for g, s, c, a in zip((zz, yy, xx), spacing, centre_mm, semi_mm, strict=True)
    )
    return q <= 1.0


def make_chest(lung_gap_mm: float = 30.0, hilar_mass: bool = False, seed: int = 0):
    """A CT-like chest: body with a table under it, two lungs, a trachea with two main bronchi.
    Returns (hu int16, truth dict of canonical boolean masks). x runs patient right -> left."""
    rng = np.random.default_rng(seed)
    nz, ny, nx = SHAPE
    sz, sy, sx = SPACING
    hu = np.full(SHAPE, -1000.0, dtype=np.float32)
    cy, cx = ny * sy / 2 - 10, nx * sx / 2
    zz = np.arange(nz)[:, None, None] * sz
    yy = np.arange(ny)[None, :, None] * sy
    xx = np.arange(nx)[None, None, :] * sx
    body = (((yy - cy) / 95.0) ** 2 + ((xx - cx) / 135.0) ** 2 <= 1.0) & np.ones((nz, 1, 1), bool)
    hu[body] = 40.0
    table = (
        (yy > cy + 95.0 + 6.0) & (yy < cy + 95.0 + 16.0) & (np.abs(xx - cx) < 140) & np.ones((nz, 1, 1), bool)
    )
    hu[table] = 300.0
    lung_half = 55.0
    zc = nz * sz * 0.45
    right = _ellipsoid(SHAPE, SPACING, (zc, cy, cx - lung_gap_mm / 2 - lung_half), (95.0, 70.0, lung_half))
    left = _ellipsoid(SHAPE, SPACING, (zc, cy, cx + lung_gap_mm / 2 + lung_half), (95.0, 70.0, lung_half))
    chest_wall = (((yy - cy) / 80.0) ** 2 + ((xx - cx) / 120.0) ** 2 <= 1.0) & np.ones((nz, 1, 1), bool)
    right &= chest_wall  # the ribs and muscles stay about 15 mm thick everywhere
    left &= chest_wall
    hu[right | left] = -850.0
    # trachea from the top down to the carina, then main bronchi towards each lung's centre
    carina_z = zc + 35.0
    trachea = ((yy - (cy - 20)) ** 2 + (xx - cx) ** 2 <= 9.0**2) & (zz >= carina_z)
    bronchi = np.zeros(SHAPE, bool)
    for sign in (-1, 1):
        for t in np.linspace(0, 1, 60):
            p = np.array(
                [carina_z - 30 * t, cy - 20 + 10 * t, cx + sign * (lung_gap_mm / 2 + lung_half * 0.6) * t]
            )
            bronchi |= (zz - p[0]) ** 2 + (yy - p[1]) ** 2 + (xx - p[2]) ** 2 <= 6.0**2
    airways = (trachea | bronchi) & body
    hu[airways] = -1000.0
    mass = np.zeros(SHAPE, bool)
    if hilar_mass:  # a dense mass replacing lung against the right lung's mediastinal surface
        mass = _ellipsoid(SHAPE, SPACING, (zc, cy, cx - lung_gap_mm / 2 - 12.0), (24.0, 20.0, 20.0))
        mass &= right
        hu[mass] = 35.0
    hu += rng.normal(0, 15, SHAPE).astype(np.float32)
    hu[~(body | table)] = -1024.0
    hu[:, :, :3] = -2048.0  # scanner padding must not matter
    truth = {
        "body": body,
        "right": right & ~airways & ~mass,
        "left": left & ~airways,
        "airways": airways,
        "mass": mass,
    }
    return hu.astype(np.int16), truth


@pytest.fixture(scope="module")
def chest():
    hu, truth = make_chest()
    return compute_anatomy_from_array(hu, SPACING, 1.5), truth


def dice(a, b):
    return 2.0 * np.logical_and(a, b).sum() / max(1, a.sum() + b.sum())


def test_working_grid_tiles_the_ct_and_maps_back_exactly():
    g = WorkingGrid.for_ct((37, 101, 203), (5.0, 0.7, 0.7), 1.5)
    assert g.shape[0] == 37  # thick slices are kept
    assert g.shape[1:] == (47, 95)
    for n, s, m, w in zip(g.ct_shape, g.ct_spacing, g.shape, g.spacing, strict=True):
        assert n * s == pytest.approx(m * w)
    work = np.random.default_rng(1).random(g.shape) > 0.5
    back = g.to_ct(work)
    assert back.shape == g.ct_shape and back.dtype == bool
    assert np.array_equal(g.from_ct(back, order=0), work)  # every working voxel holds its own CT centre


def test_hu_resampling_clips_padding_and_keeps_levels():
    g = WorkingGrid.for_ct((4, 60, 60), (2.0, 0.75, 0.75), 1.5)
    hu = np.full((4, 60, 60), 40, dtype=np.int16)
    hu[:, :, :10] = -8192
    out = g.hu_from_ct(hu)
    assert out.dtype == np.float32 and out.shape == (4, 30, 30)
    assert out.min() >= -1024.0 and out[:, :, 10:].min() == pytest.approx(40.0)


def test_body_excludes_the_table_and_outside_air(chest):
    anat, truth = chest
    body_ct = anat.to_ct_grid(anat.body)
    assert dice(body_ct, truth["body"]) > 0.97
    assert anat.hu[anat.body].mean() < 0  # lungs are inside the filled body


def test_lungs_match_truth_and_sides_follow_the_convention(chest):
    anat, truth = chest
    right = anat.to_ct_grid(anat.lung_right)
    left = anat.to_ct_grid(anat.lung_left)
    assert dice(right, truth["right"]) > 0.93
    assert dice(left, truth["left"]) > 0.93
    xs = np.arange(anat.shape[2])
    assert xs[anat.lung_right.any(axis=(0, 1))].mean() < xs[anat.lung_left.any(axis=(0, 1))].mean()
    assert not (anat.lung_right & anat.lung_left).any()


def test_airways_found_and_kept_out_of_the_lungs(chest):
    anat, truth = chest
    aw = anat.to_ct_grid(anat.airways)
    assert anat.info["airways"]["found"] == 1.0
    trachea_top = truth["airways"][-5:]
    assert (aw[-5:] & trachea_top).sum() > 0.8 * trachea_top.sum()
    extrapulmonary = anat.airways & ~anat.lung_envelope
    assert extrapulmonary.sum() > 0.5 * anat.airways.sum()
    assert not (extrapulmonary & anat.lungs).any()


def test_lobes_cover_the_envelope_in_anatomical_order(chest):
    anat, _ = chest
    env = anat.lung_envelope
    assert np.array_equal(anat.lobes > 0, env)
    z = np.arange(anat.shape[0])[:, None, None] * np.ones(anat.shape)
    y = np.arange(anat.shape[1])[None, :, None] * np.ones(anat.shape)
    mean = {k: (z[anat.lobes == v].mean(), y[anat.lobes == v].mean()) for k, v in LOBE_LABELS.items()}
    assert mean["RUL"][0] > mean["RML"][0] and mean["RUL"][0] > mean["RLL"][0]
    assert mean["RML"][1] < mean["RLL"][1]  # the middle lobe is in front of the lower lobe
    assert mean["LUL"][0] > mean["lingula"][0] and mean["lingula"][1] < mean["LLL"][1]
    assert (anat.lobe("RLL") & anat.lung_envelope_left).sum() == 0


def test_zones_are_where_their_names_say(chest):
    anat, _ = chest
    z = np.arange(anat.shape[0])[:, None, None]
    y = np.arange(anat.shape[1])[None, :, None]
    for side in ("right", "left"):
        ap, ba = anat.zone("apical", side), anat.zone("basal", side)
        assert (ap * z).sum() / ap.sum() > (ba * z).sum() / ba.sum()
        an, po = anat.zone("anterior", side), anat.zone("posterior", side)
        assert (an * y).sum() / an.sum() < (po * y).sum() / po.sum()
        assert anat.zone("dependent", side).sum() < po.sum()
        assert (anat.zone("subpleural", side) & anat.zone("central", side)).sum() < 0.05 * anat.zone(
            "central", side
        ).sum()
    for name in ZONE_NAMES:
        m = anat.zone(name, "bilateral")
        assert m.shape == anat.shape and m.dtype == bool and m.any(), name
    assert not (anat.zone("basal", "left") & anat.lung_envelope_right).any()
    with pytest.raises(ValueError):
        anat.zone("everywhere")


def test_region_combines_lobes_zones_and_side(chest):
    anat, _ = chest
    r = anat.region(side="right", lobes=("RLL",), zones=("posterior",))
    assert r.any() and not (r & ~anat.lobe("RLL")).any()
    assert not (anat.region(side="left") & anat.lung_envelope_right).any()
    # contradictory zones fall back to their union, never to nothing
    assert anat.region(side="left", zones=("apical", "basal")).any()
    pleural = anat.region(side="right", zones=("pleural",))
    assert pleural.any() and not (pleural & ~anat.pleural_envelope).any()


def test_touching_lungs_are_split_at_the_midline():
    hu, truth = make_chest(lung_gap_mm=-12.0, seed=2)
    anat = compute_anatomy_from_array(hu, SPACING, 1.5)
    assert anat.info["split"] != "components"
    right = anat.to_ct_grid(anat.lung_right)
    left = anat.to_ct_grid(anat.lung_left)
    assert dice(right, truth["right"] & ~truth["left"]) > 0.9
    assert dice(left, truth["left"] & ~truth["right"]) > 0.9


def test_a_mass_at_the_hilum_is_inside_the_lung_envelope():
    hu, truth = make_chest(hilar_mass=True, seed=3)
    anat = compute_anatomy_from_array(hu, SPACING, 1.5)
    mass = anat.from_ct_grid(truth["mass"].astype(np.uint8)) > 0
    assert (mass & anat.lung_envelope_right).sum() > 0.8 * mass.sum()
    assert (mass & anat.lungs).sum() < 0.5 * mass.sum()  # the aerated lung alone would carve it out
    assert not (anat.lung_envelope & ~anat.body).any()


@pytest.mark.parametrize("seed", [0, 3])
def test_phantom_lungs_and_large_lobes_agree_with_the_generator(seed):
    synth = pytest.importorskip("rexground.synth")
    case = synth.generate_case(seed, size="small")
    anat = compute_anatomy_from_array(case.hu, case.spacing_zyx, 1.5)
    truth = case.lobes
    right = anat.to_ct_grid(anat.lung_right)
    left = anat.to_ct_grid(anat.lung_left)
    assert dice(right, np.isin(truth, [1, 2, 3])) > 0.95
    assert dice(left, np.isin(truth, [4, 5, 6])) > 0.93
    lobes = anat.to_ct_grid(anat.lobes)
    # the generator draws its fissures with its own model; the large lobes must still broadly agree
    for name in ("RUL", "RLL", "LUL", "LLL"):
        lab = LOBE_LABELS[name]
        assert dice(lobes == lab, truth == lab) > 0.7, name


@pytest.mark.parametrize(
    ("fill_hu", "shape"),
    [(-1024, (10, 64, 64)), (0, (10, 64, 64)), (-1024, (1, 64, 64))],
    ids=["all-air", "all-water", "one-slice"],
)
def test_volumes_without_a_chest_give_empty_anatomy_not_errors(fill_hu, shape):
    anat = compute_anatomy_from_array(np.full(shape, fill_hu, dtype=np.int16), (2.0, 1.0, 1.0), 1.5)
    assert not anat.lungs.any() and not anat.lobes.any()
    for name in ZONE_NAMES:
        assert anat.zone(name, "left").shape == anat.shape
    region = anat.region(side="left", lobes=("LLL",), zones=("basal",))
    assert np.array_equal(region, anat.body) or region.any() == anat.body.any()
    assert anat.to_ct_grid(anat.lungs).shape == shape


def test_a_scan_ending_below_the_carina_has_no_airways_but_both_lungs():
    hu, truth = make_chest(seed=4)
    anat = compute_anatomy_from_array(hu[:20], SPACING, 1.5)
    assert anat.info["airways"]["found"] == 0.0
    assert dice(anat.to_ct_grid(anat.lung_right), truth["right"][:20]) > 0.9
    assert dice(anat.to_ct_grid(anat.lung_left), truth["left"][:20]) > 0.9
    assert anat.hilum_right is not None and anat.zone("perihilar", "right").any()



def test_region_lul_includes_the_lingula_as_sentences_mean_it(chest):
    anat, _ = chest
    lul = anat.region(side="left", lobes=("LUL",))
    assert anat.lobe("lingula").any()
    assert (lul & anat.lobe("lingula")).sum() == (anat.lobe("lingula") & anat.hemithorax("left")).sum()
    lingula = anat.region(side="left", lobes=("lingula",))
    assert lingula.any() and not (lingula & anat.lobe("LUL")).any()
