"""Connected components exactly as the official ReXGrounding evaluation defines them.

18-connectivity (face and edge neighbours, not corners); components under ``min_size`` voxels are removed,
the rest relabelled 1..n in label order, and only the ``max_keep`` largest kept (a tie in size keeps the
component with the lower label). The evaluator and our own postprocessing share this one implementation,
so a prediction that passed our postprocessing is unchanged by the evaluator's filtering.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

STRUCTURE_18 = ndimage.generate_binary_structure(3, 2)
MIN_COMPONENT_VOXELS = 10
MAX_COMPONENTS = 50


def label_18(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """Label the non-zero voxels of a 3D array into 18-connected components (int32 labels, count)."""
    labels, n = ndimage.label(np.asarray(mask) != 0, structure=STRUCTURE_18)
    return labels.astype(np.int32, copy=False), int(n)


def filter_components(
    mask: np.ndarray, min_size: int = MIN_COMPONENT_VOXELS, max_keep: int = MAX_COMPONENTS
) -> tuple[np.ndarray, int]:
    """Official filtering: returns (labels 1..n of the kept components, n). Label order is the scan order
    of the components that survive, as the official script relabels after removing small ones."""
    labels, n = label_18(mask)
    if n == 0:
        return labels, 0
    sizes = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    survivors = np.flatnonzero(sizes >= min_size)  # 0-based old label - 1, ascending
    if survivors.size > max_keep:
        # Stable sort by size descending keeps the lower label first on ties.
        order = np.argsort(-sizes[survivors], kind="stable")
        survivors = np.sort(survivors[order[:max_keep]])
    lut = np.zeros(n + 1, dtype=np.int32)
    lut[survivors + 1] = np.arange(1, survivors.size + 1, dtype=np.int32)
    return lut[labels], int(survivors.size)
