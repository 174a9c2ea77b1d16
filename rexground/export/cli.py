"""``rexground export --run RUN_DIR --out MODEL_DIR``: a training run -> a parity-checked ONNX model package."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--run", required=True, type=Path, help="training run folder (or a checkpoint .pt file)"
    )
    parser.add_argument("--out", required=True, type=Path, help="model package folder to write")
    parser.add_argument(
        "--checkpoint", default="best", choices=("best", "last"), help="which checkpoint of the run"
    )
    parser.add_argument(
        "--text-encoder", type=Path, default=None,
        help="sentence encoder folder from export/text_encoder.py (text_encoder.onnx, tokenizer.json, "
        "text_encoder.json); default: rexground.text.encoder's default folder, exported there from the "
        "installed all-MiniLM-L6-v2 first when missing",
    )  # fmt: skip
    parser.add_argument(
        "--allow-test-embedder", action="store_true",
        help="package a run trained with the test-only 'hashing-test' embedder (smoke tests only)",
    )  # fmt: skip
    parser.add_argument("--no-fp16", action="store_true", help="skip the fp16 variant")
    parser.add_argument("--parity-scans", type=int, default=2, help="phantom scans run end to end for parity")
    parser.add_argument(
        "--parity-phantoms", choices=("synth", "builtin"), default="synth",
        help="phantoms for the whole-scan parity: rexground.synth cases (realistic, slower) or small "
        "built-in ones about 1.5 patches wide (fast)",
    )  # fmt: skip
    parser.add_argument("--force", action="store_true", help="replace a non-empty --out folder")


def run(args: argparse.Namespace) -> int:
    from rexground.output_paths import output_folder
    from rexground.preconditions import ensure_text_encoder, require_torch

    require_torch("export")
    output_folder(args.out, "--out")
    from rexground.export.package import export_run
    from rexground.train.checkpoint import read_checkpoint, resolve_checkpoint

    text_encoder = args.text_encoder
    config = read_checkpoint(resolve_checkpoint(args.run, args.checkpoint)).get("config") or {}
    if text_encoder is None and config.get("input", {}).get("text_encoder") == "minilm":
        text_encoder = ensure_text_encoder()  # exported from the installed weights when missing
    manifest = export_run(
        args.run, args.out, which=args.checkpoint, text_encoder_dir=text_encoder,
        allow_test_embedder=args.allow_test_embedder, fp16=not args.no_fp16,
        n_parity_scans=args.parity_scans, parity_phantoms=args.parity_phantoms, force=args.force,
    )  # fmt: skip
    print(f"model package written to {args.out}")
    print(
        f"  patch {manifest.patch_size} voxels at {manifest.target_spacing} mm, threshold {manifest.threshold}"
    )
    print(
        f"  {'variant':<8} {'max|dlogit|':>12} {'tiles':>6} {'scans':>6} {'findings':>9} {'mask diff':>10}  passed"
    )
    for variant, p in manifest.parity.items():
        print(
            f"  {variant:<8} {p.max_abs_logit_diff:>12.3g} {p.tiles_compared:>6} {p.scans_compared:>6} "
            f"{p.findings_compared:>9} {p.mismatched_mask_voxels:>10}  {p.passed}"
        )
    return 0
