#!/usr/bin/env python3
"""Check one container run against its expected outcome (``test/expected/<case>/expect.json``).

A successful run must have written exactly ``images/finding-segmentation/output.mha`` and ``results.json``;
the mask must be uint8 0/1 with the input CT's geometry, one component per finding, none empty; and it
must agree with the expected mask and the known answer (reference) to the stated Dice. A failing run must
exit with the expected status and say what was wrong on stderr. Prints one line per check; exit 1 on any
failure. Also used by the tests (``test/test_container.py``) on in-process runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict

MASK_RELATIVE = Path("images/finding-segmentation/output.mha")
RESULTS_RELATIVE = Path("results.json")


class Expected(BaseModel):
    """``expect.json``: what a case must produce. Paths are relative to the file's folder."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    exit_code: int = 0
    stderr_contains: str | None = None  # for a failing case: the words that name the problem
    n_findings: int | None = None
    expected_mask: str | None = None  # output of a trusted run (regression)
    min_dice_vs_expected: float = 0.99
    reference_mask: str | None = None  # the known answer (phantom truth, expert contour)
    min_dice_vs_reference: float = 0.0


def dice(a: np.ndarray, b: np.ndarray) -> float:
    from rexground.metrics import dice_score

    a, b = a > 0, b > 0
    return dice_score(int(np.logical_and(a, b).sum()), int(a.sum()), int(b.sum()))


def check(
    expect: Expected,
    expect_dir: Path,
    input_dir: Path,
    output_dir: Path,
    exit_code: int,
    stderr: str,
    host_output: Path | None = None,
) -> list[tuple[bool, str]]:
    """(passed, description) for every check of one run. ``host_output``: the output of the same inputs run
    by inference.py outside the container; the container's mask must match it (same code, pinned libraries)."""
    import SimpleITK as sitk

    from rexground.io import read_mask_raw
    from rexground.predictor import CaseRecord

    checks: list[tuple[bool, str]] = [
        (exit_code == expect.exit_code, f"exit code {exit_code} (want {expect.exit_code})")
    ]
    if expect.exit_code != 0:
        if expect.stderr_contains is not None:
            ok = expect.stderr_contains.lower() in stderr.lower()
            checks.append(
                (ok, f"stderr names the problem ({expect.stderr_contains!r}): {stderr.strip()[-200:]!r}")
            )
        checks.append((not (output_dir / MASK_RELATIVE).exists(), "no mask written on bad input"))
        return checks
    if exit_code != 0:
        checks.append((False, f"stderr: {stderr.strip()[-500:]}"))
        return checks

    written = sorted(str(p.relative_to(output_dir)) for p in output_dir.rglob("*") if p.is_file())
    want = sorted([str(MASK_RELATIVE), str(RESULTS_RELATIVE)])
    checks.append((written == want, f"files written {written}"))
    mask_path = output_dir / MASK_RELATIVE
    if not mask_path.is_file():
        return checks

    ct_files = sorted((input_dir / "images" / "chest-ct").iterdir())
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(ct_files[0]))
    reader.ReadImageInformation()
    out = sitk.ReadImage(str(mask_path))
    same_geometry = (
        out.GetSize() == reader.GetSize()
        and np.allclose(out.GetSpacing(), reader.GetSpacing(), atol=1e-5)
        and np.allclose(out.GetOrigin(), reader.GetOrigin(), atol=1e-3)
        and np.allclose(out.GetDirection(), reader.GetDirection(), atol=1e-6)
    )
    checks.append(
        (same_geometry, f"geometry copied from the CT (size {out.GetSize()}, spacing {out.GetSpacing()})")
    )
    checks.append(
        (
            out.GetPixelID() in (sitk.sitkUInt8, sitk.sitkVectorUInt8),
            f"uint8 ({out.GetPixelIDTypeAsString()})",
        )
    )
    raw = read_mask_raw(mask_path)
    channels = raw if raw.ndim == 4 else raw[None]
    checks.append((set(np.unique(channels).tolist()) <= {0, 1}, "values are 0/1"))
    if expect.n_findings is not None:
        checks.append(
            (len(channels) == expect.n_findings, f"{len(channels)} channel(s) (want {expect.n_findings})")
        )
    voxels = [int(c.sum()) for c in channels]
    checks.append((all(v > 0 for v in voxels), f"no empty finding mask (voxels per finding {voxels})"))

    try:
        result = CaseRecord.model_validate_json((output_dir / RESULTS_RELATIVE).read_text())
        ok = [f.voxels for f in result.findings] == voxels
        checks.append((ok, f"results.json matches the mask (engine {result.engine}: {result.engine_reason})"))
    except Exception as exc:  # any parse or validation problem is a failed check, reported
        checks.append((False, f"results.json invalid: {exc}"))

    references = [
        (expect_dir / name if name else None, min_dice, label)
        for name, min_dice, label in (
            (expect.expected_mask, expect.min_dice_vs_expected, "expected output"),
            (expect.reference_mask, expect.min_dice_vs_reference, "known answer"),
        )
    ]
    if host_output is not None:
        references.append((host_output / MASK_RELATIVE, expect.min_dice_vs_expected, "the same run outside"))
    for path, min_dice, label in references:
        if path is None:
            continue
        name = path.name if label != "the same run outside" else "host output.mha"
        if not path.is_file():
            checks.append((False, f"{label}: {path} missing"))
            continue
        ref = read_mask_raw(path)
        ref = ref if ref.ndim == 4 else ref[None]
        if ref.shape != channels.shape:
            checks.append((False, f"{label} {name}: shape {ref.shape} != output {channels.shape}"))
            continue
        scores = [dice(o, r) for o, r in zip(channels, ref, strict=True)]
        text = ", ".join(f"{s:.3f}" for s in scores)
        checks.append((min(scores) >= min_dice, f"Dice vs {label} ({name}): {text} (need >= {min_dice})"))
    return checks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True)
    parser.add_argument("--input", required=True, type=Path)
    parser.add_argument("--output", required=True, type=Path)
    parser.add_argument("--expect", required=True, type=Path)
    parser.add_argument("--exit-code", required=True, type=int)
    parser.add_argument("--stdout", type=Path)
    parser.add_argument("--stderr", type=Path)
    parser.add_argument("--host-output", type=Path, help="output of the same case run outside the container")
    args = parser.parse_args()
    expect = Expected.model_validate_json(args.expect.read_text())
    stderr = args.stderr.read_text(errors="replace") if args.stderr else ""
    checks = check(
        expect, args.expect.parent, args.input, args.output, args.exit_code, stderr, args.host_output
    )
    for ok, text in checks:
        print(f"  {'ok  ' if ok else 'FAIL'} {text}")
    if not all(ok for ok, _ in checks) and args.stdout and args.stdout.is_file():
        print("  --- container stdout (tail) ---\n" + args.stdout.read_text(errors="replace")[-2000:])
        print("  --- container stderr (tail) ---\n" + stderr[-2000:])
    return 0 if all(ok for ok, _ in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
