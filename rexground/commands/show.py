"""``rexground show``: an overlay PNG (axial, coronal, sagittal) of any CT and mask pair."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from rexground.errors import InputFileError, RexgroundError
from rexground.io import CTVolume, read_ct, read_mask_raw
from rexground.output_paths import PNG_SUFFIXES, output_file
from rexground.overlay import HEADER_NOTES, legend_lines, write_overlay


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
    parser.add_argument(
        "--finding", action="append", default=[], metavar="TEXT",
        help="finding text for the legend: one per channel shown, or one per channel of the file",
    )  # fmt: skip
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


def _captions(findings: list[str], channels: list[int], n_channels: int, default: str) -> list[str]:
    """The legend's finding text per channel shown: ``--finding`` given once per shown channel, or once per
    channel of the file (then the shown channels' own are picked); none given: ``default``."""
    if not findings:
        return [default] * len(channels)
    if len(findings) == len(channels):
        return findings
    if len(findings) == n_channels:
        return [findings[c] for c in channels]
    raise RexgroundError(
        f"--finding given {len(findings)} times: give it once per channel shown ({len(channels)}) "
        f"or once per channel of the mask ({n_channels})"
    )


def run(args: argparse.Namespace) -> int:
    output_file(args.out, PNG_SUFFIXES, "--out", example="overlay.png")
    ct = read_ct(args.ct)
    masks = masks_on_ct(args.mask, ct)
    channels = args.channel or list(range(len(masks)))
    for c in channels:
        if not 0 <= c < len(masks):
            raise InputFileError(args.mask, f"has {len(masks)} channel(s); channel {c} does not exist")
    captions = _captions(args.finding, channels, len(masks), f"{args.mask.name} (no --finding text)")
    shown = masks[channels]
    write_overlay(args.out, ct.hu, shown, ct.spacing_zyx, captions, geometry=ct.geometry, channels=channels)
    print(f"overlay written: {args.out}")
    for line in legend_lines(shown, ct.spacing_zyx, captions, channels)[HEADER_NOTES:]:
        print(f"  {line}")
    return 0
