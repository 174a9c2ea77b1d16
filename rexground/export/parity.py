"""Parity of an exported variant with the torch network it came from, as recorded in the manifest.

(1) The largest absolute logit difference against torch on tiles cut from phantom scans and on random
tiles; (2) whole phantom scans run through the inference path twice, once with torch as the tile backend
(``rexground.train.tile_backend``) and once with onnxruntime, and their final masks compared: the masks
come from ``rexground.infer.masks``, the route the network engine and training validation use, so "no
differing voxel" means the package answers what the trained network answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from torch import nn

from rexground.infer.conditions import Conditions, TextConditioner
from rexground.infer.masks import scan_masks
from rexground.infer.onnx_session import CpuOrtBackend, make_session
from rexground.infer.package import ModelPackage, Parity
from rexground.infer.preprocess import prepare
from rexground.infer.scan import network_logits
from rexground.text.parser import parse_finding
from rexground.train.tile_backend import TorchTileBackend

# Parity gates: (max abs logit difference, largest fraction of mask voxels allowed to differ).
PARITY_TOLERANCE = {"fp32": (1e-3, 1e-3), "fp16": (0.25, 0.02)}


@dataclass
class ParityScan:
    """A canonical CT (HU, padding included) and finding sentences to run end to end."""

    hu: np.ndarray
    spacing_zyx: tuple[float, float, float]
    findings: list[str]
    anatomy: dict[str, np.ndarray] | None = None  # the prior masks a model with anatomy channels reads


def with_anatomy(scan: ParityScan, channels: Sequence[str]) -> ParityScan:
    """The scan with the named anatomy prior masks computed from its CT, as inference computes them."""
    from rexground.anatomy import compute_anatomy_from_array
    from rexground.infer.channels import masks_from_anatomy

    anatomy = compute_anatomy_from_array(scan.hu, scan.spacing_zyx)
    return ParityScan(scan.hu, scan.spacing_zyx, scan.findings, masks_from_anatomy(anatomy, channels))


def synth_scans(n: int, seed: int = 0) -> list[ParityScan]:
    """Phantoms of ``rexground.synth`` (anatomy, all finding categories, their own report sentences)."""
    from rexground.synth import generate_case

    scans = []
    for i in range(n):
        case = generate_case(seed + i, "small")
        scans.append(ParityScan(case.hu, tuple(case.spacing_zyx), [f.text for f in case.findings]))  # type: ignore[arg-type]
    return scans


def phantom_scans(n: int, patch_mm: Sequence[float], seed: int = 0) -> list[ParityScan]:
    """Small chest-like phantoms: air with -2048 padding outside a round field of view, a body of soft tissue,
    two lungs, a nodule, a ground-glass patch and dependent fluid; about 1.5 patches wide per axis so the
    sliding window overlaps, pads and meets borders. Enough to compare two implementations of one network."""
    rng = np.random.default_rng(seed)
    scans = []
    for i in range(n):
        spacing = (2.5, 1.6 + 0.2 * i, 1.6 + 0.2 * i)
        shape = tuple(max(8, int(1.5 * p / s)) for p, s in zip(patch_mm, spacing, strict=True))
        z, y, x = np.meshgrid(*[np.linspace(-1, 1, s, dtype=np.float32) for s in shape], indexing="ij")
        hu = np.full(shape, -1000.0, np.float32)
        body = (y / 0.8) ** 2 + (x / 0.9) ** 2 < 1
        hu[body] = 40.0
        right = ((x + 0.4) / 0.33) ** 2 + (y / 0.6) ** 2 + (z / 0.95) ** 2 < 1
        left = ((x - 0.4) / 0.33) ** 2 + (y / 0.6) ** 2 + (z / 0.95) ** 2 < 1
        hu[right | left] = -850.0
        nodule = (x + 0.4 - 0.1 * i) ** 2 + (y + 0.1) ** 2 + (z - 0.3) ** 2 < 0.12**2
        hu[nodule] = 30.0
        ggo = ((x - 0.45) ** 2 + (y - 0.1) ** 2 + (z + 0.4) ** 2 < 0.2**2) & left
        hu[ggo] = -550.0
        fluid = left & (y > 0.4)
        hu[fluid] = 10.0
        hu += rng.normal(0, 25, shape).astype(np.float32)
        hu[(y**2 + x**2) > 1.0] = -2048.0  # scanner padding outside the reconstruction circle
        findings = [
            "Solid nodule in the right upper lobe measuring 8 mm.",
            "Patchy ground-glass opacity in the left lower lobe.",
            "Small left pleural effusion.",
        ]
        scans.append(ParityScan(np.round(hu).astype(np.int16), spacing, findings))  # type: ignore[arg-type]
    return scans


def tile_parity(
    torch_backend: TorchTileBackend, ort_backend: CpuOrtBackend, tiles: np.ndarray, conditions: Conditions,
    batch_size: int = 2,
) -> float:  # fmt: skip
    """Largest |logit_torch - logit_onnx| over the tiles and every finding of ``conditions``."""
    torch_backend.set_conditions(conditions)
    ort_backend.set_conditions(conditions)
    worst = 0.0
    for i in range(0, len(tiles), batch_size):
        batch = np.ascontiguousarray(tiles[i : i + batch_size])
        t_feats = torch_backend.encode(batch)
        o_feats = ort_backend.encode(batch)
        for f in range(conditions.n_findings):
            a = torch_backend.decode(t_feats, f)
            b = ort_backend.decode(o_feats, f).astype(np.float32)
            worst = max(worst, float(np.abs(a - b).max()))
    return worst


def check_parity(
    net: nn.Module,
    package: ModelPackage,
    variant: str,
    scans: Sequence[ParityScan],
    conditioner: TextConditioner,
    *,
    n_random_tiles: int = 4,
    batch_size: int = 2,
    seed: int = 0,
) -> Parity:
    """Compare ``variant``'s graphs with torch on tiles and on whole phantom scans (CPU provider)."""
    m = package.manifest
    enc_path, dec_path = package.graph_paths(variant)
    ort_backend = CpuOrtBackend(
        make_session(enc_path, "cpu"), make_session(dec_path, "cpu"), m.graphs[variant]
    )
    torch_backend = TorchTileBackend(net)
    rng = np.random.default_rng(seed)
    worst = 0.0
    tiles_compared = 0
    mismatched = 0
    union = 0
    findings = 0
    for scan in scans:
        cond = conditioner.conditions([parse_finding(t) for t in scan.findings])
        # The scan's network input, prepared once as the engine prepares it (run_network), for both backends
        # and for the tiles below.
        prepared = prepare(
            scan.hu, scan.spacing_zyx, target_spacing=m.target_spacing, norm=m.normalisation, crop=m.crop,
            channels=m.input_channels, anatomy=scan.anatomy,
        )  # fmt: skip
        results = [
            network_logits(
                prepared, backend, cond, patch_size=m.patch_size, tile_step=m.tile_step, batch_size=batch_size
            )
            for backend in (torch_backend, ort_backend)
        ]
        # The final masks of both, by the route the engine answers with (postprocessed, on the CT grid).
        for a, b in zip(
            scan_masks(results[0], m.threshold), scan_masks(results[1], m.threshold), strict=True
        ):
            mismatched += int(np.count_nonzero(a != b))
            union += int(np.count_nonzero(a | b))
            findings += 1
        worst = max(worst, float(np.abs(results[0].logits - results[1].logits).max()))
        # Tiles cut from the scan's network input: real intensities, the encoder's usual range.
        image = prepared.image
        tiles = []
        for _ in range(2):
            start = [
                int(rng.integers(0, max(1, s - p + 1)))
                for s, p in zip(image.shape[1:], m.patch_size, strict=True)
            ]
            tile = np.zeros((image.shape[0], *m.patch_size), np.float32)
            src = image[
                :,
                start[0] : start[0] + m.patch_size[0],
                start[1] : start[1] + m.patch_size[1],
                start[2] : start[2] + m.patch_size[2],
            ]
            tile[:, : src.shape[1], : src.shape[2], : src.shape[3]] = src
            tiles.append(tile)
        worst = max(worst, tile_parity(torch_backend, ort_backend, np.stack(tiles), cond, batch_size))
        tiles_compared += len(tiles)
    if n_random_tiles:
        random_tiles = rng.normal(size=(n_random_tiles, len(m.input_channels), *m.patch_size)).astype(
            np.float32
        )
        cond = Conditions(
            rng.normal(size=(2, m.text_embedding_dim)).astype(np.float32) / np.sqrt(m.text_embedding_dim),
            rng.random((2, m.query_feature_dim)).astype(np.float32),
        )
        worst = max(worst, tile_parity(torch_backend, ort_backend, random_tiles, cond, batch_size))
        tiles_compared += n_random_tiles
    max_diff, max_fraction = PARITY_TOLERANCE.get(variant, PARITY_TOLERANCE["fp16"])
    passed = worst <= max_diff and mismatched <= max_fraction * max(union, 1)
    return Parity(
        max_abs_logit_diff=worst, tiles_compared=tiles_compared, scans_compared=len(scans),
        findings_compared=findings, mismatched_mask_voxels=mismatched, masks_identical=mismatched == 0,
        passed=passed,
    )  # fmt: skip
