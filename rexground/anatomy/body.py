"""Body mask without the patient table.

Soft tissue and bone (above -500 HU) form the body, the table and blankets. An opening of ~3 mm cuts
the thin bridges between body and table (the table is a thin plate under the back, usually separated by
air or foam), the largest 3D component is the body, and a dilation re-grown inside the threshold restores
the skin line that the opening rounded off. Holes are filled per axial slice, so the lungs and airways are
inside the body while air outside the patient is not.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from . import morphology as mm

BODY_HU = -500.0
# In-plane 4-neighbour cross, flat in z: on the ~3 mm coarse grid one step is ~3 mm. An opening of one
# step cuts table bridges thinner than ~6 mm; two steps of regrowth restore the skin line it rounded off.
_CROSS = ndimage.generate_binary_structure(2, 1)[None]
_OPEN_STEPS = 1
_REGROW_STEPS = 2


def body_mask(hu: np.ndarray, spacing: tuple[float, float, float]) -> np.ndarray:
    """Boolean body mask (filled per axial slice), table removed, on the grid of ``hu``. The work is done on
    the coarse (about 3 mm) grid; the skin line is then taken from the threshold at full resolution
    within one coarse voxel (in-plane) of the coarse body."""
    dense = hu > BODY_HU
    if not dense.any():
        return np.zeros(hu.shape, dtype=bool)
    f = mm.coarse_factors(spacing)
    body_c = _body_mask_on(mm.down_majority(dense, f))
    near = mm.up(ndimage.binary_dilation(body_c, _CROSS), f, hu.shape)
    inner = mm.up(ndimage.binary_erosion(body_c, _CROSS), f, hu.shape)
    return mm.fill_holes_per_slice((dense & near) | inner)


def _body_mask_on(dense: np.ndarray) -> np.ndarray:
    opened = ndimage.binary_opening(dense, _CROSS, iterations=_OPEN_STEPS)
    core = mm.largest_components(opened if opened.any() else dense, keep=1)
    body = ndimage.binary_dilation(core, _CROSS, iterations=_REGROW_STEPS) & dense
    body = mm.largest_components(body | core, keep=1)
    return mm.fill_holes_per_slice(body)
