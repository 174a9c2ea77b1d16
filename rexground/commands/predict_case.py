"""``rexground predict-case``: ground one or more findings in one CT and write the mask (and an overlay)."""

from __future__ import annotations

import argparse
from pathlib import Path

from rexground.engines.select import DEVICES, ENGINE_KINDS, TILE_STEP_HELP, choose_engine, parse_tile_step
from rexground.logs import setup_cli_logging
from rexground.output_paths import JSON_SUFFIXES, MASK_SUFFIXES, PNG_SUFFIXES, output_file
from rexground.overlay import write_overlay
from rexground.predictor import Predictor, validate_findings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ct", required=True, type=Path, help="CT: NIfTI/MHA/NRRD file or DICOM series folder"
    )
    parser.add_argument(
        "--finding", required=True, action="append", metavar="TEXT",
        help="finding sentence; repeat for several findings of this scan (one output channel each)",
    )  # fmt: skip
    parser.add_argument(
        "--out", required=True, type=Path, metavar="MASK",
        help="output mask (.nii.gz/.mha/.nrrd). One finding: 3D uint8 with the CT's geometry. "
        "Several: (F, ni, nj, nk) uint8 in the CT's raw array order (the submission layout)",
    )  # fmt: skip
    parser.add_argument(
        "--engine",
        choices=ENGINE_KINDS,
        default="auto",
        help="auto: the network when a model package is given or at /opt/ml/model, else rules",
    )
    parser.add_argument("--model", type=Path, metavar="DIR", help="model package folder (network engine)")
    parser.add_argument("--device", choices=DEVICES, default="auto", help="network engine device")
    parser.add_argument("--tile-step", type=parse_tile_step, metavar="FRACTION", help=TILE_STEP_HELP)
    parser.add_argument(
        "--png", type=Path, metavar="OVERLAY", help="also write an axial/coronal/sagittal overlay"
    )
    parser.add_argument(
        "--json", type=Path, metavar="RESULTS", help="also write the per-finding record as JSON"
    )
    parser.add_argument(
        "--resample-uneven-slices",
        action="store_true",
        help="a DICOM series whose slices are unevenly spaced or have gaps is resampled onto even slices "
        "(with a warning) instead of refused; duplicate slices are always refused",
    )


def run(args: argparse.Namespace) -> int:
    setup_cli_logging()  # log lines through tqdm.write: the progress bar stays whole
    findings = validate_findings(args.finding, "--finding")  # before the slow parts
    output_file(args.out, MASK_SUFFIXES, "--out", example="mask.nii.gz")
    if args.png:
        output_file(args.png, PNG_SUFFIXES, "--png", example="overlay.png")
    if args.json:
        output_file(args.json, JSON_SUFFIXES, "--json", example="results.json")
    choice = choose_engine(args.engine, args.model, args.device, tile_step=args.tile_step)
    uneven = "resample" if args.resample_uneven_slices else "refuse"
    case = Predictor(choice.engine, choice.reason).predict_file(args.ct, findings, uneven_slices=uneven)
    record = case.write(args.out, several="channels", results_path=args.json)
    for f in record.findings:
        print(f"  [{f.channel}] {f.voxels} voxels, {f.volume_ml:.2f} ml, {f.components} part(s): {f.text}")
    print(
        f"mask written: {record.output}  ({record.layout}, CT read in {record.seconds_read:.1f} s, predicted in "
        f"{record.seconds_predict:.1f} s)"
    )
    if args.json:
        print(f"results written: {args.json}")
    if args.png:
        write_overlay(
            args.png, case.ct.hu, case.masks(), case.ct.spacing_zyx, findings, geometry=case.ct.geometry
        )
        print(f"overlay written: {args.png}")
    return 0
