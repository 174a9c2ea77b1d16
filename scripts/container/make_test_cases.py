#!/usr/bin/env python3
"""(Re)write the algorithm container's test cases: ``test/input/<case>/`` (what is mounted at /input) and
``test/expected/<case>/expect.json`` (+ the phantom's true mask, the known answer).

    .venv/bin/python scripts/container/make_test_cases.py
    .venv/bin/python scripts/container/make_test_cases.py --large DIR   # the 768 x 768 x 1005 memory case (not kept)

Cases (deterministic: the phantoms come from ``rexground.synth.generate_case`` with fixed seeds):
* phantom-pneumothorax: one finding as a JSON string, an .mha CT whose raw axes are permuted and flipped
  (direction not the identity); the output must overlap the phantom's true mask (Dice >= 0.6).
* phantom-two-findings: a list of two findings given through ``inputs.json``, an .nrrd CT; one component
  per finding, each overlapping its true mask.
* bad-empty-finding, bad-finding-object, bad-corrupt-ct, bad-no-ct: must exit 1 and name the problem;
  bad-truncated-ct (a .nii.gz cut to 60%) and bad-nan-ct (a float CT with NaN slices) likewise.
The minimum Dice values sit well below what the zero-shot engine reaches (0.84; 0.62 and 0.44) and far above
what a wrong side, a wrong finding or a misoriented mask scores (about 0).
"""

from __future__ import annotations

import json
import os
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


def noisy_ct(path: Path, nan_slices: tuple[int, ...] = ()) -> None:
    """48 x 40 x 32 voxels of noise around -700 HU (compresses like a CT, not like a constant); float32 with
    NaN in ``nan_slices`` when given."""
    raw = np.random.default_rng(7).normal(-700, 200, size=(48, 40, 32)).astype(np.int16)
    array = raw.transpose()  # (k, j, i)
    if nan_slices:
        array = array.astype(np.float32)
        array[list(nan_slices)] = np.nan
    image = sitk.GetImageFromArray(np.ascontiguousarray(array))
    image.SetSpacing((1.5, 1.5, 2.5))
    sitk.WriteImage(image, str(path), useCompression=True)


def bad_case(name: str, finding, problem: str, ct: str = "tiny") -> None:
    inp, exp = _case_dirs(name)
    ct_dir = inp / "images" / "chest-ct"
    if ct == "tiny":
        tiny_ct(ct_dir / "3b1e4c1a.mha")
    elif ct == "truncated":  # an interrupted copy: SimpleITK alone reads it as a volume that is mostly zeros
        path = ct_dir / "3b1e4c1a.nii.gz"
        noisy_ct(path)
        path.write_bytes(path.read_bytes()[: path.stat().st_size * 6 // 10])
    elif ct == "nan":
        noisy_ct(ct_dir / "3b1e4c1a.mha", nan_slices=(5, 6, 20))
    elif ct == "corrupt":
        (ct_dir / "3b1e4c1a.mha").write_bytes(
            b"ObjectType = Image\nNDims = 3\nDimSize = 9 9\n" + bytes(range(256))
        )
    elif ct == "none":
        (ct_dir / "README.txt").write_text("not a CT\n")
    (inp / "finding.json").write_text(json.dumps(finding) + "\n")
    _expect(exp, exit_code=1, stderr_contains=problem)
    print(f"{name}: must fail with {problem!r}")


def large_case(inp: Path) -> None:
    """A 768 x 768 x 1005 CT (the largest matrix and slice count of CT-RATE) for the memory test: a real
    chest CT (../shared's NSCLC-Radiomics LUNG1-001, else the bundled example) resampled onto that grid over
    the same field of view, int16, as a compressed .mha; 1.2 GB in memory. Not committed (500 MB)."""
    shared = Path(os.environ.get("REXGROUND_SHARED", REPO.parent / "shared"))
    real = shared / "data" / "real-ct" / "nsclc-lung1-001" / "ct.nii.gz"
    source = sitk.ReadImage(str(real if real.is_file() else REPO / "rexground/resources/example/ct.nii.gz"))
    size = (768, 768, 1005)
    spacing = [source.GetSpacing()[a] * source.GetSize()[a] / size[a] for a in range(3)]
    big = sitk.Resample(source, size, sitk.Transform(), sitk.sitkLinear, source.GetOrigin(), spacing,
                        source.GetDirection(), -1024, sitk.sitkInt16)  # fmt: skip
    ct_dir = inp / "images" / "chest-ct"
    ct_dir.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(big, str(ct_dir / "large.mha"), useCompression=True)
    (inp / "finding.json").write_text(
        json.dumps("Large mass in the left upper lobe extending to the left hilum.") + "\n"
    )
    print(f"large case: {size} from {'the real CT' if real.is_file() else 'the bundled example'} -> {inp}")


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--large":
        large_case(Path(sys.argv[2]))
        return
    phantom_case("phantom-pneumothorax", 2, ["2g"], ".mha", as_list=False, min_dice=0.6)
    phantom_case("phantom-two-findings", 5, ["2g", "2e"], ".nrrd", as_list=True, min_dice=0.3)
    bad_case("bad-empty-finding", "  ", "the finding sentence is empty")
    bad_case("bad-finding-object", {"text": "Nodule"}, "must be a JSON string or a list of strings")
    bad_case("bad-corrupt-ct", "Nodule in the right upper lobe", "cannot be read as an image", ct="corrupt")
    bad_case("bad-no-ct", "Nodule in the right upper lobe", "must hold exactly one CT", ct="none")
    bad_case("bad-truncated-ct", "Nodule in the right upper lobe", "truncated: the gzip stream ends after",
             ct="truncated")  # fmt: skip
    bad_case("bad-nan-ct", "Nodule in the right upper lobe", "NaN or infinite voxel value(s) in 3 of 32 slices",
             ct="nan")  # fmt: skip


if __name__ == "__main__":
    main()
