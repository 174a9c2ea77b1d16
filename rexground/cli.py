"""The ``rexground`` command. Each subcommand lives in the module that owns its job and is imported lazily,
so ``rexground evaluate`` never pays for torch and ``rexground --help`` starts instantly."""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, one-line help). Each module defines ``add_arguments(parser)`` and ``run(args) -> int``.
COMMANDS: dict[str, tuple[str, str]] = {
    "predict-case": ("rexground.commands.predict_case", "ground findings in one CT and write the mask"),
    "predict": ("rexground.commands.predict", "predict a whole split into submission files and a zip"),
    "show": ("rexground.commands.show", "write an overlay PNG of a CT and a mask"),
    "evaluate": ("rexground.metrics.cli", "score predictions with the official ReXGrounding logic"),
    "validate-submission": ("rexground.commands.validate_submission", "check a submission folder or zip"),
    "synth": ("rexground.synth.cli", "generate phantom CTs, masks and a ReXGroundingCT-format dataset"),
    "parse": ("rexground.text.cli", "parse finding sentences into structured queries (JSON lines)"),
    "prepare": ("rexground.train.prepare", "build the training cache: sharded, resumable (training extra)"),
    "train": ("rexground.train.cli", "train the text-conditioned network (torch; torchrun for multi-GPU)"),
    "export": ("rexground.export.cli", "export a training run to an ONNX model package"),
    "bench": ("rexground.commands.bench", "run a benchmark and print its table"),
}


DESCRIPTION = "Ground free-text chest-CT findings as 3D masks, write challenge submissions, score them."
EPILOG = """\
first steps:
  rexground predict-case --ct CT --finding "Mass in the left upper lobe" --out mask.nii.gz --png overlay.png
  rexground show --ct CT --mask mask.nii.gz --out overlay.png
  rexground synth --out data/phantoms --cases 20     (phantom CTs in data/phantoms/ct_rate, masks, dataset.json)
  rexground evaluate --gt-dir GT --pred-dir PRED --dataset dataset.json --out metrics.json --html report.html

'rexground COMMAND --help' lists a command's options. train, export and 'bench phantoms' need torch
(scripts/setup-env.sh --train); every other command runs on the core install."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rexground",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"rexground {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def _version() -> str:
    from rexground import __version__

    return __version__


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        parser = build_parser()
        parser.parse_args(argv)  # prints help / version / an error for unknown commands
        parser.print_help()
        return 2
    name, rest = argv[0], argv[1:]
    module_name, help_text = COMMANDS[name]
    module = importlib.import_module(module_name)
    sub = argparse.ArgumentParser(prog=f"rexground {name}", description=help_text)
    module.add_arguments(sub)
    args = sub.parse_args(rest)
    from rexground.errors import RexgroundError

    try:
        return int(module.run(args) or 0)
    except RexgroundError as exc:
        print(f"rexground {name}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
