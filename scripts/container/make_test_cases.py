#!/usr/bin/env python3
"""(Re)write the algorithm container's test cases: ``test/input/<case>/`` (what is mounted at /input) and
``test/expected/<case>/expect.json`` (+ the phantom's true mask, the known answer).

    .venv/bin/python scripts/container/make_test_cases.py

Cases (deterministic: the phantoms come from ``rexground.synth.generate_case`` with fixed seeds):
* phantom-pneumothorax: one finding as a JSON string, an .mha CT whose raw axes are permuted and flipped
  (direction not the identity); the output must overlap the phantom's true mask (Dice >= 0.6).
* phantom-two-findings: a list of two findings given through ``inputs.json``, an .nrrd CT; one component
  per finding, each overlapping its true mask.
* bad-empty-finding, bad-finding-object, bad-corrupt-ct, bad-no-ct: must exit 1 and name the problem.
The minimum Dice values sit well below what the zero-shot engine reaches (0.84; 0.62 and 0.44) and far above
what a wrong side, a wrong finding or a misoriented mask scores (about 0).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from rexground.io import write_mask, write_vector_mask  # noqa: E402
from rexground.synth import generate_case  # noqa: E402

INPUT = REPO / "test" / "input"
EXPECTED = REPO / "test" / "expected"


def _case_dirs(name: str) -> tuple[Path, Path]:
    inp, exp = INPUT / name, EXPECTED / name
    for d in (inp, exp):
        shutil.rmtree(d, ignore_errors=True)
    (inp / "images" / "chest-ct").mkdir(parents=True)
    exp.mkdir(parents=True)
    return inp, exp


def _expect(exp: Path, **spec) -> None:
    (exp / "expect.json").write_text(json.dumps(spec, indent=2) + "\n")


def phantom_case(name: str, seed: int, categories: list[str], suffix: str, as_list: bool, min_dice: float):
    case = generate_case(seed, size="small", categories=categories)
    inp, exp = _case_dirs(name)
    sitk.WriteImage(
        case.to_image(), str(inp / "images" / "chest-ct" / f"{name}{suffix}"), useCompression=True
    )
    texts = [f.text for f in case.findings]
    value: str | list[str] = texts if as_list else texts[0]
    if as_list:
        sockets = [
            {"interface": {"slug": "chest-ct", "kind": "Image", "relative_path": "images/chest-ct"},
             "image": {"name": f"{name}{suffix}"}, "value": None, "file": None},
            {"interface": {"slug": "finding", "kind": "Anything", "relative_path": "finding.json"},
             "value": value, "file": None, "image": None},
        ]  # fmt: skip
        (inp / "inputs.json").write_text(json.dumps(sockets, indent=2) + "\n")
    (inp / "finding.json").write_text(json.dumps(value) + "\n")
    truth = np.stack([(f.mask_labels > 0).astype(np.uint8) for f in case.findings])
    if as_list:
        write_vector_mask(exp / "reference.mha", truth, case.geometry)
    else:
        write_mask(exp / "reference.mha", truth[0], case.geometry)
    _expect(
        exp,
        exit_code=0,
        n_findings=len(texts),
        reference_mask="reference.mha",
        min_dice_vs_reference=min_dice,
    )
    print(f"{name}: {case.hu.shape} {texts}")


def tiny_ct(path: Path) -> None:
    raw = np.full((24, 20, 16), -900, np.int16)
    raw[8:14, 6:12, 5:10] = 40
    image = sitk.GetImageFromArray(raw.transpose())
    image.SetSpacing((2.0, 2.0, 3.0))
    sitk.WriteImage(image, str(path), useCompression=True)


def bad_case(name: str, finding, problem: str, ct: str = "tiny") -> None:
    inp, exp = _case_dirs(name)
    ct_dir = inp / "images" / "chest-ct"
    if ct == "tiny":
        tiny_ct(ct_dir / "3b1e4c1a.mha")
    elif ct == "corrupt":
        (ct_dir / "3b1e4c1a.mha").write_bytes(
            b"ObjectType = Image\nNDims = 3\nDimSize = 9 9\n" + bytes(range(256))
        )
    elif ct == "none":
        (ct_dir / "README.txt").write_text("not a CT\n")
    (inp / "finding.json").write_text(json.dumps(finding) + "\n")
    _expect(exp, exit_code=1, stderr_contains=problem)
    print(f"{name}: must fail with {problem!r}")


def main() -> None:
    phantom_case("phantom-pneumothorax", 2, ["2g"], ".mha", as_list=False, min_dice=0.6)
    phantom_case("phantom-two-findings", 5, ["2g", "2e"], ".nrrd", as_list=True, min_dice=0.3)
    bad_case("bad-empty-finding", "  ", "the finding sentence is empty")
    bad_case("bad-finding-object", {"text": "Nodule"}, "must be a JSON string or a list of strings")
    bad_case("bad-corrupt-ct", "Nodule in the right upper lobe", "cannot be read as an image", ct="corrupt")
    bad_case("bad-no-ct", "Nodule in the right upper lobe", "must hold exactly one CT", ct="none")


if __name__ == "__main__":
    main()
