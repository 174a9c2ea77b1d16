#!/usr/bin/env python3
"""Export a tiny, randomly initialised network as a real model package, for testing the container's model
path (/opt/ml/model mount, hash check, network engine on onnxruntime) without trained weights.

    .venv/bin/python scripts/container/make_model_package.py OUT [--broken OUT_BROKEN]

Needs torch (``scripts/setup-env.sh --train``). The package uses the test-only hashing text embedder and says
so in its manifest; its masks are meaningless but deterministic. ``--broken`` also writes a copy whose
decoder has one byte changed, which loading must refuse (sha256 mismatch).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path


def export_tiny(out: Path) -> None:
    import torch

    from rexground.export.package import export_network
    from rexground.train.config import InputSpec, NetConfig, TrainConfig
    from rexground.train.network import GroundingNet

    config = TrainConfig(
        net=NetConfig.tiny(),
        input=InputSpec(
            patch_size_zyx=(16, 32, 32), spacing_zyx=(4.0, 4.0, 4.0), text_encoder="hashing-test"
        ),
        threshold=0.5,
    )
    torch.manual_seed(0)
    net = GroundingNet(config.net).eval()
    # fp32 only: the container test runs on the CPU, which uses fp32 (and fp16 needs onnxconverter-common).
    export_network(net, config, out, allow_test_embedder=True, fp16=False, n_parity_scans=1)


def break_copy(package: Path, out: Path) -> None:
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(package, out)
    decoder = next(out.glob("decoder*.onnx"))
    data = bytearray(decoder.read_bytes())
    data[len(data) // 2] ^= 0xFF
    decoder.write_bytes(bytes(data))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--broken", type=Path, help="also write a copy with a corrupted decoder here")
    args = parser.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    export_tiny(args.out)
    for path in [args.out, *args.out.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)  # readable by the container's user
    print(f"model package: {args.out}")
    if args.broken:
        break_copy(args.out, args.broken)
        print(f"broken copy: {args.broken}")


if __name__ == "__main__":
    main()
