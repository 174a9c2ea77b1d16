"""Speed and memory of the ONNX inference path on this machine's CPU; prints a table.

1. Tiles: the same tile batches and the same weights through torch eager and onnxruntime (CPU provider),
   encoder + one decoder pass; median over repetitions, interleaved so machine load hits both alike.
   Target: onnxruntime at least 1.3x faster.
2. Findings: one phantom scan through the NetworkEngine with one finding and with three. The encoder runs
   once per tile whatever the number of findings. Target: three findings cost at most 1.6x one.
3. Memory: a 512x512xN (default 600) int16 CT with -2048 padding through the engine (three findings) in a
   fresh process; peak resident memory (ru_maxrss, imports included). Target: at most 6 GB.

The network is GroundingNet with random weights (speed does not depend on training) whose output bias is
calibrated so that about 1% of a phantom's voxels are positive, as with a focal finding (the
postprocessing's cost grows with the mask; ``--positive-fraction 0`` keeps the raw random bias, whose maps
sit below the threshold everywhere and exercise the never-empty fallback), exported to a package in a
temporary folder. Run: ``python bench/bench_onnx.py`` (add ``--quick`` for a short run).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
FINDINGS = [
    "Solid nodule in the right upper lobe measuring 8 mm.",
    "Patchy ground-glass opacity in the left lower lobe.",
    "Small left pleural effusion.",
]


def phantom_ct(shape_zyx: tuple[int, int, int], spacing_zyx: tuple[float, float, float]):
    """A chest-like int16 CT in canonical order, built slice by slice (no full-size float temporaries)."""
    import SimpleITK as sitk

    from rexground.io import CTVolume

    nz, ny, nx = shape_zyx
    y, x = np.meshgrid(
        np.linspace(-1, 1, ny, dtype=np.float32), np.linspace(-1, 1, nx, dtype=np.float32), indexing="ij"
    )
    fov = (x**2 + y**2) > 1.0
    body = (y / 0.7) ** 2 + (x / 0.85) ** 2 < 1
    rng = np.random.default_rng(0)
    hu = np.empty(shape_zyx, np.int16)
    for z in range(nz):
        t = 2 * z / max(nz - 1, 1) - 1
        lung_r = max(0.0, 1 - t**2) ** 0.5
        right = ((x + 0.4) / (0.3 * lung_r + 1e-3)) ** 2 + (y / (0.5 * lung_r + 1e-3)) ** 2 < 1
        left = ((x - 0.4) / (0.3 * lung_r + 1e-3)) ** 2 + (y / (0.5 * lung_r + 1e-3)) ** 2 < 1
        sl = np.full((ny, nx), -1000, np.int16)
        sl[body] = 40
        sl[right | left] = -850
        sl += rng.integers(-20, 21, size=(ny, nx), dtype=np.int16)
        sl[fov] = -2048
        hu[z] = sl
    image = sitk.GetImageFromArray(hu)  # canonical (z, y, x) with identity direction
    image.SetSpacing((spacing_zyx[2], spacing_zyx[1], spacing_zyx[0]))
    return CTVolume.from_image(image)


def calibrate_bias(net, cfg, positive_fraction: float) -> None:
    """Shift the output bias of a random network so that about ``positive_fraction`` of a phantom's body
    voxels reach the threshold, as a focal finding does: the postprocessing's cost depends on how much of
    the scan a finding covers (a random network leaves everything near its bias), the network's does not."""
    import torch

    from rexground.export.parity import phantom_scans
    from rexground.infer.conditions import HashingTestEmbedder
    from rexground.infer.package import IntensityNormalisation
    from rexground.infer.preprocess import prepare
    from rexground.train.text_inputs import structure_features

    patch = cfg.input.patch_size_zyx
    (scan,) = phantom_scans(1, [p * s for p, s in zip(patch, cfg.input.spacing_zyx, strict=True)])
    norm = IntensityNormalisation.model_validate(cfg.input.intensity.model_dump())
    image = prepare(scan.hu, scan.spacing_zyx, target_spacing=cfg.input.spacing_zyx, norm=norm).image
    tile = np.zeros((1, 1, *patch), np.float32)
    src = image[:, : patch[0], : patch[1], : patch[2]]
    tile[:, :, : src.shape[1], : src.shape[2], : src.shape[3]] = src
    text = torch.from_numpy(HashingTestEmbedder().encode(FINDINGS))
    query = torch.from_numpy(structure_features(FINDINGS))
    with torch.inference_mode():
        feats = net.encode_image(torch.from_numpy(tile).expand(len(FINDINGS), -1, -1, -1, -1))
        logits = net.decode(*feats, text, query).numpy()
        level = float(np.quantile(logits, 1.0 - positive_fraction))
        net.query_bias.bias -= level  # logit 0 (probability 0.5) at that quantile


