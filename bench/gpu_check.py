"""The GPU check of the network engine: CUDA masks against CPU masks, and the time of a real-sized scan.

Run on a machine with an NVIDIA GPU and onnxruntime-gpu through ``bench/gpu_check.sh`` (which prepares the
environment). Steps, each printed and written to ``--out`` as JSON:

1. environment: onnxruntime version and providers, GPU name;
2. a model package: ``--model DIR`` or, when torch is importable, a GroundingNet with random weights
   exported here (``--preset``, ``--patch``, ``--spacing``);
3. a 512x512x400 phantom CT (int16, -2048 padding) with three findings through the NetworkEngine on the
   CPU (fp32) and on CUDA (fp32 and, when its parity passed, fp16); mask voxels that differ from the CPU
   are counted per finding (identical is the goal for fp32);
4. CUDA timing of that scan with three findings after a warm-up run, and with one finding.
Exit status 0 when fp32 CUDA masks equal the CPU masks (or differ in at most 0.01% of their voxels, the
convolution algorithms differ), 2 otherwise, 3 when CUDA is not usable.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_onnx import FINDINGS, build_package, phantom_ct


def gpu_name() -> str:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30)  # fmt: skip
        return out.stdout.strip() or out.stderr.strip()
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"nvidia-smi unavailable: {exc}"


def timed_predict(engine, ct, findings):
    t0 = time.perf_counter()
    preds = engine.predict(ct, findings)
    return preds, time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, help="model package folder (default: export a random network here)")
    ap.add_argument("--preset", choices=("tiny", "real"), default="tiny")
    ap.add_argument("--patch", type=int, nargs=3, default=(32, 48, 48))
    ap.add_argument("--spacing", type=float, nargs=3, default=(3.0, 3.0, 3.0))
    ap.add_argument("--slices", type=int, default=400)
    ap.add_argument("--batch", type=int, default=4, help="tiles per batch on CUDA")
    ap.add_argument("--skip-cpu", action="store_true", help="time CUDA only (no CPU reference masks)")
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "/tmp")) / "gpu_check.json")
    args = ap.parse_args()

    import onnxruntime as ort

    from rexground.engines.network import NetworkEngine
    from rexground.infer.onnx_session import cuda_available

    report: dict = {
        "onnxruntime": ort.__version__,
        "providers": ort.get_available_providers(),
        "gpu": gpu_name(),
    }
    print(json.dumps(report, indent=1), flush=True)
    if not cuda_available():
        print("CUDAExecutionProvider is not available: install onnxruntime-gpu (see bench/gpu_check.sh)")
        report["verdict"] = "no CUDA provider"
        args.out.write_text(json.dumps(report, indent=1))
        return 3

    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        model = args.model
        if model is None:
            t0 = time.perf_counter()
            model = build_package(Path(tmp) / "model", args.patch, args.spacing, args.preset)
            report["export_s"] = round(time.perf_counter() - t0, 1)
        ct = phantom_ct((args.slices, 512, 512), (1.0, 0.7, 0.7))
        report["ct_shape"] = list(ct.shape)

        try:
            cuda32 = NetworkEngine(model, device="cuda", variant="fp32", batch_size=args.batch)
        except Exception as exc:  # CUDA/cuDNN libraries that do not load: say so, exit 3
            report["verdict"] = f"CUDA session failed: {exc}"
            print(report["verdict"])
            args.out.write_text(json.dumps(report, indent=1))
            return 3
        timed_predict(cuda32, ct, FINDINGS)  # warm-up: cuDNN algorithm search, arena growth
        cuda_preds, t3 = timed_predict(cuda32, ct, FINDINGS)
        _, t1 = timed_predict(cuda32, ct, FINDINGS[:1])
        report["cuda_fp32"] = {"three_findings_s": round(t3, 2), "one_finding_s": round(t1, 2),
                               "network_s": cuda_preds[0].info["network_s"]}  # fmt: skip
        print("cuda fp32", report["cuda_fp32"], flush=True)

        variants = {"fp32": cuda_preds}
        if "fp16" in cuda32.package.variants_usable():
            cuda16 = NetworkEngine(model, device="cuda", variant="fp16", batch_size=args.batch)
            timed_predict(cuda16, ct, FINDINGS)
            p16, t16 = timed_predict(cuda16, ct, FINDINGS)
            report["cuda_fp16"] = {"three_findings_s": round(t16, 2), "network_s": p16[0].info["network_s"]}
            print("cuda fp16", report["cuda_fp16"], flush=True)
            variants["fp16"] = p16

        ok = True
        if not args.skip_cpu:
            cpu = NetworkEngine(model, device="cpu")
            cpu_preds, tc = timed_predict(cpu, ct, FINDINGS)
            report["cpu_fp32_three_findings_s"] = round(tc, 2)
            for name, preds in variants.items():
                diffs = [
                    int(np.count_nonzero(a.mask != b.mask)) for a, b in zip(cpu_preds, preds, strict=True)
                ]
                sizes = [int(max(a.mask.sum(), 1)) for a in cpu_preds]
                report[f"mask_voxels_differing_{name}"] = diffs
                report[f"mask_identical_{name}"] = all(d == 0 for d in diffs)
                if name == "fp32":
                    ok = all(d <= 1e-4 * s for d, s in zip(diffs, sizes, strict=True))
            print("cpu vs cuda", {k: v for k, v in report.items() if k.startswith("mask_")}, flush=True)
        report["verdict"] = "PASS" if ok else "FAIL: CUDA fp32 masks differ from CPU masks"
    print(json.dumps(report, indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    return 0 if ok else 2


if __name__ == "__main__":
    raise SystemExit(main())
