"""Classical chest anatomy (no weights): body, lungs, left/right, airways, envelopes, lobes and zones.

Usage::

    from rexground.anatomy import compute_anatomy, Anatomy, LOBE_LABELS
    anat = compute_anatomy(ct, working_spacing_mm=1.5)    # ct: rexground.io.CTVolume
    anat.lung_left, anat.lungs, anat.lobes == LOBE_LABELS["RLL"], anat.zone("basal", side="left")
    anat.region(side="right", lobes=("RLL",), zones=("posterior",))
    mask_ct = anat.to_ct_grid(mask_working)               # exact CT canonical shape

Everything lives on a *working grid* (``anat.shape``, ``anat.spacing_zyx``): each axis finer than about
``working_spacing_mm`` is reduced so that its voxels tile the CT's extent exactly; coarser axes (thick
slices) are kept. ``to_ct_grid`` (nearest) and ``from_ct_grid`` (linear or nearest) map between the two
grids exactly (see :mod:`rexground.anatomy.grid`). Arrays are canonical (z, y, x): z inferior->superior,
y anterior->posterior, x patient right->left (the right lung has the lower x).

Attributes (bool unless said otherwise, all on the working grid):

* ``hu`` float32 HU (padding clipped to -1024), ``body`` (table removed, filled per slice)
* ``lungs`` = ``lung_right | lung_left``: aerated lung plus what it surrounds in each axial slice (vessels,
  intrapulmonary bronchi, nodules), without the trachea and the bronchi outside the lungs
* ``airways``: lumen of the trachea and main/lobar bronchi (empty when no trachea is in view)
* ``lung_envelope`` (``lung_envelope_right`` / ``_left``): the lungs plus dense lesions that replaced lung
  at the pleura, mediastinum or hilum (a tumour is not carved out), see :mod:`.envelopes`
* ``pleural_envelope``: where pleural fluid or air can collect; ``mediastinum`` (approximate); ``thorax``
  (per-slice convex hull of both lungs)
* ``lobes`` uint8, :data:`LOBE_LABELS`, over the lung envelope (model in :mod:`.lobes`)
* ``hemithorax(side)``: voxels nearer that side's lung envelope than the other's (inside the body)
* ``zone(name, side)``: one of :data:`ZONE_NAMES` (definitions in :mod:`.zones`)
* ``region(side, lobes, zones)``: see its docstring
* Arrays returned by attributes, ``zone`` and ``hemithorax`` are shared (cached): copy before modifying.
* ``info``: how things were found (split method, airway threshold, CPU seconds per step)
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from . import airways as _airways
from . import body as _body
from . import envelopes as _envelopes
from . import lobes as _lobes
from . import lungs as _lungs
from . import morphology as mm
from . import zones as _zones
from .grid import WorkingGrid
from .lobes import LOBE_LABELS, LOBES_OF_SIDE
from .zones import ZONE_NAMES

__all__ = ["LOBE_LABELS", "QUERY_LOBE_LABELS", "SIDES", "ZONE_NAMES", "Anatomy", "compute_anatomy", "compute_anatomy_from_array"]

SIDES: tuple[str, ...] = ("left", "right", "bilateral", "unspecified")
# A lobe named in a sentence -> the label parts it covers: "LUL" is the anatomical left upper lobe, which
# contains the lingula (the parser's contract, rexground.text.parser); "lingula" alone is only its part.
QUERY_LOBE_LABELS: dict[str, tuple[int, ...]] = {
    name: (label, LOBE_LABELS["lingula"]) if name == "LUL" else (label,) for name, label in LOBE_LABELS.items()
}
_HILUM_MARGIN_MM = 15.0  # perihilar and pleural zones may leave the lung envelope by this much
_PLEURAL_NEAR_LOBE_MM = 30.0
DEFAULT_WORKING_SPACING_MM = 1.5


@dataclass(eq=False)
class Anatomy:
    grid: WorkingGrid
    hu: np.ndarray
    body: np.ndarray
    airways: np.ndarray
    lung_right: np.ndarray
    lung_left: np.ndarray
    lung_envelope_right: np.ndarray
    lung_envelope_left: np.ndarray
    mediastinum: np.ndarray
    thorax: np.ndarray
    pleural_envelope: np.ndarray
    lobes: np.ndarray
    hilum_right: tuple[float, float, float] | None
    hilum_left: tuple[float, float, float] | None
    info: dict[str, Any] = field(default_factory=dict)
    _cache: dict[tuple[str, str], np.ndarray] = field(default_factory=dict, repr=False)

    # -- grid -------------------------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int, int]:
        return self.grid.shape

    @property
    def spacing_zyx(self) -> tuple[float, float, float]:
        return self.grid.spacing

    @property
    def ct_shape(self) -> tuple[int, int, int]:
        return self.grid.ct_shape

    def to_ct_grid(self, mask_working: np.ndarray) -> np.ndarray:
        """Working-grid array -> the CT's canonical grid (nearest neighbour, exact shape, dtype kept)."""
        return self.grid.to_ct(mask_working)

    def from_ct_grid(self, array_ct: np.ndarray, order: int = 0) -> np.ndarray:
        """CT-grid array -> working grid: order 0 nearest (masks, labels), order 1 linear (float32)."""
        return self.grid.from_ct(array_ct, order=order)

    # -- combined masks ---------------------------------------------------------------------------------
    @cached_property
    def lungs(self) -> np.ndarray:
        return self.lung_right | self.lung_left

    @cached_property
    def lung_envelope(self) -> np.ndarray:
        return self.lung_envelope_right | self.lung_envelope_left

    def lung_envelope_of(self, side: str = "unspecified") -> np.ndarray:
        _check_side(side)
        if side == "right":
            return self.lung_envelope_right
        if side == "left":
            return self.lung_envelope_left
        return self.lung_envelope

    def hemithorax(self, side: str) -> np.ndarray:
        """Body voxels nearer the ``side`` lung envelope than the other one (the whole body otherwise)."""
        _check_side(side)
        if side not in ("left", "right"):
            return self.body
        key = ("_hemithorax", side)
        if key not in self._cache:
            # on the coarse grid: the border between the hemithoraces runs through the mediastinum, where
            # a voxel more or less does not matter; inside each envelope the side is exact
            f = mm.coarse_factors(self.spacing_zyx)
            sp_c = mm.coarse_spacing(self.spacing_zyx, f)
            d_r = mm.distance_to(mm.down_any(self.lung_envelope_right, f), sp_c)
            d_l = mm.distance_to(mm.down_any(self.lung_envelope_left, f), sp_c)
            right = (mm.up(d_r <= d_l, f, self.shape) | self.lung_envelope_right) & ~self.lung_envelope_left
            right &= self.body
            self._cache[("_hemithorax", "right")] = right
            self._cache[("_hemithorax", "left")] = self.body & ~right
        return self._cache[key]

    def lobe(self, name: str) -> np.ndarray:
        if name not in LOBE_LABELS:
            raise ValueError(f"unknown lobe {name!r}; known: {', '.join(LOBE_LABELS)}")
        return self.lobes == LOBE_LABELS[name]

    # -- zones and regions ------------------------------------------------------------------------------
    def zone(self, name: str, side: str = "unspecified") -> np.ndarray:
        """Zone ``name`` (see :mod:`.zones`) on ``side``; "bilateral"/"unspecified" give both lungs'."""
        _check_side(side)
        if name not in ZONE_NAMES:
            raise ValueError(f"unknown zone {name!r}; known: {', '.join(ZONE_NAMES)}")
        key = (name, side)
        if key in self._cache:
            return self._cache[key]
        if side in ("left", "right"):
            env = self.lung_envelope_of(side)
            other = self.lung_envelope_of("left" if side == "right" else "right")
            hilum = self.hilum_right if side == "right" else self.hilum_left
            out = _zones.side_zones(
                name, env, other, self.thorax, self.lobes, self.pleural_envelope & self.hemithorax(side),
                self.body, hilum, self.spacing_zyx,
            )  # fmt: skip
        else:
            out = self.zone(name, "right") | self.zone(name, "left")
        self._cache[key] = out
        return out

    def region(
        self,
        side: str = "unspecified",
        lobes: tuple[str, ...] | list[str] = (),
        zones: tuple[str, ...] | list[str] = (),
    ) -> np.ndarray:
        """Where a finding with this place may be: the union of ``lobes`` (or the side's lung envelope when no
        lobe is named), restricted to ``side``, intersected with every zone in ``zones``.

        Lobes are read as a finding sentence means them (``QUERY_LOBE_LABELS``): "LUL" is the whole left upper
        lobe, lingula included, while "lingula" is the lingula alone; :meth:`lobe` answers label by label.
        Rules: lobes on the other side than a named left/right ``side`` are ignored (and the side's envelope
        used if none remains); for the ``pleural`` and ``perihilar`` zones the base is first widened by 15 mm
        (30 mm for pleural) within the side's hemithorax, since those places lie partly outside the lung.
        The answer is never empty while the lungs are found: if the intersection of all zones is empty the
        union of the zones within the base is used, then the base alone, then the side's lung envelope, then
        the body.
        """
        _check_side(side)
        for lobe in lobes:
            if lobe not in LOBE_LABELS:
                raise ValueError(f"unknown lobe {lobe!r}; known: {', '.join(LOBE_LABELS)}")
        if side in ("left", "right"):
            lobes = tuple(lobe for lobe in lobes if lobe in LOBES_OF_SIDE[side])
        hemi = self.hemithorax(side)
        env = self.lung_envelope_of(side)
        if lobes:
            base = np.isin(self.lobes, [label for lobe in lobes for label in QUERY_LOBE_LABELS[lobe]]) & hemi
            if not base.any():
                base = env
        else:
            base = env
        result = base
        zone_masks = []
        for name in zones:
            z = self.zone(name, side)
            if name in ("pleural", "perihilar"):
                reach = _PLEURAL_NEAR_LOBE_MM if name == "pleural" else _HILUM_MARGIN_MM
                widened = (mm.dilate(base, reach, self.spacing_zyx) & hemi) if base.any() else hemi
                zone_here = z & widened
            else:
                zone_here = z & base
            zone_masks.append(zone_here)
            result = result & z if name not in ("pleural", "perihilar") else (result | zone_here) & zone_here
        for candidate in (result, _union(zone_masks, base.shape), base, env, self.body):
            if candidate.any():
                return candidate
        return result

    def __repr__(self) -> str:
        return f"Anatomy(shape={self.shape}, spacing_zyx={tuple(round(s, 3) for s in self.spacing_zyx)}, info={self.info})"