def bench_network(patch, spacing, preset: str, positive_fraction: float | None = 0.01):
    """(GroundingNet with seeded random weights, its TrainConfig), output bias calibrated (see above)."""
    import torch

    from rexground.train.config import InputSpec, NetConfig, TrainConfig
    from rexground.train.network import GroundingNet

    net_cfg = NetConfig.tiny() if preset == "tiny" else NetConfig.real()
    spec = InputSpec(patch_size_zyx=tuple(patch), spacing_zyx=tuple(spacing), text_encoder="hashing-test")
    cfg = TrainConfig(net=net_cfg, input=spec)
    torch.manual_seed(0)
    net = GroundingNet(net_cfg).eval()
    if positive_fraction:
        calibrate_bias(net, cfg, positive_fraction)
    return net, cfg


def build_package(
    out: Path, patch, spacing, preset: str, positive_fraction: float | None = 0.01, net_cfg=None
) -> Path:
    """Export the bench network (or ``net_cfg = (net, config)``) to a package at ``out``."""
    from rexground.export.package import export_network

    net, cfg = net_cfg or bench_network(patch, spacing, preset, positive_fraction)
    export_network(net, cfg, out, allow_test_embedder=True, fp16=False, n_parity_scans=1, force=True)
    return out


def mac_split(preset: str, patch, in_channels: int, query_dim: int) -> tuple[float, float]:
    """Multiply-accumulates per tile of the encoder and of one decoder pass (convolutions and linears)."""
    import torch
    from torch import nn

    from rexground.train.config import NetConfig
    from rexground.train.network import GroundingNet

    net = GroundingNet(NetConfig.tiny() if preset == "tiny" else NetConfig.real()).eval()
    total = [0.0]

    def hook(module, inputs, output):
        k = float(np.prod(module.kernel_size)) if hasattr(module, "kernel_size") else 1.0
        if isinstance(module, nn.ConvTranspose3d):
            total[0] += inputs[0].numel() * module.out_channels * k / module.groups
        elif isinstance(module, nn.Conv3d):
            total[0] += output.numel() * module.in_channels * k / module.groups
        elif isinstance(module, nn.Linear):
            total[0] += output.numel() * module.in_features

    for m in net.modules():
        if isinstance(m, nn.Conv3d | nn.ConvTranspose3d | nn.Linear):
            m.register_forward_hook(hook)
    with torch.inference_mode():
        feats = net.encode_image(torch.zeros(1, in_channels, *patch))
        enc = total[0]
        net.decode(*feats, torch.zeros(1, net.config.text_dim), torch.zeros(1, query_dim))
    return enc, total[0] - enc


