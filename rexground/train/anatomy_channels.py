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
)
# What the anatomy gate reads in configs/real.toml and the learning benchmark: each lung, then each lobe.
SIDE_AND_LOBE_CHANNELS: tuple[str, ...] = ("lung_right", "lung_left", *LOBE_CHANNELS)


def check_channel_names(names: Sequence[str]) -> None:
    unknown = [n for n in names if n not in ANATOMY_CHANNELS]
    if unknown:
        raise ValueError(f"unknown anatomy channel(s) {unknown}; known: {', '.join(ANATOMY_CHANNELS)}")


def masks_from_anatomy(anat, names: Sequence[str]) -> dict[str, np.ndarray]:
    """Working-grid anatomy (``rexground.anatomy.Anatomy``) -> {name: uint8 mask on the CT's grid}."""
    check_channel_names(names)
    out = {}
    for name in names:
        if name.startswith("lobe_"):
            working = anat.lobe(name[len("lobe_") :])
        elif name.startswith("zone_"):
            working = anat.zone(name[len("zone_") :], "unspecified")  # both lungs' zone
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
