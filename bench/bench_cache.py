"""Benchmark the training cache at CT-RATE size: MB per scan, build time per scan on one core and the share
spent in anatomy, peak memory of a preparation, and the storage options the format was chosen from.

    python bench/bench_cache.py --data DIR [--config configs/real.toml] [--scan NAME] [--no-codecs]

DIR is a ``rexground synth --size real`` dataset. Its first training scan (or ``--scan``) is resampled by
nearest neighbour, same physical extent, onto CT-RATE's matrices: 512 x 512 x 300, 450 and 600 slices and
768 x 768 x 600 (``--grids`` to change), and each replica is prepared exactly as ``rexground prepare``
prepares a scan (``rexground.train.prepare.prepare_ct_case``), in a fresh process of its own so its CPU
time and peak RSS are its own. The cache is at the model's spacing, so its size follows the body's
extent, not the matrix; the matrix drives build time and memory. Then the CT of the first replica is
stored in each candidate container (blosc2 / zarr / npz, int16 HU / float16) and read as random patches of
the config's size: MB on disk, CPU seconds to build, CPU milliseconds and MB read (``/proc/self/io``
rchar) per patch. The machine may be shared: CPU seconds (``time.process_time``) are what to compare.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_loader import bytes_read  # bench/ is the script's folder: on sys.path

REPO = Path(__file__).resolve().parents[1]
GRIDS = ("512x512x300", "512x512x450", "512x512x600", "768x768x600")


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True, help="a `rexground synth --size real` dataset")
    p.add_argument("--config", type=Path, default=REPO / "configs" / "real.toml")
    p.add_argument("--scan", default=None, help="scan to replicate (default: the first training scan)")
    p.add_argument("--grids", nargs="+", default=list(GRIDS), help="in-plane x in-plane x slices")
    p.add_argument(
        "--out", type=Path, default=None, help="where the replicas' cache goes (default: temporary)"
    )
    p.add_argument("--no-codecs", action="store_true", help="skip the storage comparison")
    p.add_argument("--patches", type=int, default=20, help="random patches per storage option")
    return p.parse_args()


def nearest_resample(array: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """(..., z, y, x) onto another voxel count per axis, same extent, nearest neighbour (voxel centres)."""
    out = array
    for k, n in enumerate(shape):
        axis = array.ndim - 3 + k
        m = array.shape[axis]
        idx = np.minimum(((np.arange(n) + 0.5) * m / n).astype(np.int64), m - 1)
        out = np.take(out, idx, axis=axis)
    return out


def replica(ct, entities: np.ndarray, grid: str):
    """The CT and its labels on ``grid`` ("I x J x slices", CT-RATE's way of writing a matrix)."""
    from rexground.geometry import Geometry
    from rexground.io import CTVolume

    i, j, k = (int(v) for v in grid.split("x"))
    shape = (k, j, i)  # canonical (z, y, x)
    hu = nearest_resample(ct.hu, shape)
    spacing = [s * c / n for s, c, n in zip(ct.spacing_zyx, ct.shape, shape, strict=True)]
    geometry = Geometry(
        size=(shape[2], shape[1], shape[0]),
        spacing=(spacing[2], spacing[1], spacing[0]),
        origin=ct.geometry.origin,
        direction=(
            1.0,
            0.0,
            0.0,
            0.0,
            1.0,
            0.0,
            0.0,
            0.0,
            1.0,
        ),  # identity: raw (i, j, k) = canonical x, y, z
    )
    return CTVolume(hu=hu, geometry=geometry), nearest_resample(entities, shape)


def _prepare_replica(args: tuple) -> dict:
    """In a fresh process: build the replica, prepare it as `rexground prepare` would, report."""
    data_dir, name, grid, config_path, out = args
    from rexground.dataset import load_dataset, load_entry_masks, resolve_ct
    from rexground.io import read_ct
    from rexground.train.config import load_config
    from rexground.train.prepare import default_ct_root, prepare_ct_case

    config = load_config(config_path)
    entry = load_dataset(data_dir / "dataset.json").entry(name)
    ct = read_ct(resolve_ct(default_ct_root(data_dir), name))
    entities = ct.geometry.to_canonical(load_entry_masks(data_dir / "segmentations", entry))
    ct, entities = replica(ct, entities, grid)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    report = prepare_ct_case(
        ct, entities, name, config.data.train_split, list(entry.texts), entry.category_list(), config.input,
        config.data, out / grid,
    )  # fmt: skip
    report["grid"] = grid
    report["spacing_zyx"] = [round(s, 3) for s in ct.spacing_zyx]
    report["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    report["rss_before_gb"] = rss_before / 2**20
    return report


def codec_rows(ct_int16: np.ndarray, intensity, patch, n_patches: int, work: Path) -> list[tuple]:
    """Each storage option of the CT channel: (name, MB, build CPU s, patch CPU ms, MB read per patch)."""
    import blosc2

    float16 = ((np.asarray(ct_int16, np.float32) - intensity.mean) / intensity.std).astype(np.float16)
    rng = np.random.default_rng(0)
    starts = [[int(rng.integers(0, max(1, n - p))) for n, p in zip(ct_int16.shape, patch, strict=True)] for _ in range(n_patches)]  # fmt: skip
    boxes = [tuple(slice(s, s + p) for s, p in zip(st, patch, strict=True)) for st in starts]
    rows = []

    def timed_reads(read, boxes) -> tuple[float, float]:
        cpu, r0 = time.process_time(), bytes_read()
        for box in boxes:
            read(box)
        return (time.process_time() - cpu) / len(boxes) * 1000, (bytes_read() - r0) / len(boxes) / 2**20

    def blosc(label, array, codec, level, shuffle):
        path = work / f"{label.replace(' ', '_')}.b2nd"
        cp = {"codec": codec, "clevel": level, "filters": [shuffle], "nthreads": 1}
        cpu = time.process_time()
        blosc2.asarray(
            array, urlpath=str(path), mode="w", chunks=(64, 64, 64), blocks=(16, 32, 32), cparams=cp
        )
        build = time.process_time() - cpu
        arr = blosc2.open(str(path), mode="r", dparams={"nthreads": 1})
        rows.append((label, path.stat().st_size / 2**20, build, *timed_reads(lambda b: arr[b], boxes)))

    Z, L = blosc2.Codec.ZSTD, blosc2.Codec.LZ4
    SH, BS = blosc2.Filter.SHUFFLE, blosc2.Filter.BITSHUFFLE
    blosc("int16 blosc2 zstd3 shuffle (chosen)", ct_int16, Z, 3, SH)
    blosc("int16 blosc2 zstd5 shuffle", ct_int16, Z, 5, SH)
    blosc("int16 blosc2 zstd3 bitshuffle", ct_int16, Z, 3, BS)
    blosc("int16 blosc2 lz4 shuffle", ct_int16, L, 5, SH)
    blosc("float16 blosc2 zstd3 shuffle", float16, Z, 3, SH)
    try:
        import zarr
        from zarr.codecs import BloscCodec

        for label, array in (
            ("int16 zarr v3 blosc-zstd3", ct_int16),
            ("float16 zarr v3 blosc-zstd3", float16),
        ):
            path = work / f"{label.replace(' ', '_')}.zarr"
            cpu = time.process_time()
            z = zarr.create_array(store=str(path), shape=array.shape, dtype=array.dtype, chunks=(64, 64, 64),
                                  compressors=[BloscCodec(cname="zstd", clevel=3, shuffle="shuffle")], overwrite=True)  # fmt: skip
            z[...] = array
            build = time.process_time() - cpu
            size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20
            z = zarr.open_array(str(path), mode="r")
            rows.append((label, size, build, *timed_reads(lambda b, z=z: z[b], boxes)))
    except ImportError:
        rows.append(
            ("zarr (not installed: pip install zarr)", float("nan"), float("nan"), float("nan"), float("nan"))
        )
    for label, array in (("int16 npz (deflate)", ct_int16), ("float16 npz (deflate)", float16)):
        path = work / f"{label.split()[0]}.npz"
        cpu = time.process_time()
        np.savez_compressed(path, a=array)
        build = time.process_time() - cpu
        rows.append(
            (
                label,
                path.stat().st_size / 2**20,
                build,
                *timed_reads(lambda b, p=path: np.load(p)["a"][b], boxes[:3]),
            )
        )
    path = work / "raw.npy"
    np.save(path, ct_int16)
    mm = np.load(path, mmap_mode="r")
    rows.append(
        (
            "int16 .npy uncompressed (memory-mapped)",
            path.stat().st_size / 2**20,
            0.0,
            *timed_reads(lambda b: np.array(mm[b]), boxes),
        )
    )
    return rows


def main() -> int:
    args = _parse()
    from rexground.dataset import load_dataset
    from rexground.train.cache import read_case
    from rexground.train.config import load_config

    config = load_config(args.config)
    dataset = load_dataset(args.data / "dataset.json")
    name = args.scan or dataset.split(config.data.train_split)[0].name
    out = args.out or Path(tempfile.mkdtemp(prefix="bench_cache_"))
    ctx = multiprocessing.get_context("spawn")
    reports = []
    for grid in args.grids:  # one fresh process per replica: its own CPU time and peak memory
        with ctx.Pool(1) as pool:
            report = pool.apply(_prepare_replica, ((args.data, name, grid, args.config, out),))
        reports.append(report)
        print(f"prepared {grid}: {report['cpu_s']:.1f} CPU s", file=sys.stderr, flush=True)
    print(f"\nscan {name} replicated (same extent, nearest neighbour); config {args.config.name}; model spacing "
          f"{config.input.spacing_zyx} mm; machine: {os.cpu_count()} cores, shared")  # fmt: skip
    print(f"{'native (i x j x k)':19s} {'spacing z,y,x mm':18s} {'model grid':14s} {'MB':>6s} {'CPU s':>6s} "
          f"{'anatomy':>8s} {'wall s':>7s} {'peak GB':>8s}")  # fmt: skip
    for r in reports:
        share = r["cpu_anatomy_s"] / max(r["cpu_s"], 1e-9)
        sp = ",".join(f"{s:.2f}" for s in r["spacing_zyx"])
        grid = "x".join(str(n) for n in r["shape"])
        print(f"{r['grid']:19s} {sp:18s} {grid:14s} {r['bytes'] / 2**20:6.1f} {r['cpu_s']:6.1f} {100 * share:7.0f}% "
              f"{r['wall_s']:7.1f} {r['peak_rss_gb']:8.2f}")  # fmt: skip
    mean_mb = np.mean([r["bytes"] for r in reports]) / 2**20
    print(
        f"mean {mean_mb:.1f} MB per scan (target <= 40); x 2,992 training scans = {mean_mb * 2992 / 1024:.0f} GB"
    )
    (out / "bench_cache.json").write_text(json.dumps(reports, indent=1))
    if not args.no_codecs:
        case = read_case(out / args.grids[0])
        work = out / "codecs"
        work.mkdir(exist_ok=True)
        rows = codec_rows(
            np.asarray(case.ct), config.input.intensity, config.input.patch_size_zyx, args.patches, work
        )
        print(f"\nCT channel storage, {'x'.join(map(str, case.shape))} at the model spacing, random "
              f"{'x'.join(map(str, config.input.patch_size_zyx))} patches (CPU time, one thread):")  # fmt: skip
        print(f"{'storage':40s} {'MB':>7s} {'build s':>8s} {'patch ms':>9s} {'MB read/patch':>14s}")
        for label, mb, build, ms, read in rows:
            print(f"{label:40s} {mb:7.1f} {build:8.2f} {ms:9.1f} {read:14.2f}")
        shutil.rmtree(work)
    if args.out is None:
        shutil.rmtree(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