def bench_tiles(package_dir: Path, net, batch: int, reps: int) -> dict:
    import torch

    from rexground.infer.conditions import Conditions
    from rexground.infer.onnx_session import create_backend
    from rexground.infer.package import load_package
    from rexground.train.tile_backend import TorchTileBackend

    pkg = load_package(package_dir)
    m = pkg.manifest
    torch.set_num_threads(os.cpu_count() or 1)
    rng = np.random.default_rng(0)
    tiles = rng.normal(size=(batch, len(m.input_channels), *m.patch_size)).astype(np.float32)
    cond = Conditions(rng.normal(size=(1, m.text_embedding_dim)) / 20, rng.random((1, m.query_feature_dim)))
    torch_b = TorchTileBackend(net)
    ort_b = create_backend(pkg, "cpu", batch_size=batch).backend
    for b in (torch_b, ort_b):
        b.set_conditions(cond)
    times: dict[str, list[float]] = {"torch": [], "onnx": []}
    worst = 0.0
    for rep in range(reps + 1):  # the first round warms both up and is not counted
        outs = {}
        for name, b in (
            (("torch", torch_b), ("onnx", ort_b)) if rep % 2 == 0 else (("onnx", ort_b), ("torch", torch_b))
        ):
            t0 = time.perf_counter()
            feats = b.encode(tiles)
            outs[name] = np.asarray(b.decode(feats, 0), dtype=np.float32)
            if rep:
                times[name].append(time.perf_counter() - t0)
        worst = max(worst, float(np.abs(outs["torch"] - outs["onnx"]).max()))
    t_torch, t_onnx = statistics.median(times["torch"]), statistics.median(times["onnx"])
    return {"torch_s": t_torch, "onnx_s": t_onnx, "speedup": t_torch / t_onnx, "max_abs_diff": worst}


def bench_findings(package_dir: Path, shape, spacing, reps: int) -> dict:
    from rexground.engines.network import NetworkEngine

    ct = phantom_ct(shape, spacing)
    engine = NetworkEngine(package_dir, device="cpu")
    engine.predict(ct, FINDINGS[:1])  # warm-up: sessions, thread pools, page cache
    t1, t3, n1, n3 = [], [], [], []
    for _ in range(reps):
        t0 = time.perf_counter()
        p1 = engine.predict(ct, FINDINGS[:1])
        t1.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        p3 = engine.predict(ct, FINDINGS)
        t3.append(time.perf_counter() - t0)
        n1.append(p1[0].info["network_s"])
        n3.append(p3[0].info["network_s"])
    a, b = min(t1), min(t3)
    return {"one_s": a, "three_s": b, "ratio": b / a, "net_ratio": min(n3) / min(n1),
            "fallbacks": [p.info["fallback"] for p in p3]}  # fmt: skip