def _union(masks: list[np.ndarray], shape) -> np.ndarray:
    out = np.zeros(shape, dtype=bool)
    for m in masks:
        out |= m
    return out


def _check_side(side: str) -> None:
    if side not in SIDES:
        raise ValueError(f"unknown side {side!r}; known: {', '.join(SIDES)}")


def compute_anatomy(ct, working_spacing_mm: float = DEFAULT_WORKING_SPACING_MM) -> Anatomy:
    """Anatomy of a :class:`rexground.io.CTVolume` (canonical ``hu`` and ``spacing_zyx``)."""
    return compute_anatomy_from_array(ct.hu, ct.spacing_zyx, working_spacing_mm)


def compute_anatomy_from_array(
    hu_zyx: np.ndarray,
    spacing_zyx: tuple[float, float, float],
    working_spacing_mm: float = DEFAULT_WORKING_SPACING_MM,
) -> Anatomy:
    """Anatomy of a canonical (z, y, x) HU array (any dtype; padding below -1024 is clipped)."""
    hu_zyx = np.asarray(hu_zyx)
    if hu_zyx.ndim != 3:
        raise ValueError(f"expected a 3D (z, y, x) CT array, got shape {hu_zyx.shape}")
    timings: dict[str, float] = {}
    t = time.process_time()

    def lap(step: str) -> None:
        nonlocal t
        now = time.process_time()
        timings[step] = round(now - t, 3)
        t = now

    grid = WorkingGrid.for_ct(tuple(hu_zyx.shape), tuple(float(s) for s in spacing_zyx), working_spacing_mm)
    sp = grid.spacing
    hu = grid.hu_from_ct(hu_zyx)
    lap("resample")
    body = _body.body_mask(hu, sp)
    lap("body")
    airways, airway_info = _airways.airway_mask(hu, body, sp)
    lap("airways")
    cand = _lungs.lung_candidates(hu, body, airways, sp)
    lungs = _lungs.select_lungs(cand, sp, hu)
    right, left, split_method = _lungs.split_left_right(lungs, body, sp)
    right = mm.fill_holes_per_slice(right) & body
    left = mm.fill_holes_per_slice(left) & body & ~right
    lap("lungs")
    env_r, env_l = _envelopes.lung_envelopes(right, left, body, airways, sp)
    thorax = _envelopes.thoracic_hull(env_r, env_l)
    spine_y = _envelopes.spine_front(hu, body, env_r, env_l, sp)
    medi = _envelopes.mediastinum(env_r, env_l, thorax, spine_y, sp, body) & ~env_r & ~env_l
    pleural = _envelopes.pleural_envelope(hu, body, env_r, env_l, medi, sp)
    lap("envelopes")
    lobes = _lobes.lobe_map(env_r, env_l)
    carina = _airways.carina_z(airways, sp)
    hilum_r = _zones.hilum_point(env_r, airways, sp, carina)
    hilum_l = _zones.hilum_point(env_l, airways, sp, carina)
    lap("lobes")
    info = {
        "split": split_method,
        "airways": {**airway_info, "carina_z": carina},
        "cpu_seconds": timings,
        "lung_ml": {
            "right": float(right.sum() * np.prod(sp) / 1000.0),
            "left": float(left.sum() * np.prod(sp) / 1000.0),
        },
    }
    return Anatomy(
        grid=grid, hu=hu, body=body, airways=airways, lung_right=right, lung_left=left,
        lung_envelope_right=env_r, lung_envelope_left=env_l, mediastinum=medi, thorax=thorax,
        pleural_envelope=pleural, lobes=lobes, hilum_right=hilum_r, hilum_left=hilum_l, info=info,
    )  # fmt: skip
