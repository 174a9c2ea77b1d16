"""``rexground predict-case``: ground one or more findings in one CT and write the mask (and an overlay)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from rexground.engines.select import DEVICES, ENGINE_KINDS, TILE_STEP_HELP, choose_engine, parse_tile_step
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


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    findings = validate_findings(args.finding, "--finding")  # before the slow parts
    choice = choose_engine(args.engine, args.model, args.device, tile_step=args.tile_step)
    case = Predictor(choice.engine, choice.reason).predict_file(args.ct, findings)
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
        write_overlay(args.png, case.ct.hu, case.masks(), case.ct.spacing_zyx, findings)
        print(f"overlay written: {args.png}")
    return 0
