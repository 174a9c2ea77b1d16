"""Integrity-checking cost: reading a 512 x 512 x 600 ``.nii.gz`` CT with ``rexground.io.read_ct`` (checked:
gzip stream, CRC32, ISIZE, pixel-data length; decompressed once) against the unchecked read it replaced
(SimpleITK's ``ReadImage`` and the same conversion to a canonical array), in one process, alternating.

    python bench/bench_io.py [--slices 600] [--repeats 5] [--ct FILE]

The CT is built from the bundled example (its 64 slices of real chest CT, 256 x 170, placed in a 512 x 512
matrix with air-like noise around them and repeated to 600 slices) unless ``--ct`` names one; it is written
with SimpleITK's compression into a temporary folder. Also timed: a full integrity check without keeping
the pixels (what a written file costs to verify) and the unchecked SimpleITK read of a truncated copy
(which returns a volume) against the checked one (which refuses it). The machine is shared: compare the
ratios, which are measured in the same run, not the absolute seconds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rexground.errors import InputFileError  # noqa: E402
from rexground.integrity import check_image_file  # noqa: E402
from rexground.io import CTVolume, read_ct  # noqa: E402

EXAMPLE = REPO / "rexground" / "resources" / "example" / "ct.nii.gz"


def build_ct(path: Path, slices: int) -> None:
    """A 512 x 512 x ``slices`` int16 CT whose content compresses like a real one (real slices, noisy air)."""
    example = sitk.GetArrayFromImage(sitk.ReadImage(str(EXAMPLE)))  # (k, j, i)
    rng = np.random.default_rng(0)
    volume = rng.normal(-1000, 15, size=(slices, 512, 512)).astype(np.int16)
    k, j, i = example.shape
    y0, x0 = (512 - j) // 2, (512 - i) // 2
    for z in range(slices):
        volume[z, y0 : y0 + j, x0 : x0 + i] = example[z % k]
    image = sitk.GetImageFromArray(volume)
    image.SetSpacing((0.7, 0.7, 1.0))
    sitk.WriteImage(image, str(path), useCompression=True)


def unchecked_read(path: Path) -> CTVolume:
    """What ``read_ct`` did before the integrity checks: SimpleITK reads, the array is made canonical."""
    return CTVolume.from_image(sitk.ReadImage(str(path)), path)


def timed(fn, *args) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn(*args)
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=600)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--ct", type=Path, help="time this .nii.gz instead of the generated CT")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_io_") as tmp:
        path = args.ct or Path(tmp) / "ct.nii.gz"
        if args.ct is None:
            build_ct(path, args.slices)
        size = path.stat().st_size
        reference = unchecked_read(path)
        checked = read_ct(path)
        assert np.array_equal(reference.hu, checked.hu) and reference.geometry == checked.geometry
        runs: dict[str, list[tuple[float, float]]] = {"unchecked": [], "checked": [], "check only": []}
        for _ in range(args.repeats):  # alternating, so load changes on the shared machine hit both alike
            runs["unchecked"].append(timed(unchecked_read, path))
            runs["checked"].append(timed(read_ct, path))
            runs["check only"].append(timed(check_image_file, path))
        truncated = Path(tmp) / "truncated.nii.gz"
        truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 20])
        silent = unchecked_read(truncated)
        zeros = float(np.mean(silent.hu == 0))
        try:
            read_ct(truncated)
            refused = "READ (integrity check missed it)"
        except InputFileError as exc:
            refused = "refused: " + exc.problem[:60] + "..."

    shape = "x".join(str(s) for s in reference.geometry.size)
    print(f"CT {shape} int16, {size:,} bytes; {args.repeats} alternating repeats, median of each")
    print()
    print(f"{'read':<12} {'wall s':>8} {'CPU s':>8} {'ratio (wall)':>13} {'ratio (CPU)':>12}")
    base_wall = statistics.median(w for w, _ in runs["unchecked"])
    base_cpu = statistics.median(c for _, c in runs["unchecked"])
    for name, values in runs.items():
        wall = statistics.median(w for w, _ in values)
        cpu = statistics.median(c for _, c in values)
        print(f"{name:<12} {wall:>8.2f} {cpu:>8.2f} {wall / base_wall:>13.3f} {cpu / base_cpu:>12.3f}")
    print()
    print(f"truncated to 5%: SimpleITK reads it ({zeros:.0%} of the voxels 0); read_ct {refused}")
    print("checked = rexground.io.read_ct; unchecked = sitk.ReadImage + the same canonical array (main before "
          "issue 14); check only = rexground.integrity.check_image_file (the check of a written file)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