def memory_child(package_dir: str, slices: int) -> None:
    """Run in a fresh process: peak RSS of reading a 512x512xN CT and grounding three findings."""
    from rexground.engines.network import NetworkEngine

    engine = NetworkEngine(package_dir, device="cpu")
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    ct = phantom_ct((slices, 512, 512), (1.0, 0.7, 0.7))
    t0 = time.perf_counter()
    preds = engine.predict(ct, FINDINGS)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"peak_kb": peak, "after_imports_kb": base, "seconds": seconds,
                      "voxels": [int(p.mask.sum()) for p in preds], "shape": list(ct.shape)}))  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--preset", choices=("tiny", "real"), default="tiny", help="network size (random weights)"
    )
    ap.add_argument("--patch", type=int, nargs=3, default=(32, 48, 48), help="patch (z y x) voxels")
    ap.add_argument(
        "--spacing", type=float, nargs=3, default=(3.0, 3.0, 3.0), help="model spacing (z y x) mm"
    )
    ap.add_argument("--batch", type=int, default=2, help="tiles per batch")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument(
        "--scan", type=int, nargs=3, default=(300, 512, 512), help="findings-test scan shape (z y x)"
    )
    ap.add_argument("--slices", type=int, default=600, help="slices of the 512x512 memory-test CT")
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument(
        "--positive-fraction",
        type=float,
        default=0.01,
        help="calibrate the random network's bias so this fraction of voxels is positive (0: leave it)",
    )
    ap.add_argument("--quick", action="store_true", help="fewer repetitions and a smaller findings scan")
    ap.add_argument("--memory-child", nargs=2, metavar=("PACKAGE", "SLICES"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_child:
        memory_child(args.memory_child[0], int(args.memory_child[1]))
        return 0
    if args.quick:
        args.reps, args.scan = 3, (160, 384, 384)

    with tempfile.TemporaryDirectory(prefix="bench_onnx_") as tmp:
        t0 = time.perf_counter()
        net_cfg = bench_network(args.patch, args.spacing, args.preset, args.positive_fraction or None)
        pkg = build_package(Path(tmp) / "model", args.patch, args.spacing, args.preset, net_cfg=net_cfg)
        export_s = time.perf_counter() - t0
        from rexground.infer.package import load_package

        manifest = load_package(pkg).manifest
        enc_macs, dec_macs = mac_split(
            args.preset, args.patch, len(manifest.input_channels), manifest.query_feature_dim
        )
        tiles = bench_tiles(pkg, net_cfg[0], args.batch, args.reps)
        findings = bench_findings(pkg, tuple(args.scan), (1.0, 0.7, 0.7), max(1, args.reps // 2))
        memory = None
        if not args.skip_memory:
            out = subprocess.run(
                [sys.executable, __file__, "--memory-child", str(pkg), str(args.slices)],
                check=True, capture_output=True, text=True, cwd=REPO,
            )  # fmt: skip
            memory = json.loads(out.stdout.strip().splitlines()[-1])

    import onnxruntime as ort
    import torch

    print(f"\nbench_onnx: {args.preset} GroundingNet (random weights), patch {tuple(args.patch)} at "
          f"{tuple(args.spacing)} mm, batch {args.batch}; {os.cpu_count()} CPU cores, load average "
          f"{os.getloadavg()[0]:.1f}; onnxruntime {ort.__version__}, torch {torch.__version__}; "
          f"export + parity {export_s:.1f} s")  # fmt: skip
    predicted = (enc_macs + 3 * dec_macs) / (enc_macs + dec_macs)
    rows = [
        ("encoder / decoder GMAC per tile", f"{enc_macs / 1e9:.2f} / {dec_macs / 1e9:.2f}", ""),
        ("3/1 findings bound from MACs (E+3D)/(E+D)", f"{predicted:.2f}x", ""),
        ("tile batch, torch eager (enc + 1 dec)", f"{tiles['torch_s'] * 1000:.1f} ms", ""),
        ("tile batch, onnxruntime CPU (enc + 1 dec)", f"{tiles['onnx_s'] * 1000:.1f} ms", ""),
        ("onnxruntime speed-up over torch", f"{tiles['speedup']:.2f}x", "PASS" if tiles["speedup"] >= 1.3 else "FAIL (>= 1.3x)"),
        ("max |logit torch - onnx|", f"{tiles['max_abs_diff']:.2e}", ""),
        (f"scan {tuple(args.scan)}, 1 finding", f"{findings['one_s']:.2f} s", ""),
        (f"scan {tuple(args.scan)}, 3 findings", f"{findings['three_s']:.2f} s", ""),
        ("3 findings / 1 finding", f"{findings['ratio']:.2f}x", "PASS" if findings["ratio"] <= 1.6 else "FAIL (<= 1.6x)"),
        ("  of which network (sliding window) 3/1", f"{findings['net_ratio']:.2f}x", ""),
        ("  postprocessing fallbacks used (3 findings)", ",".join(findings["fallbacks"]), ""),
    ]  # fmt: skip
    if memory is not None:
        gb = memory["peak_kb"] / 1024**2
        rows += [
            (f"CT {tuple(memory['shape'])}, 3 findings, CPU: time", f"{memory['seconds']:.1f} s", ""),
            ("  peak RSS (after imports alone)", f"{gb:.2f} GB ({memory['after_imports_kb'] / 1024**2:.2f} GB)",
             "PASS" if gb <= 6.0 else "FAIL (<= 6 GB)"),
        ]  # fmt: skip
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'value':>22}  verdict")
    for name, value, verdict in rows:
        print(f"{name:<{width}}  {value:>22}  {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
