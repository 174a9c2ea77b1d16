"""Anatomy prior channels of the network input, torch-free so that onnxruntime inference builds the very
same channels (pass the result as ``anatomy=`` to ``rexground.infer.preprocess.prepare``).

Names (``InputSpec.anatomy_channels``, in channel order): ``lungs``, ``lung_right``, ``lung_left``,
``lung_envelope``, ``airways``, ``body``, ``pleural_envelope``, one channel per lobe, ``lobe_RUL``,
``lobe_RML``, ``lobe_RLL``, ``lobe_LUL``, ``lobe_lingula``, ``lobe_LLL``, and one per zone of both lungs,
``zone_<name>`` for every name of :data:`rexground.anatomy.ZONE_NAMES` (``zone_basal``, ``zone_posterior``,
...). Each is a 0/1 uint8 mask on the CT's canonical grid from :func:`rexground.anatomy.compute_anatomy` (or,
later, CT-RATE's TotalSegmentator masks mapped to the same names). They let "right lower lobe" be grounded
from few examples: the network only has to learn to read the lobe channel the sentence names; the zones
let "posterobasal segment" be read the same way (posterior + basal, summed by the anatomy gate).

The coordinate channels ``coord_height``, ``coord_depth``, ``coord_lateral`` (:data:`COORD_CHANNELS`) give
every voxel of a lung envelope its place in that lung's own frame (bottom to top, front to back, medial to
lateral): a segment is a part of its lobe by position ("superior segment of the LLL", "anterior basal"),
which a patch of a few centimetres cannot see for itself. They are uint8 levels too (0 outside the lung
envelopes, 1 ... 255 inside), so that every channel travels the same nearest-neighbour uint8 path;
:func:`channel_scale` maps the levels to (0, 1] where the network input is built.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rexground.anatomy.zones import ZONE_NAMES

LOBE_CHANNELS: tuple[str, ...] = (
    "lobe_RUL",
    "lobe_RML",
    "lobe_RLL",
    "lobe_LUL",
    "lobe_lingula",
    "lobe_LLL",
)
ZONE_CHANNELS: tuple[str, ...] = tuple(f"zone_{name}" for name in ZONE_NAMES)
COORD_CHANNELS: tuple[str, ...] = ("coord_height", "coord_depth", "coord_lateral")
COORD_LEVELS = 255  # a coordinate c in [0, 1] is stored as 1 + round(c * (COORD_LEVELS - 1))
ANATOMY_CHANNELS: tuple[str, ...] = (
    "lungs",
    "lung_right",
    "lung_left",
    "lung_envelope",
    "airways",
    "body",
    "pleural_envelope",
    *LOBE_CHANNELS,
    *ZONE_CHANNELS,
    *COORD_CHANNELS,
)
# What the anatomy gate reads in configs/real.toml and the learning benchmark: each lung, then each lobe.
SIDE_AND_LOBE_CHANNELS: tuple[str, ...] = ("lung_right", "lung_left", *LOBE_CHANNELS)


def check_channel_names(names: Sequence[str]) -> None:
    unknown = [n for n in names if n not in ANATOMY_CHANNELS]
    if unknown:
        raise ValueError(f"unknown anatomy channel(s) {unknown}; known: {', '.join(ANATOMY_CHANNELS)}")


def channel_scale(name: str) -> float:
    """What a channel's uint8 values are multiplied by in the network input: 1 for masks, 1 / 255 for the
    coordinate levels."""
    return 1.0 / COORD_LEVELS if name in COORD_CHANNELS else 1.0


def lung_coordinates(anat) -> dict[str, np.ndarray]:
    """The :data:`COORD_CHANNELS` on the anatomy's working grid, each lung in its own frame: height 0 at
    the lung's lowest slice and 1 at its apex, depth 0 at its most anterior and 1 at its most posterior
    extent (as :func:`rexground.anatomy.lobes.normalised_coordinates`, which the lobe model cuts at), and
    lateral 0 at its most medial column (towards the body's centre) and 1 at its most lateral one."""
    from rexground.anatomy.lobes import normalised_coordinates

    out = {name: np.zeros(anat.shape, np.uint8) for name in COORD_CHANNELS}
    body_x = np.flatnonzero(np.asarray(anat.body).any(axis=(0, 1)))
    centre_x = (body_x[0] + body_x[-1]) / 2 if body_x.size else anat.shape[2] / 2
    for side in ("right", "left"):
        env = np.asarray(anat.lung_envelope_of(side), bool)
        xs = np.flatnonzero(env.any(axis=(0, 1)))
        if xs.size == 0:
            continue
        zn, yn = normalised_coordinates(env)
        xn = (np.arange(anat.shape[2], dtype=np.float32) - xs[0]) / max(1, xs[-1] - xs[0])
        if (xs[0] + xs[-1]) / 2 < centre_x:  # this lung lies at smaller x: its medial side is its high x
            xn = 1.0 - xn
        for name, coord in zip(COORD_CHANNELS, (zn, yn, xn[None, None, :]), strict=True):
            levels = 1 + np.rint(np.clip(coord, 0.0, 1.0) * (COORD_LEVELS - 1))
            out[name][env] = np.broadcast_to(levels, env.shape)[env].astype(np.uint8)
    return out


def masks_from_anatomy(anat, names: Sequence[str]) -> dict[str, np.ndarray]:
    """Working-grid anatomy (``rexground.anatomy.Anatomy``) -> {name: uint8 array on the CT's grid} (0/1
    masks; levels for the coordinate channels, see :func:`channel_scale`)."""
    check_channel_names(names)
    out = {}
    coords = lung_coordinates(anat) if any(n in COORD_CHANNELS for n in names) else {}
    for name in names:
        if name.startswith("lobe_"):
            working = anat.lobe(name[len("lobe_") :])
        elif name.startswith("zone_"):
            working = anat.zone(name[len("zone_") :], "unspecified")  # both lungs' zone
        elif name in coords:
            working = coords[name]
        else:
            working = getattr(anat, name)
        out[name] = anat.to_ct_grid(np.asarray(working, dtype=np.uint8))
    return out


def anatomy_prior_masks(ct, names: Sequence[str]) -> dict[str, np.ndarray]:
    """The named prior masks of a :class:`rexground.io.CTVolume`, on its canonical grid."""
    if not names:
        return {}
    check_channel_names(names)
    from rexground.anatomy import compute_anatomy

    return masks_from_anatomy(compute_anatomy(ct), names)
