"""Spatial augmentation of a training batch: each patch, with probability ``p``, is scaled and rotated in
the axial plane about its centre, with the same transform for its image channels and for every prompt's
target and weight.

Why: a training set of a few hundred phantoms (or a few thousand scans) is memorised long before the
network has learnt what a lesion looks like in a new chest (on the learning benchmark, the 30-minute network
trained on 160 phantoms scored 0.71 per-case Dice on its own training phantoms and 0.52 on held-out ones).
Why only these: scale and a small rotation are what differs between two patients' chests. Mirroring is never done: a flipped chest swaps
"right" and "left" (a z or y flip swaps upper and lower, anterior and posterior), so the sentence would no
longer describe the patch.

The CT channel is resampled linearly (edges replicated), the anatomy channels, targets and weights by
nearest neighbour, so masks stay masks. Voxels that the transform brings in from outside the patch get
weight 0: nothing is known there. The transform is computed in millimetres (``spacing_zyx``), so a rotation
stays a rotation on anisotropic grids.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F


def random_affines(
    rng: np.random.Generator,
    n: int,
    shape_zyx: Sequence[int],
    spacing_zyx: Sequence[float],
    p: float,
    scale_range: tuple[float, float],
    max_rotation_deg: float,
) -> torch.Tensor:
    """(n, 3, 4) ``affine_grid`` matrices (x, y, z order, normalised coordinates): the identity, or with
    probability ``p`` an isotropic zoom by ``s`` in ``scale_range`` and a rotation about the z axis by up to
    ``max_rotation_deg`` degrees. Always draws the same numbers per patch, so batches stay a pure function
    of the generator's seed whatever ``p`` says."""
    half = np.array(
        [shape_zyx[2] * spacing_zyx[2], shape_zyx[1] * spacing_zyx[1], shape_zyx[0] * spacing_zyx[0]]
    )
    half = half / 2.0  # mm from the centre to the edge, per (x, y, z) axis
    out = np.zeros((n, 3, 4), np.float64)
    for i in range(n):
        apply, s, deg = (
            rng.random() < p,
            rng.uniform(*scale_range),
            rng.uniform(-max_rotation_deg, max_rotation_deg),
        )
        if not apply:
            out[i, :, :3] = np.eye(3)
            continue
        a = math.radians(deg)
        rot = np.array([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0], [0.0, 0.0, 1.0]])
        # output normalised coords -> mm, rotate and shrink by s (zoom in for s > 1), -> input normalised coords
        out[i, :, :3] = np.diag(1.0 / half) @ (rot / s) @ np.diag(half)
    return torch.from_numpy(out.astype(np.float32))


def spatial_augment(
    image: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor,
    prompts_per_image: int,
    affines: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Apply one affine per image (``affines``, from :func:`random_affines`) to ``image`` (B, C, Z, Y, X;
    channel 0 the CT, the rest masks) and to the ``prompts_per_image`` consecutive rows of ``target`` and
    ``weight`` (B * P, 1, Z, Y, X) that belong to it. Identity affines leave their rows bit-identical."""
    moved = [i for i in range(affines.shape[0]) if not torch.equal(affines[i, :, :3], torch.eye(3))]
    if not moved:
        return image, target, weight
    image, target, weight = image.clone(), target.clone(), weight.clone()
    idx = torch.as_tensor(moved)
    grid = F.affine_grid(affines[idx], [len(moved), 1, *image.shape[2:]], align_corners=False)
    image[idx, :1] = F.grid_sample(
        image[idx, :1], grid, mode="bilinear", padding_mode="border", align_corners=False
    )
    if image.shape[1] > 1:
        image[idx, 1:] = F.grid_sample(
            image[idx, 1:], grid, mode="nearest", padding_mode="zeros", align_corners=False
        )
    rows = (idx[:, None] * prompts_per_image + torch.arange(prompts_per_image)[None]).reshape(-1)
    grid_p = grid.repeat_interleave(prompts_per_image, dim=0)
    target[rows] = F.grid_sample(
        target[rows], grid_p, mode="nearest", padding_mode="zeros", align_corners=False
    )
    weight[rows] = F.grid_sample(
        weight[rows], grid_p, mode="nearest", padding_mode="zeros", align_corners=False
    )
    return image, target, weight
