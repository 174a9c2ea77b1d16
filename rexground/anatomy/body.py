"""Body mask without the patient table.

Soft tissue and bone (above -500 HU) form the body, the table and blankets. An opening of a few mm cuts
the thin bridges between body and table (the table is a thin plate under the back, usually separated by
air or foam), the largest 3D component is the body, and a dilation re-grown inside the threshold restores
the skin line that the opening rounded off. Holes are filled per axial slice, so the lungs and airways are
inside the body while air outside the patient is not.
"""

from __future__ import annotations

import numpy as np

from . import morphology as mm

BODY_HU = -500.0
_OPEN_MM = 4.0  # cuts table bridges thinner than ~8 mm
_REGROW_MM = 6.0


def body_mask(hu: np.ndarray, spacing: tuple[float, float, float]) -> np.ndarray:
    """Boolean body mask (filled per axial slice), table removed, on the grid of ``hu``."""
    dense = hu > BODY_HU
    if not dense.any():
        return np.zeros(hu.shape, dtype=bool)
    opened = mm.open_(dense, _OPEN_MM, spacing, per_slice=True)
    core = mm.largest_components(opened if opened.any() else dense, keep=1)
    body = mm.dilate(core, _REGROW_MM, spacing, per_slice=True) & dense
    body = mm.largest_components(body | core, keep=1)
    return mm.fill_holes_per_slice(body)
