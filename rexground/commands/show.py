"""``rexground show``: an overlay PNG (axial, coronal, sagittal) of any CT and mask pair."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from rexground.errors import InputFileError
from rexground.io import CTVolume, read_ct, read_mask_raw
from rexground.output_paths import PNG_SUFFIXES, output_file
from rexground.overlay import write_overlay


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ct", required=True, type=Path, help="CT: NIfTI/MHA/NRRD file or DICOM series folder"
    )
    parser.add_argument(
        "--mask", required=True, type=Path,
        help="3D mask on the CT's grid, or (F, ni, nj, nk) channels in raw order (submission, challenge label "
        "or the container's multi-component output)",
    )  # fmt: skip
    parser.add_argument("--out", required=True, type=Path, metavar="PNG", help="overlay picture to write")
    parser.add_argument("--finding", action="append", default=[], metavar="TEXT", help="caption per channel")
    parser.add_argument("--channel", type=int, action="append", help="show only these channels (repeatable)")


def masks_on_ct(mask_path: Path, ct: CTVolume) -> np.ndarray:
    """The mask file as (F, z, y, x) 0/1 uint8 on the CT's canonical grid; label values count as 1."""
    raw = read_mask_raw(mask_path)
    size = ct.geometry.size
    if raw.ndim == 3 and raw.shape == size:
        raw = raw[None]
    if raw.ndim != 4 or tuple(raw.shape[1:]) != size:
        raise InputFileError(
            mask_path, f"mask shape {raw.shape} fits neither {size} nor (F, *{size}) of the CT"
        )
    return (ct.geometry.to_canonical(raw) > 0).astype(np.uint8)


def run(args: argparse.Namespace) -> int:
    output_file(args.out, PNG_SUFFIXES, "--out", example="overlay.png")
    ct = read_ct(args.ct)
    masks = masks_on_ct(args.mask, ct)
    channels = args.channel or list(range(len(masks)))
    for c in channels:
        if not 0 <= c < len(masks):
            raise InputFileError(args.mask, f"has {len(masks)} channel(s); channel {c} does not exist")
    captions = args.finding or [f"{args.mask.name} channel {c}" for c in channels]
    write_overlay(args.out, ct.hu, masks[channels], ct.spacing_zyx, captions)
    print(f"overlay written: {args.out}")
    return 0
