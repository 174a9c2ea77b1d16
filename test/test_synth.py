"""Phantom generator: determinism, anatomy, findings where their sentences say with their category's density,
files in the challenge layout with the CT's raw order and geometry, and the training split's partial protocol."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage

from rexground.categories import CATEGORY_CODES
from rexground.io import read_ct, read_mask_raw
from rexground.synth import PhantomCase, generate_case, write_dataset
from rexground.synth.anatomy import LEFT_LOBES, LOBE_LABEL, RIGHT_LOBES
from rexground.synth.case import scanner_quirks
from rexground.synth.findings import GENERATORS
from rexground.synth.writer import ct_path, scan_name, split_of

# Four cases that together hold all 14 categories (forced), each with its distractors.
FORCED = [
    ("2d", "2c", "2b", "2a"),
    ("2e", "2f", "2h", "1a"),
    ("2g", "1b", "1c", "1d"),
    ("1e", "1f", "2d", "2c"),
]


@pytest.fixture(scope="module")
def forced_cases() -> list[PhantomCase]:
    return [generate_case(100 + i, "small", categories=cats) for i, cats in enumerate(FORCED)]


def _hu(case: PhantomCase) -> np.ndarray:
    hu = case.hu.astype(np.float32)
    hu[hu < -1024] = -1024  # scanner padding
    return hu


def test_every_challenge_category_has_a_phantom_generator():
    assert set(GENERATORS) == set(CATEGORY_CODES)


def test_same_seed_same_case_and_different_seed_different_case():
    a, b, c = generate_case(7), generate_case(7), generate_case(8)
    assert np.array_equal(a.hu, b.hu)
    assert np.array_equal(a.lobes, b.lobes)
    assert [f.text for f in a.findings] == [f.text for f in b.findings]
    for fa, fb in zip(a.findings, b.findings, strict=True):
        assert np.array_equal(fa.mask_labels, fb.mask_labels)
    assert np.array_equal(a.direction, b.direction) and a.origin == b.origin
    assert a.hu.shape != c.hu.shape or not np.array_equal(a.hu, c.hu)


def test_anatomy_densities_and_lobes(forced_cases):
    for case in forced_cases:
        hu = _hu(case)
        assert case.hu.dtype == np.int16
        for lab in range(1, 7):
            assert (case.lobes == lab).sum() > 300, f"lobe {lab} missing in seed {case.seed}"
        lung = case.lobes > 0
        # Median lung parenchyma is aerated lung with vessels, not air and not tissue.
        assert -900 < np.median(hu[lung]) < -780
        # The airway lumen is air, and one tree joins the trachea to both lungs.
        assert np.median(hu[case.airway]) < -850
        lab, _ = ndimage.label(case.airway, structure=np.ones((3, 3, 3)))
        top = np.bincount(lab[case.airway]).argmax()
        tree = lab == top
        assert tree[-1].any(), "the trachea leaves the top of the scan"
        reached = set(np.unique(case.lobes[ndimage.binary_dilation(tree)]))
        assert reached >= {1, 2, 3, 4, 5, 6}, "one bronchial tree reaches every lobe"
        # Bone is present (ribs, spine) and air surrounds the body.
        assert (hu > 400).sum() > 200
        assert np.median(hu[:, :3, :]) < -900
        # Right lobes lie on the patient's right (low canonical x), left lobes on the left.
        xs = np.arange(case.hu.shape[2])
        right_x = xs[(np.isin(case.lobes, [1, 2, 3])).any(axis=(0, 1))].mean()
        left_x = xs[(np.isin(case.lobes, [4, 5, 6])).any(axis=(0, 1))].mean()
        assert right_x < left_x
        # Upper lobes above lower lobes (canonical z runs inferior -> superior).
        zs = np.arange(case.hu.shape[0])
        assert np.average(zs, weights=(case.lobes == 1).sum(axis=(1, 2))) > np.average(
            zs, weights=(case.lobes == 3).sum(axis=(1, 2))
        )
        assert np.average(zs, weights=(case.lobes == 4).sum(axis=(1, 2))) > np.average(
            zs, weights=(case.lobes == 6).sum(axis=(1, 2))
        )


def test_every_category_is_drawn_with_distractors(forced_cases):
    cats = {f.category for case in forced_cases for f in case.findings}
    assert cats == set(CATEGORY_CODES)
    n_distractors = sum(len(case.distractors) for case in forced_cases)
    assert n_distractors >= 6
    for case in forced_cases:
        for d in case.distractors:
            same = [f for f in case.findings if f.category == d.category]
            for f in same:
                assert not (d.mask & (f.mask_labels > 0)).any(), "a distractor overlaps its finding's mask"
                assert not set(d.lobes) & set(f.lobes), "a distractor lies where the sentence points"


def _side_lobes(side: str) -> set[int]:
    names = {"right": RIGHT_LOBES, "left": LEFT_LOBES}.get(side, RIGHT_LOBES + LEFT_LOBES)
    return {LOBE_LABEL[n] for n in names}


def test_findings_lie_where_their_sentences_say(forced_cases):
    for case in forced_cases:
        for f in case.findings:
            mask = f.mask_labels > 0
            assert mask.any(), f.text
            assert set(np.unique(f.mask_labels)) == set(range(f.n_entities + 1)), "entities are 1..n"
            if f.pleural:
                assert (case.lobes[mask] == 0).all()
                touched = set(np.unique(case.lobes[ndimage.binary_dilation(mask, iterations=2)])) - {0}
                assert touched and touched <= _side_lobes(f.side), f.text
            else:
                allowed = {LOBE_LABEL[n] for n in f.lobes}
                assert set(np.unique(case.lobes[mask])) <= allowed, f.text
            if f.side == "bilateral":  # "both lungs", "both lower lobes": something on each side
                on = set(np.unique(case.lobes[ndimage.binary_dilation(mask, iterations=1)]))
                assert on & _side_lobes("right") and on & _side_lobes("left"), f.text
            text = f.text.lower()
            if f.side == "right":
                assert "left" not in text, f.text
            elif f.side == "left":
                assert "right" not in text, f.text


def test_crowded_case_keeps_same_category_findings_apart():
    case = generate_case(3, categories=["2d", "2d", "2c", "2c", "2e"])
    by_cat: dict[str, list] = {}
    for f in case.findings:
        by_cat.setdefault(f.category, []).append(f)
        assert (f.mask_labels > 0).any()
        if not f.pleural:
            assert set(np.unique(case.lobes[f.mask_labels > 0])) <= {LOBE_LABEL[n] for n in f.lobes}, f.text
    assert len(by_cat.get("2d", [])) == 2 and len(by_cat.get("2c", [])) == 2
    for same in by_cat.values():
        for i, a in enumerate(same):
            for b in same[i + 1 :]:
                assert not set(a.lobes) & set(b.lobes), (a.text, b.text)
                assert not ((a.mask_labels > 0) & (b.mask_labels > 0)).any()


DENSITY = {
    "2d": lambda v: v.mean() > -300,
    "2c": lambda v: -800 < v.mean() < -250,
    "2b": lambda v: v.mean() > -350,
    "2a": lambda v: v.mean() > -650,
    "2e": lambda v: -40 < v.mean() < 80,
    "2g": lambda v: v.mean() < -900,
    "2f": lambda v: (v < -850).mean() > 0.2 and (v > -400).mean() > 0.1,
    "2h": lambda v: (v < -850).mean() > 0.1,  # air cyst or cavity: air inside a wall
    "1a": lambda v: v.mean() > -500,
    "1b": lambda v: (v < -900).mean() > 0.3,
    "1c": lambda v: v.mean() < -940,
    "1d": lambda v: v.mean() > -650,
    "1e": lambda v: v.mean() > -400,
    "1f": lambda v: -800 < v.mean() < -600,
}


def test_findings_have_their_categorys_density(forced_cases):
    for case in forced_cases:
        hu = _hu(case)
        for f in case.findings:
            values = hu[f.mask_labels > 0]
            assert DENSITY[f.category](values), f"{f.category} {f.text}: mean {values.mean():.0f} HU"
    # And normal lung is not as dense as any solid finding.
    lung = np.concatenate(
        [
            _hu(c)[(c.lobes > 0) & ~np.any([f.mask_labels > 0 for f in c.findings], axis=0)]
            for c in forced_cases
        ]
    )
    assert np.median(lung) < -780


def test_partial_protocol_keeps_at_most_three_entities():
    case = generate_case(3, categories=["2d"])
    rng = np.random.default_rng(0)
    for f in case.findings:
        part = f.partial(rng, 3)
        k = int(part.max())
        assert k == min(3, f.n_entities)
        assert set(np.unique(part)) == set(range(k + 1))
        # Only whole entities survive, and only where the exhaustive mask had them.
        assert ((part > 0) <= (f.mask_labels > 0)).all()
        for lab in range(1, k + 1):
            src = np.unique(f.mask_labels[part == lab])
            assert len(src) == 1 and (f.mask_labels == src[0]).sum() == (part == lab).sum()


def test_quirks_appear_across_seeds_and_padding_stays_outside_the_body():
    quirks = {s: scanner_quirks(s) for s in range(40)}
    padded = [s for s, q in quirks.items() if q.padding_value is not None]
    turned = [s for s, q in quirks.items() if not q.identity_direction]
    assert padded and turned and len(padded) < 40 and len(turned) < 40
    assert {quirks[s].padding_value for s in padded} >= {-2048, -8192}
    case = generate_case(padded[0])
    assert case.hu.min() == case.padding_value
    assert not (case.hu[case.lobes > 0] == case.padding_value).any()
    assert not (case.hu[case.hu.shape[0] // 2, case.hu.shape[1] // 2, :] == case.padding_value).any()


def test_to_image_has_raw_order_and_geometry():
    seed = next(
        s
        for s in range(40)
        if not scanner_quirks(s).identity_direction and scanner_quirks(s).raw_axis_for_canonical != (2, 1, 0)
    )
    case = generate_case(seed)
    assert not np.array_equal(case.direction, np.eye(3))
    img = case.to_image()
    geom = case.geometry
    assert img.GetSize() == geom.size
    assert np.allclose(img.GetDirection(), case.direction.ravel())
    assert np.allclose(img.GetOrigin(), case.origin)
    assert geom.canonical_shape == case.hu.shape
    assert np.allclose(geom.canonical_spacing, case.spacing_zyx)
    # The world position of canonical voxels grows along S, P and L for axes z, y and x.
    ids = np.arange(case.hu.size).reshape(case.hu.shape)
    raw_ids = geom.to_raw(ids)
    for c, world in enumerate((2, 1, 0)):
        hi = [0, 0, 0]
        hi[c] = case.hu.shape[c] - 1
        p_lo = img.TransformIndexToPhysicalPoint([int(v) for v in np.argwhere(raw_ids == ids[0, 0, 0])[0]])
        p_hi = img.TransformIndexToPhysicalPoint([int(v) for v in np.argwhere(raw_ids == ids[tuple(hi)])[0]])
        assert p_hi[world] - p_lo[world] == pytest.approx(hi[c] * case.spacing_zyx[c], rel=1e-4)


def test_scan_names_and_folders():
    names = [scan_name(0, i, split_of(i))[0] for i in range(60)]
    assert len(set(names)) == 60
    held_out = [n for i, n in enumerate(names) if split_of(i) != "train"]
    assert any(n.startswith("train_") for n in held_out), "some val/test scans carry train_ names"
    assert any(n.startswith("valid_") for n in held_out)
    path = ct_path(__import__("pathlib").Path("/x"), "valid_45_b_2.nii.gz")
    assert path.as_posix() == "/x/ct_rate/dataset/valid_fixed/valid_45/valid_45_b/valid_45_b_2.nii.gz"


def test_write_dataset_layout_shapes_and_counts(tmp_path):
    dataset_path = write_dataset(tmp_path, 3, seed=3)
    dataset = json.loads(dataset_path.read_text())
    assert set(dataset) == {"train", "val", "test"}
    assert all(dataset[s] for s in ("train", "val", "test"))
    truth = json.loads((tmp_path / "phantom_truth.json").read_text())
    for split, entries in dataset.items():
        for e in entries:
            assert set(e) == {
                "name",
                "findings",
                "categories",
                "entity_counts",
                "shape",
                "pixels",
                "protocol",
            }
            ct = read_ct(ct_path(tmp_path, e["name"]))
            assert ct.geometry.size == tuple(e["shape"])
            case = None
            if split == "val":  # one case regenerated in memory: the file holds it, read back canonically
                case = generate_case(truth[e["name"]]["seed"], "small")
                assert np.array_equal(ct.hu, case.hu)
                assert np.allclose(ct.geometry.direction, case.direction.ravel())
                assert np.allclose(ct.geometry.origin, case.origin)
            mask_dir = "test_ground_truth" if split == "test" else "segmentations"
            raw = read_mask_raw(tmp_path / mask_dir / e["name"])
            assert raw.dtype == np.uint8
            assert raw.shape == (len(e["findings"]), *e["shape"])
            assert list(e["findings"]) == [str(i) for i in range(raw.shape[0])]
            for k in e["findings"]:
                ch = raw[int(k)]
                assert int(np.count_nonzero(ch)) == e["pixels"][k] > 0
                exhaustive = truth[e["name"]]["findings"][int(k)]["entities_exhaustive"]
                if split == "train":
                    assert int(ch.max()) == min(3, exhaustive)
                    assert e["entity_counts"][k] in (int(ch.max()), exhaustive)
                    assert e["protocol"] == "protocol1"
                else:
                    assert (
                        e["entity_counts"][k] == truth[e["name"]]["findings"][int(k)]["entities_exhaustive"]
                    )
            # Masks in raw order line up with the case's canonical masks.
            canon = ct.geometry.to_canonical(raw)
            if case is not None:
                for i, f in enumerate(case.findings):
                    assert np.array_equal(canon[i], f.mask_labels)
    challenge = json.loads((tmp_path / "MICCAI_challenge_dataset.json").read_text())
    assert challenge["val"] == dataset["val"]
    assert [set(e) for e in challenge["test"]] == [{"name", "findings", "categories"}] * len(dataset["test"])
    # A rerun resumes: nothing is regenerated, the dataset is identical.
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.nii.gz")}
    assert json.loads(write_dataset(tmp_path, 3, seed=3).read_text()) == dataset
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.nii.gz")} == before


def test_cli_writes_a_dataset(tmp_path):
    from rexground.cli import main

    assert main(["synth", "--out", str(tmp_path / "d"), "--cases", "1", "--seed", "5"]) == 0
    data = json.loads((tmp_path / "d" / "dataset.json").read_text())
    assert len(data["train"]) == 1


@pytest.mark.slow
def test_real_size_case_has_scanner_geometry():
    case = generate_case(1, "real")
    nz, ny, nx = case.hu.shape
    assert ny == nx and ny in (512, 768)
    assert 0.6 <= case.spacing_zyx[1] <= 0.98 and 0.75 <= case.spacing_zyx[0] <= 1.5
    assert nz * case.spacing_zyx[0] > 250
    for f in case.findings:
        assert (f.mask_labels > 0).any()


# A phantom whose planned findings could all not be drawn (seed 3031: its lobes were taken): a normal scan.
EMPTY_SEED = 3031


def test_a_phantom_may_have_no_finding_and_the_writer_skips_it_with_a_count(tmp_path, caplog):
    import logging

    from rexground.synth.writer import case_seed, write_case

    assert generate_case(EMPTY_SEED, "small").findings == []
    assert case_seed(0, EMPTY_SEED) == EMPTY_SEED
    record = write_case(tmp_path, 0, EMPTY_SEED, "small")  # used to crash: np.stack of no channels
    assert record["entry"] is None and "no finding" in record["skipped"]
    assert not (tmp_path / "ct_rate").exists() and not (tmp_path / "segmentations").exists()
    assert write_case(tmp_path, 0, EMPTY_SEED, "small") == record  # a rerun resumes from the record
    # In a dataset such a case is left out and counted (here its record stands in for case 1 of 3).
    name = json.loads(next((tmp_path / "entries").iterdir()).read_text())
    write_dataset(tmp_path / "d", 3, seed=1)
    entries = tmp_path / "d" / "entries"
    victim = next(p for p in sorted(entries.iterdir()) if json.loads(p.read_text())["ident"]["index"] == 1)
    kept = json.loads(victim.read_text())
    victim.write_text(json.dumps({**kept, "entry": None, "skipped": name["skipped"]}))
    with caplog.at_level(logging.WARNING):
        dataset = json.loads(write_dataset(tmp_path / "d", 3, seed=1).read_text())
    assert sum(len(v) for v in dataset.values()) == 2 and kept["entry"]["name"] not in json.dumps(dataset)
    assert "1 of 3 phantom cases drew no finding" in caplog.text
