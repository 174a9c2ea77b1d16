"""Test helper: write an array in raw order (ITK index order, as the challenge's files are) to an image file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk


def write_raw(path: Path, raw: np.ndarray, spacing=(1.0, 1.0, 1.0), direction=None) -> Path:
    """3D arrays get ``spacing`` (and ``direction``); other dimensions keep the identity header."""
    image = sitk.GetImageFromArray(np.ascontiguousarray(raw.transpose()), isVector=False)
    if raw.ndim == 3:
        image.SetSpacing(spacing)
        if direction is not None:
            image.SetDirection(direction)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path), useCompression=True)
    return path
