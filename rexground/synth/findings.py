"""Findings of all 14 categories painted into a rendered chest, each with its exhaustive instance masks, plus
distractors of the same category elsewhere, so that only the sentence's location tells them apart.

A finding is planned as a :class:`Location` (lobes, an optional segment, zones), drawn as instances whose
masks are clipped to the location's lobes and to voxels no earlier lesion took, and described afterwards
from what was actually drawn (count, sizes), so that sentence and mask always agree.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from rexground.categories import CATEGORY_CODES
from rexground.synth.anatomy import (
    AIR,
    FLUID,
    LEFT_LOBES,
    LOBE_LABEL,
    LOBE_NAMES,
    RIGHT_LOBES,
    SEGMENT_LABEL,
    SEGMENTS,
    ChestModel,
    ChestVolumes,
    Grid,
    _seg_dist,
)

# Category shares of real findings (validation), with the rarer ones raised so that phantoms exercise them.
CATEGORY_WEIGHTS: dict[str, float] = {
    "2d": 0.26, "2a": 0.12, "2c": 0.12, "2b": 0.10, "2e": 0.05, "2g": 0.03, "2f": 0.03, "2h": 0.04,
    "1a": 0.04, "1b": 0.04, "1c": 0.06, "1d": 0.04, "1e": 0.05, "1f": 0.02,
}  # fmt: skip
PLEURAL = ("2e", "2g")
# Painting order: pleural spaces first (they displace lung), then regional patterns, then focal lesions.
PAINT_ORDER = ("2e", "2g", "2f", "1c", "1f", "1d", "2c", "2b", "1b", "1a", "2a", "2h", "2d", "1e")


@dataclass(frozen=True)
class Location:
    """Where a finding is: the lobes it may occupy, optionally one segment, and zones for its centres."""

    lobes: tuple[str, ...]
    segment: tuple[str, str] | None = None
    zones: tuple[str, ...] = ()
    kind: str = "lobe"  # segment | lobe | lobes | side | bilateral | apical | basal
    named: tuple[
        str, ...
    ] = ()  # the lobes the sentence names when they differ (the LUL includes the lingula)

    @property
    def names(self) -> tuple[str, ...]:
        return self.named or self.lobes

    @property
    def side(self) -> str:
        right = any(lobe in RIGHT_LOBES for lobe in self.lobes)
        left = any(lobe in LEFT_LOBES for lobe in self.lobes)
        return "bilateral" if right and left else ("right" if right else "left")

    @property
    def labels(self) -> np.ndarray:
        return np.array([LOBE_LABEL[lobe] for lobe in self.lobes], dtype=np.uint8)


@dataclass
class Drawn:
    """What a category generator drew: instance masks (box, bool) and facts for the sentence."""

    instances: list[tuple[tuple[slice, slice, slice], np.ndarray]] = field(default_factory=list)
    sizes_mm: list[float] = field(default_factory=list)
    variant: str = ""
    facts: dict = field(default_factory=dict)


class Painter:
    """Shared state while findings are painted: the volumes, the voxels already taken, and sampling helpers."""

    def __init__(self, chest: ChestVolumes, model: ChestModel, grid: Grid, rng: np.random.Generator):
        self.chest = chest
        self.model = model
        self.grid = grid
        self.rng = rng
        self.hu = chest.hu
        self.lobes = chest.lobes
        self.taken = np.zeros(grid.shape, dtype=bool)
        self.h = float(np.mean(grid.spacing))
        self.hmax = float(max(grid.spacing))
        nz = np.flatnonzero(self.lobes.any(axis=(1, 2)))
        ny = np.flatnonzero(self.lobes.any(axis=(0, 2)))
        nx = np.flatnonzero(self.lobes.any(axis=(0, 1)))
        self.lung_lo = np.array([nz[0], ny[0], nx[0]])
        self.lung_hi = np.array([nz[-1], ny[-1], nx[-1]]) + 1
        zq = {}
        for side, names in (("right", RIGHT_LOBES), ("left", LEFT_LOBES)):
            pts = np.concatenate([model.lobe_points[n] for n in names if n in model.lobe_points])
            zq[side] = np.quantile(pts[:, 0], [0.3, 0.85])
        self.z_quantiles = zq

    # --- location predicates ---------------------------------------------------------------------------
    def zone_ok(self, zones: Sequence[str], mm: np.ndarray) -> np.ndarray:
        Z, Y, X = mm[:, 0], mm[:, 1], mm[:, 2]
        ok = np.ones(len(mm), dtype=bool)
        right = X < 0
        lo = np.where(right, self.z_quantiles["right"][0], self.z_quantiles["left"][0])
        hi = np.where(right, self.z_quantiles["right"][1], self.z_quantiles["left"][1])
        cr = self.model.cavity_radius(Z, Y, X)
        margin = 1.0 - 18.0 / min(self.model.cav_ax, self.model.cav_ay)
        for zone in zones:
            if zone == "basal":
                ok &= lo > Z
            elif zone == "apical":
                ok &= hi < Z
            elif zone == "subpleural":
                ok &= (cr > margin) | (self.model.diaphragm_z(Y, X) + 15 > Z)
            elif zone == "dependent":
                ok &= 0.25 * self.model.cav_ay < Y
            elif zone == "anterior":
                ok &= -0.2 * self.model.cav_ay > Y
            elif zone == "central":
                ok &= cr < 0.6
        return ok

    def sample_points(self, loc: Location, n: int, min_dist: float = 0.0, extra=None) -> np.ndarray:
        """Up to ``n`` voxel-centre points (mm) inside ``loc`` and not taken, at least ``min_dist`` apart.

        A location naming several places ("both lower lobes", "bilaterally") gets one point in each place
        first, so that the sentence is true of the drawn lesions."""
        chosen: list[np.ndarray] = []
        groups = cover_groups(loc)
        if len(groups) > 1:
            for group in groups:
                sub = Location(group, loc.segment, loc.zones, "lobe")
                chosen += list(self._sample(sub, 1, min_dist, extra, chosen))
        chosen += list(self._sample(loc, n - len(chosen), min_dist, extra, chosen))
        return np.array(chosen).reshape(-1, 3)

    def _sample(
        self, loc: Location, n: int, min_dist: float, extra, avoid: list[np.ndarray]
    ) -> list[np.ndarray]:
        want = loc.labels
        seg = SEGMENT_LABEL[loc.segment] if loc.segment else 0
        chosen: list[np.ndarray] = []
        if n <= 0:
            return chosen
        for _ in range(30):
            idx = self.rng.integers(self.lung_lo, self.lung_hi, size=(4000, 3))
            t = tuple(idx.T)
            ok = np.isin(self.lobes[t], want) & ~self.taken[t]
            if seg:
                ok &= self.chest.segments[t] == seg
            idx = idx[ok]
            if not len(idx):
                continue
            mm = self.grid.to_mm(idx)
            keep = self.zone_ok(loc.zones, mm)
            if extra is not None:
                keep &= extra(mm)
            for p in mm[keep]:
                if all(np.linalg.norm(p - q) >= min_dist for q in chosen + avoid):
                    chosen.append(p)
                    if len(chosen) >= n:
                        return chosen
        return chosen

    def fit_fraction(self, center: np.ndarray, radius: float, loc: Location) -> float:
        """Share of a ball's voxels that the location allows (not taken, in its lobes)."""
        box = self.box_around(center, radius)
        if box is None:
            return 0.0
        Z, Y, X = self.coords(box)
        ball = (Z - center[0]) ** 2 + (Y - center[1]) ** 2 + (X - center[2]) ** 2 <= radius * radius
        n = int(ball.sum())
        if n == 0:
            return 1.0
        return float((ball & self.allowed(box, loc)).sum()) / n

    def fit_centre(self, center: np.ndarray, radius: float, loc: Location, tries: int = 12) -> np.ndarray:
        """``center`` if a ball of ``radius`` fits there, else the best-fitting of a few other points in the
        same lobe (keeps lesions whole instead of cut by fissures or earlier lesions)."""
        best, best_fit = center, self.fit_fraction(center, radius, loc)
        if best_fit >= 0.95:
            return best
        idx = np.rint(self.grid.to_index(center[None])[0]).astype(int)
        lobe = LOBE_NAMES[int(self.lobes[tuple(idx)]) - 1] if self.lobes[tuple(idx)] else None
        if lobe is None or lobe not in loc.lobes:
            return best
        sub = Location((lobe,), loc.segment if loc.segment and loc.segment[0] == lobe else None, loc.zones)
        for cand in self._sample(sub, tries, 0.0, None, []):
            fit = self.fit_fraction(cand, radius, loc)
            if fit > best_fit:
                best, best_fit = cand, fit
                if fit >= 0.95:
                    break
        return best

    def box_around(self, center: np.ndarray, radius: float):
        r = np.full(3, radius + 2 * self.hmax)
        return self.grid.box(center - r, center + r)

    def allowed(self, box, loc: Location) -> np.ndarray:
        return np.isin(self.lobes[box], loc.labels) & ~self.taken[box]

    def ensure_centre(self, box, mask: np.ndarray, center: np.ndarray, allowed: np.ndarray) -> np.ndarray:
        """Small lesions must cover at least the voxel nearest their centre (when that voxel is allowed)."""
        if mask.any():
            return mask
        idx = np.rint(self.grid.to_index(center[None])[0]).astype(int) - np.array([s.start for s in box])
        if np.all(idx >= 0) and np.all(idx < mask.shape) and allowed[tuple(idx)]:
            mask = mask.copy()
            mask[tuple(idx)] = True
        return mask

    def commit(self, drawn: Drawn, box, mask: np.ndarray, value=None, mode: str = "set") -> None:
        """Paint ``mask`` in ``box`` (set to ``value``, or raise to it with mode='max') and record an instance."""
        if not mask.any():
            return
        sub = self.hu[box]
        if value is not None:
            v = value if np.isscalar(value) else value[mask]
            if mode == "set":
                sub[mask] = v
            else:
                sub[mask] = np.maximum(sub[mask], v)
        self.taken[box] |= mask
        drawn.instances.append((box, mask))

    def texture(self, shape, scale_vox: float, amplitude: float) -> np.ndarray:
        """Smooth random field of roughly unit std times ``amplitude``, correlated over ``scale_vox`` voxels."""
        coarse_shape = tuple(max(2, int(np.ceil(s / max(scale_vox, 1.0))) + 2) for s in shape)
        coarse = self.rng.standard_normal(coarse_shape).astype(np.float32)
        factors = [s / max(c - 2, 1) for s, c in zip(shape, coarse_shape, strict=True)]
        fine = ndimage.zoom(coarse, factors, order=1, prefilter=False)
        fine = fine[tuple(slice(0, s) for s in shape)]
        if fine.shape != tuple(shape):  # zoom rounding: pad by edge
            pad = [(0, s - f) for s, f in zip(shape, fine.shape, strict=True)]
            fine = np.pad(fine, pad, mode="edge")
        return fine * np.float32(amplitude)

    def coords(self, box):
        return self.grid.coords(*box)

    def blob(self, center, radius: float, irregular: float = 0.35, axes=(1.0, 1.0, 1.0)):
        """An irregular ellipsoidal blob: box and bool mask (unclipped)."""
        box = self.box_around(center, radius * (1 + irregular) * max(axes))
        if box is None:
            return None, None
        Z, Y, X = self.coords(box)
        d = np.sqrt(
            ((Z - center[0]) / axes[0]) ** 2
            + ((Y - center[1]) / axes[1]) ** 2
            + ((X - center[2]) / axes[2]) ** 2
        )
        shape = d.shape
        field_ = self.texture(shape, radius / 2.5 / self.h, irregular)
        return box, (d / radius + field_) < 1.0

    def ellipsoid(self, center, radii, lobulation: float = 0.1):
        box = self.box_around(center, float(max(radii)) * (1 + lobulation))
        if box is None:
            return None, None
        Z, Y, X = self.coords(box)
        rot = _random_rotation(self.rng)
        dz, dy, dx = Z - center[0], Y - center[1], X - center[2]
        u = rot[0, 0] * dz + rot[0, 1] * dy + rot[0, 2] * dx
        v = rot[1, 0] * dz + rot[1, 1] * dy + rot[1, 2] * dx
        w = rot[2, 0] * dz + rot[2, 1] * dy + rot[2, 2] * dx
        d = np.sqrt((u / radii[0]) ** 2 + (v / radii[1]) ** 2 + (w / radii[2]) ** 2)
        if lobulation > 0:
            r = np.sqrt(u * u + v * v + w * w) + 1e-6
            a, b, c = self.rng.normal(0, lobulation, 3)
            d = d * (1 + a * (u * v) / r**2 + b * (v * w) / r**2 + c * (u / r) ** 3)
        return box, d <= 1.0


def cover_groups(loc: Location) -> list[tuple[str, ...]]:
    """The places a sentence names separately: each side when bilateral, each named lobe of a lobe list."""
    if loc.kind == "bilateral":
        return [
            tuple(n for n in loc.lobes if n in RIGHT_LOBES),
            tuple(n for n in loc.lobes if n in LEFT_LOBES),
        ]
    if loc.kind in ("lobes", "apical", "basal") and len(loc.names) > 1:
        return [(n, "lingula") if n == "LUL" and "lingula" in loc.lobes else (n,) for n in loc.names]
    return [loc.lobes]


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    return q * np.sign(np.diag(r))


def _foam(painter: Painter, box, region: np.ndarray, spacing_mm: float, wall_mm: float):
    """Voronoi foam over ``region``: (walls, cells) bool masks; walls are the voxels between two nearest seeds."""
    idx = np.argwhere(region)
    if len(idx) == 0:
        return region.copy(), region.copy()
    mm = idx * np.asarray(painter.grid.spacing)
    lo, hi = mm.min(axis=0), mm.max(axis=0)
    n_seeds = max(2, int(np.prod(np.maximum(hi - lo, spacing_mm)) / spacing_mm**3))
    seeds = painter.rng.uniform(lo - spacing_mm / 2, hi + spacing_mm / 2, size=(n_seeds, 3))
    d, _ = cKDTree(seeds).query(mm, k=2)
    wall = (d[:, 1] - d[:, 0]) < wall_mm
    walls = np.zeros_like(region)
    cells = np.zeros_like(region)
    walls[tuple(idx[wall].T)] = True
    cells[tuple(idx[~wall].T)] = True
    return walls, cells


def _lobe_box(painter: Painter, lobe: str):
    pts = painter.model.lobe_points[lobe]
    return painter.grid.box(pts.min(axis=0) - 5, pts.max(axis=0) + 5)


# --- category generators: draw(painter, loc, small) -> Drawn -------------------------------------------------
def draw_nodules(p: Painter, loc: Location, small: bool, count: int | None = None) -> Drawn:
    rng = p.rng
    variant = rng.choice(["solid", "solid", "solid", "calcified", "mass"], p=[0.3, 0.3, 0.2, 0.12, 0.08])
    if count is None:
        count = 1 if loc.kind in ("segment",) else int(rng.choice([1, 1, 2, 3, 4, 5, 6]))
    if variant == "mass" and len(cover_groups(loc)) > 1:
        variant = "solid"  # one mass cannot be in both lungs
    if variant == "mass":
        count = 1
    count = max(count, len(cover_groups(loc)))
    lo_mm = max(4.0, 1.4 * p.hmax) if small else 3.0
    drawn = Drawn(variant=str(variant))
    if variant == "mass":
        diam = [rng.uniform(32, 55)]
    elif variant == "calcified":
        diam = list(rng.uniform(lo_mm, max(lo_mm + 1, 9), count))
    else:
        top = rng.choice([9.0, 14.0, 25.0], p=[0.5, 0.3, 0.2])
        diam = list(rng.uniform(lo_mm, max(lo_mm + 1.5, top), count))
    centers = p.sample_points(loc, count, min_dist=20.0)
    for c, dm in zip(centers, diam, strict=False):
        c = p.fit_centre(c, dm / 2, loc)
        radii = np.array([1.0, rng.uniform(0.75, 1.0), rng.uniform(0.75, 1.0)]) * dm / 2
        box, mask = p.ellipsoid(c, radii, lobulation=0.15 if variant == "mass" else 0.06)
        if box is None:
            continue
        allowed = p.allowed(box, loc)
        mask = p.ensure_centre(box, mask & allowed, c, allowed)
        value = rng.uniform(350, 700) if variant == "calcified" else rng.uniform(20, 50)
        n_before = len(drawn.instances)
        p.commit(drawn, box, mask, value + p.texture(mask.shape, 2.0, 8.0))
        if len(drawn.instances) > n_before:
            drawn.sizes_mm.append(round(float(dm), 1))
    return drawn


def draw_ggo(p: Painter, loc: Location, small: bool) -> Drawn:
    rng = p.rng
    count = int(rng.choice([1, 1, 2, 3])) if loc.kind in ("segment", "lobe") else int(rng.integers(2, 5))
    count = max(count, len(cover_groups(loc)))
    variant = str(rng.choice(["patchy", "nodular", "crazy paving"], p=[0.6, 0.25, 0.15]))
    drawn = Drawn(variant=variant)
    for c in p.sample_points(loc, count, min_dist=35.0):
        radius = rng.uniform(5, 9) if variant == "nodular" else rng.uniform(12, 30)
        radius = max(radius, 1.5 * p.hmax)
        box, mask = p.blob(c, radius, irregular=0.3)
        if box is None:
            continue
        allowed = p.allowed(box, loc)
        mask = p.ensure_centre(box, mask & allowed, c, allowed)
        level = rng.uniform(-600, -480) + p.texture(mask.shape, 3.0, 40.0)
        if variant == "crazy paving":
            walls, _ = _foam(p, box, mask, 9.0, max(1.0, 0.5 * p.h))
            level = np.where(walls, level + 180, level)
        p.commit(drawn, box, mask, level, mode="max")
        if mask.any():
            drawn.sizes_mm.append(round(2 * radius, 0))
    return drawn


def draw_consolidation(p: Painter, loc: Location, small: bool) -> Drawn:
    rng = p.rng
    variant = str(rng.choice(["consolidation", "atelectasis"], p=[0.6, 0.4]))
    count = 1 if loc.kind in ("segment", "lobe") else int(rng.integers(2, 4))
    count = max(count, len(cover_groups(loc)))
    drawn = Drawn(variant=variant)
    extra = None
    if variant == "atelectasis":
        extra = lambda mm: mm[:, 1] > 0.0  # noqa: E731 - dependent lung collapses first
    pts = p.sample_points(loc, count, min_dist=40.0, extra=extra)
    if len(pts) == 0:
        pts = p.sample_points(loc, count, min_dist=40.0)
    for c in pts:
        radius = max(rng.uniform(12, 28), 2.0 * p.hmax)
        axes = (1.0, 0.8, 1.0) if variant == "atelectasis" else (1.0, 1.0, 1.0)
        box, mask = p.blob(c, radius, irregular=0.35, axes=axes)
        if box is None:
            continue
        allowed = p.allowed(box, loc)
        mask = p.ensure_centre(box, mask & allowed, c, allowed)
        value = rng.uniform(15, 45) + p.texture(mask.shape, 2.0, 10.0)
        if variant == "consolidation":
            # Air bronchograms: the airway lumen stays black inside the consolidation.
            value = np.where(p.chest.airway[box], AIR + 30, value)
        p.commit(drawn, box, mask, value)
        if mask.any():
            drawn.sizes_mm.append(round(2 * radius, 0))
    drawn.facts["air_bronchograms"] = variant == "consolidation" and any(
        (p.chest.airway[b] & m).any() for b, m in drawn.instances
    )
    return drawn


def draw_linear(p: Painter, loc: Location, small: bool) -> Drawn:
    rng = p.rng
    count = 1 if loc.kind == "segment" else int(rng.choice([1, 1, 2, 3]))
    count = max(count, len(cover_groups(loc)))
    variant = str(rng.choice(["linear atelectasis", "scarring", "band"], p=[0.5, 0.35, 0.15]))
    if loc.kind == "apical":
        variant = "scarring"  # apical linear opacities are scars, not atelectasis
    drawn = Drawn(variant=variant)
    thickness = max(2.0, 1.05 * p.hmax)
    for c in p.sample_points(loc, count, min_dist=30.0):
        radius = rng.uniform(12, 28)
        box = p.box_around(c, radius)
        if box is None:
            continue
        Z, Y, X = p.coords(box)
        # A thin plate, roughly horizontal (linear atelectasis lies along the long axis of the lobe).
        normal = np.array([1.0, rng.normal(0, 0.45), rng.normal(0, 0.45)])
        normal /= np.linalg.norm(normal)
        dz, dy, dx = Z - c[0], Y - c[1], X - c[2]
        along = dz * normal[0] + dy * normal[1] + dx * normal[2]
        radial = np.sqrt(np.maximum(dz * dz + dy * dy + dx * dx - along * along, 0))
        wobble = p.texture(np.broadcast_shapes(Z.shape, Y.shape, X.shape), radius / 3 / p.h, 0.15)
        mask = (np.abs(along) <= thickness / 2) & (radial / radius + wobble < 1.0)
        allowed = p.allowed(box, loc)
        mask = p.ensure_centre(box, mask & allowed, c, allowed)
        p.commit(drawn, box, mask, rng.uniform(-120, 0) + p.texture(mask.shape, 2.0, 20.0))
        if mask.any():
            drawn.sizes_mm.append(round(2 * radius, 0))
    return drawn


def _pleural_region(p: Painter, side: str, kind: str, depth: float):
    """Lung of ``side`` within ``depth`` mm of the posterior wall (effusion, supine) or the anterior wall and
    apex (pneumothorax, non-dependent)."""
    names = RIGHT_LOBES if side == "right" else LEFT_LOBES
    box = p.grid.box(
        *(lambda pts: (pts.min(0) - 5, pts.max(0) + 5))(
            np.concatenate([p.model.lobe_points[n] for n in names])
        )
    )
    Z, Y, X = p.coords(box)
    m = p.model
    scale = 1.0 + 0.06 * np.clip(-Z / 150.0, -1.0, 1.0)
    half = np.sqrt(np.maximum(1 - (X / (m.cav_ax * scale)) ** 2, 0)) * m.cav_ay * scale
    zq_lo, zq_hi = p.z_quantiles[side]
    if kind == "effusion":
        # Deepest at the base, thinning upwards: a dependent crescent.
        taper = np.clip((zq_hi - Z) / (zq_hi - (zq_lo - 60)), 0, 1) ** 0.7
        region = half - depth * taper < Y
    else:
        taper = np.clip((Z - zq_lo) / (zq_hi - zq_lo), 0, 1) ** 0.5
        apex = m.p.apex_z - depth * 0.8 < Z
        region = (-half + depth * taper > Y) | apex
    labels = np.array([LOBE_LABEL[n] for n in names])
    region = region & np.isin(p.lobes[box], labels) & ~p.taken[box]
    return box, region


def _pleural_plaque(p: Painter, side: str, thickness: float):
    """A patch of thickened pleura: lung of ``side`` within ``thickness`` mm of the costal wall, around a
    subpleural point (posterior or lateral, where thickening is usually seen)."""
    names = RIGHT_LOBES if side == "right" else LEFT_LOBES
    sub = Location(tuple(n for n in names if n in p.model.lobe_points), zones=("subpleural",))
    pts = p.sample_points(sub, 1, extra=lambda mm: mm[:, 1] > -0.2 * p.model.cav_ay)
    if len(pts) == 0:
        return None, None
    centre = pts[0]
    box, patch = p.blob(centre, p.rng.uniform(18, 35), irregular=0.25)
    if box is None:
        return None, None
    Z, Y, X = p.coords(box)
    m = p.model
    shell = m.cavity_radius(Z, Y, X) > 1.0 - thickness / min(m.cav_ax, m.cav_ay)
    region = patch & shell & p.allowed(box, sub)
    return box, region


def draw_pleural(p: Painter, loc: Location, small: bool, kind: str) -> Drawn:
    rng = p.rng
    if kind == "effusion" and rng.random() < 0.2:
        kind = "thickening"
    drawn = Drawn(variant=kind)
    sides = ["right", "left"] if loc.side == "bilateral" else [loc.side]
    for side in sides:
        depth = rng.uniform(12, 55) if kind == "effusion" else rng.uniform(10, 35)
        depth = max(depth, 2.5 * p.hmax)
        if kind == "thickening":
            depth = max(rng.uniform(3, 8), 1.2 * p.hmax)
            for _ in range(4):  # a plaque can miss the wall; try a few places
                box, region = _pleural_plaque(p, side, depth)
                if box is not None and region.any():
                    break
        else:
            box, region = _pleural_region(p, side, kind, depth)
        if box is None:
            continue
        if not region.any():
            continue
        value = {"effusion": FLUID + rng.uniform(-8, 10), "thickening": rng.uniform(25, 50)}.get(
            kind, AIR + 8
        )
        p.commit(drawn, box, region, value + p.texture(region.shape, 3.0, 4.0))
        # The pleural space is no longer lung.
        p.lobes[box][region] = 0
        p.chest.segments[box][region] = 0
        drawn.sizes_mm.append(round(depth, 0))
        drawn.facts.setdefault("sides", []).append(side)
    return drawn


def draw_honeycombing(p: Painter, loc: Location, small: bool) -> Drawn:
    rng = p.rng
    drawn = Drawn(variant="honeycombing")
    m = p.model
    wall = 1.0 - 15.0 / min(m.cav_ax, m.cav_ay)

    def costal(mm: np.ndarray) -> np.ndarray:
        return (mm[:, 1] > -0.1 * m.cav_ay) & (m.cavity_radius(mm[:, 0], mm[:, 1], mm[:, 2]) > wall)

    for lobe in loc.lobes:
        sub = Location((lobe,), zones=("subpleural", "basal"), kind="lobe")
        # Honeycombing sits under the posterior and lateral costal pleura of the bases.
        pts = p.sample_points(sub, 1, extra=costal)
        if len(pts) == 0:
            pts = p.sample_points(sub, 1)
        if len(pts) == 0:
            pts = p.sample_points(Location((lobe,), zones=("subpleural",)), 1)
        if len(pts) == 0:
            continue
        box, mask = p.blob(pts[0], rng.uniform(18, 32), irregular=0.3, axes=(1.0, 0.8, 0.8))
        if box is None:
            continue
        mask &= p.allowed(box, sub)
        walls, _ = _foam(p, box, mask, max(7.0, 2.2 * p.h), max(1.2, 0.6 * p.h))
        value = np.where(walls, rng.uniform(-60, 20), AIR + 20).astype(np.float32)
        p.commit(drawn, box, mask, value)
    return drawn


def draw_cyst(p: Painter, loc: Location, small: bool) -> Drawn:
    rng = p.rng
    variant = str(rng.choice(["air cyst", "cavity"], p=[0.7, 0.3]))
    drawn = Drawn(variant=variant)
    count = 1 if variant == "cavity" or loc.kind == "segment" else int(rng.choice([1, 1, 2]))
    count = max(count, len(cover_groups(loc)))
    for c in p.sample_points(loc, count, min_dist=30.0):
        diam = rng.uniform(8, 28) if variant == "air cyst" else rng.uniform(18, 40)
        diam = max(diam, 4.0 * p.hmax if variant == "air cyst" else 6.0 * p.hmax)
        c = p.fit_centre(c, diam / 2, loc)
        box = p.box_around(c, diam / 2)
        if box is None:
            continue
        Z, Y, X = p.coords(box)
        d = np.sqrt((Z - c[0]) ** 2 + (Y - c[1]) ** 2 + (X - c[2]) ** 2)
        wall = max(1.0, 0.35 * p.h) if variant == "air cyst" else max(3.0, 0.8 * p.h)
        allowed = p.allowed(box, loc)
        mask = (d <= diam / 2) & allowed
        value = np.where(d > diam / 2 - wall, rng.uniform(0, 40), AIR + 10).astype(np.float32)
        p.commit(drawn, box, mask, value)
        if mask.any():
            drawn.sizes_mm.append(round(diam, 0))
    return drawn


def _bronchi_in(p: Painter, loc: Location, min_gen: int, max_gen: int):
    b = p.chest.bronchi
    sel = (
        (b.parent >= 0) & (b.generation >= min_gen) & (b.generation <= max_gen) & np.isin(b.lobe, loc.labels)
    )
    return np.flatnonzero(sel)


def draw_airways(p: Painter, loc: Location, small: bool, kind: str) -> Drawn:
    """1a: thickened walls of the bronchi in the location; 1b: dilated (and more distal) bronchi."""
    rng = p.rng
    b = p.chest.bronchi
    drawn = Drawn(variant=kind)
    arteries = p.chest.arteries
    for lobe in loc.lobes:
        sub = Location((lobe,), kind="lobe")
        if kind == "wall":
            idx = _bronchi_in(p, sub, 1, 4)
            tubes = [(b.points[b.parent[idx]], b.points[idx], b.radius[idx], None)]
        else:
            # Bronchiectasis reaches the periphery: follow the artery tree out to its leaves, dilated.
            # A few candidate subtrees; the one whose lumen is most free of earlier lesions is drawn.
            idx = np.flatnonzero(
                (arteries.parent >= 0) & (arteries.generation >= 2) & (arteries.lobe == LOBE_LABEL[lobe])
            )
            if len(idx) == 0:
                continue
            tubes = []
            for start in rng.choice(idx, size=min(5, len(idx)), replace=False):
                chain = [i for i in idx if _descends_from(arteries.parent, i, start)]
                off = rng.normal(size=3)
                off /= np.linalg.norm(off)
                p0 = arteries.points[arteries.parent[chain]] + off * 4.0
                p1 = arteries.points[chain] + off * 4.0
                tubes.append((p0, p1, arteries.radius[chain], chain))
        best = None
        for p0, p1, radius, chain in tubes:
            if len(p0) == 0:
                continue
            if kind == "wall":
                lumen = radius
                thick = np.maximum(np.maximum(2.0, 0.9 * p.h), 0.8 * radius)
            else:
                lumen = np.maximum(np.maximum(2.2 * radius, 3.0), 0.8 * p.h)
                thick = np.full(len(chain), max(1.2, 0.5 * p.h))
            drawn_tube = _tube_masks(p, p0, p1, lumen, thick)
            if drawn_tube is None:
                continue
            box, inside, wall_mask = drawn_tube
            allowed = p.allowed(box, sub)
            score = int((inside & allowed).sum()) if kind != "wall" else int((wall_mask & allowed).sum())
            if best is None or score > best[0]:
                best = (score, box, inside, wall_mask, allowed)
        if best is None:
            continue
        _, box, inside, wall_mask, allowed = best
        if kind == "wall":
            mask = wall_mask & allowed & ~p.chest.airway[box]
            value = np.float32(rng.uniform(20, 50))
        else:
            mask = (wall_mask | inside) & allowed
            if (inside & mask).sum() < 0.3 * mask.sum():
                continue  # too little lumen left free to read as a dilated airway
            value = np.where(inside, AIR + 20, rng.uniform(10, 40)).astype(np.float32)
        p.commit(drawn, box, mask, value)
    return drawn


def _tube_masks(p: Painter, p0, p1, lumen, thick):
    """(box, lumen mask, wall ring mask) of a chain of tubes."""
    lo = np.minimum(p0, p1).min(axis=0) - 12
    hi = np.maximum(p0, p1).max(axis=0) + 12
    box = p.grid.box(lo, hi)
    if box is None:
        return None
    Z, Y, X = p.coords(box)
    shape = np.broadcast_shapes(Z.shape, Y.shape, X.shape)
    inside = np.zeros(shape, dtype=bool)
    wall_mask = np.zeros(shape, dtype=bool)
    for a, c, rl, t in zip(p0, p1, lumen, thick, strict=True):
        d = _seg_dist(Z, Y, X, a, c)
        inside |= d <= rl
        wall_mask |= (d > rl) & (d <= rl + t)
    wall_mask &= ~inside
    return box, inside, wall_mask


def _descends_from(parent: np.ndarray, node: int, ancestor: int) -> bool:
    while node >= 0:
        if node == ancestor:
            return True
        node = int(parent[node])
    return False


def _regional(
    p: Painter,
    loc: Location,
    per_lobe: Callable[[Location, tuple, np.ndarray], np.ndarray | None],
    drawn: Drawn,
):
    """Run ``per_lobe`` on each lobe's box (restricted to the location's zones); one entity per lobe."""
    for lobe in loc.lobes:
        box = _lobe_box(p, lobe)
        if box is None:
            continue
        sub = Location((lobe,), zones=loc.zones, kind="lobe")
        region = p.allowed(box, sub)
        if loc.segment and loc.segment[0] == lobe:
            region &= p.chest.segments[box] == SEGMENT_LABEL[loc.segment]
        if loc.zones and region.any():
            idx = np.argwhere(region)
            mm = p.grid.to_mm(idx + np.array([s.start for s in box]))
            keep = p.zone_ok(loc.zones, mm)
            region[:] = False
            region[tuple(idx[keep].T)] = True
        if not region.any():
            continue
        per_lobe(sub, box, region)


def draw_emphysema(p: Painter, loc: Location, small: bool) -> Drawn:
    rng = p.rng
    variant = str(rng.choice(["centrilobular", "paraseptal", "bullous"], p=[0.6, 0.25, 0.15]))
    drawn = Drawn(variant=variant)

    def per_lobe(sub, box, region):
        Z, Y, X = p.coords(box)
        idx = np.argwhere(region)
        n = {"centrilobular": 14, "paraseptal": 10, "bullous": 2}[variant]
        pick = idx[rng.choice(len(idx), size=min(n, len(idx)), replace=False)]
        centres = p.grid.to_mm(pick + np.array([s.start for s in box]))
        mask = np.zeros(region.shape, dtype=bool)
        for c in centres:
            r = (
                rng.uniform(15, 30)
                if variant == "bullous"
                else rng.uniform(max(3.0, 0.8 * p.h), max(6.0, 1.2 * p.h))
            )
            mask |= (Z - c[0]) ** 2 + (Y - c[1]) ** 2 + (X - c[2]) ** 2 <= r * r
        # Vessels survive inside emphysema; only the parenchyma turns black.
        mask &= region & (p.hu[box] < -500)
        p.commit(drawn, box, mask, rng.uniform(-1000, -975) + p.texture(mask.shape, 2.0, 5.0))

    zones = loc.zones + (("subpleural",) if variant == "paraseptal" and "subpleural" not in loc.zones else ())
    _regional(p, Location(loc.lobes, loc.segment, zones, loc.kind), per_lobe, drawn)
    return drawn


def draw_septal(p: Painter, loc: Location, small: bool, kind: str) -> Drawn:
    """1d: thickened interlobular septa (a foam of thin walls); 1f: mosaic attenuation (denser lobules)."""
    rng = p.rng
    drawn = Drawn(variant=kind)

    def per_lobe(sub, box, region):
        centre = p.grid.to_mm(
            np.argwhere(region)[rng.integers(region.sum())][None] + np.array([s.start for s in box])
        )[0]
        bbox, blob = p.blob(centre, rng.uniform(30, 55), irregular=0.3)
        # Work in the lobe box: intersect the blob (in its own box) with the region.
        patch = np.zeros(region.shape, dtype=bool)
        inter = tuple(
            slice(max(a.start, b.start), min(a.stop, b.stop)) for a, b in zip(box, bbox, strict=True)
        )
        if any(s.stop <= s.start for s in inter):
            return
        patch[tuple(slice(s.start - a.start, s.stop - a.start) for s, a in zip(inter, box, strict=True))] = (
            blob[tuple(slice(s.start - b.start, s.stop - b.start) for s, b in zip(inter, bbox, strict=True))]
        )
        patch &= region
        if kind == "septal":
            walls, _ = _foam(p, box, patch, max(12.0, 3.0 * p.h), max(1.0, 0.55 * p.h))
            mask = walls & (p.hu[box] < -500)
            value = rng.uniform(-450, -300) + p.texture(mask.shape, 2.0, 30.0)
        else:
            _, cells = _foam(p, box, patch, max(22.0, 4.0 * p.h), 0.01)
            # Label cells by nearest seed parity: half the lobules are denser.
            lab, n = ndimage.label(cells)
            dense = (
                np.isin(lab, rng.choice(np.arange(1, n + 1), size=max(1, n // 2), replace=False))
                if n
                else cells
            )
            mask = dense & (p.hu[box] < -500)
            value = rng.uniform(-730, -680) + p.texture(mask.shape, 2.0, 15.0)
        p.commit(drawn, box, mask, value, mode="max")

    zones = loc.zones
    if kind == "septal" and "subpleural" not in zones:
        zones = (*zones, "subpleural")
    _regional(p, Location(loc.lobes, loc.segment, zones, loc.kind), per_lobe, drawn)
    return drawn


def draw_micronodules(p: Painter, loc: Location, small: bool) -> Drawn:
    rng = p.rng
    variant = str(rng.choice(["centrilobular", "tree-in-bud", "calcified"], p=[0.5, 0.3, 0.2]))
    drawn = Drawn(variant=variant)

    def per_lobe(sub, box, region):
        Z, Y, X = p.coords(box)
        idx = np.argwhere(region)
        n = int(rng.integers(12, 30))
        pick = idx[rng.choice(len(idx), size=min(n, len(idx)), replace=False)]
        mask = np.zeros(region.shape, dtype=bool)
        r = max(1.5, 0.5 * p.hmax)
        for v, c in zip(pick, p.grid.to_mm(pick + np.array([s.start for s in box])), strict=True):
            zs, ys, xs = (slice(max(0, int(i) - 3), int(i) + 4) for i in v)
            sphere = (Z[zs] - c[0]) ** 2 + (Y[:, ys] - c[1]) ** 2 + (X[:, :, xs] - c[2]) ** 2 <= r * r
            mask[zs, ys, xs] |= sphere
            mask[tuple(v)] = True
        mask &= region
        value = rng.uniform(300, 500) if variant == "calcified" else rng.uniform(-60, 20)
        p.commit(drawn, box, mask, value + p.texture(mask.shape, 1.5, 10.0))

    _regional(p, loc, per_lobe, drawn)
    return drawn


GENERATORS: dict[str, Callable[[Painter, Location, bool], Drawn]] = {
    "2d": draw_nodules,
    "2c": draw_ggo,
    "2b": draw_consolidation,
    "2a": draw_linear,
    "2e": lambda p, loc, small: draw_pleural(p, loc, small, "effusion"),
    "2g": lambda p, loc, small: draw_pleural(p, loc, small, "pneumothorax"),
    "2f": draw_honeycombing,
    "2h": draw_cyst,
    "1a": lambda p, loc, small: draw_airways(p, loc, small, "wall"),
    "1b": lambda p, loc, small: draw_airways(p, loc, small, "ectasia"),
    "1c": draw_emphysema,
    "1d": lambda p, loc, small: draw_septal(p, loc, small, "septal"),
    "1e": draw_micronodules,
    "1f": lambda p, loc, small: draw_septal(p, loc, small, "mosaic"),
}


# --- planning locations -------------------------------------------------------------------------------------
LOCATION_KINDS: dict[str, dict[str, float]] = {
    "2d": {"segment": 0.3, "lobe": 0.3, "side": 0.15, "bilateral": 0.25},
    "2c": {"segment": 0.25, "lobe": 0.3, "lobes": 0.2, "bilateral": 0.25},
    "2b": {"segment": 0.35, "lobe": 0.35, "lobes": 0.2, "bilateral": 0.1},
    "2a": {"segment": 0.3, "lobe": 0.3, "apical": 0.15, "basal": 0.15, "bilateral": 0.1},
    "2e": {"side": 0.8, "bilateral": 0.2},
    "2g": {"side": 1.0},
    "2f": {"basal": 1.0},
    "2h": {"segment": 0.5, "lobe": 0.5},
    "1a": {"lobes": 0.4, "side": 0.2, "bilateral": 0.2, "lobe": 0.2},
    "1b": {"lobe": 0.5, "lobes": 0.3, "side": 0.2},
    "1c": {"lobes": 0.45, "lobe": 0.25, "apical": 0.2, "bilateral": 0.1},
    "1d": {"basal": 0.4, "lobe": 0.3, "lobes": 0.2, "bilateral": 0.1},
    "1e": {"lobe": 0.45, "segment": 0.25, "bilateral": 0.2, "side": 0.1},
    "1f": {"lobes": 0.5, "bilateral": 0.3, "lobe": 0.2},
}
LOBE_PAIRS = (("RLL", "LLL"), ("RUL", "LUL"), ("RML", "lingula"), ("RML", "RLL"), ("LUL", "LLL"))


def plan_location(cat: str, rng: np.random.Generator, free: set[str], available: set[str]) -> Location | None:
    """A location of a kind plausible for ``cat`` using only ``free`` lobes (those no same-category finding
    or distractor of this case uses)."""
    kinds = LOCATION_KINDS[cat]
    names = list(kinds)
    probs = np.array([kinds[k] for k in names])
    free = free & available
    for kind in rng.choice(names, size=len(names) * 2, p=probs / probs.sum()):
        if kind in ("segment", "lobe"):
            cands = sorted(free)
            if not cands:
                continue
            lobe = str(rng.choice(cands))
            if kind == "segment":
                segs = [s for s in SEGMENTS if s[0] == lobe]
                seg = segs[rng.integers(len(segs))]
                return Location((lobe,), seg, kind="segment")
            zones = _lobe_zone(cat, rng)
            if (cand := _named(Location((lobe,), zones=zones, kind="lobe"), free)) is not None:
                return cand
        if kind == "lobes":
            pairs = [pair for pair in LOBE_PAIRS if set(pair) <= free]
            cand = _named(Location(pairs[rng.integers(len(pairs))], kind="lobes"), free) if pairs else None
            if cand is not None:
                return cand
        if kind == "side":
            sides = [
                s
                for s, names_ in (("right", RIGHT_LOBES), ("left", LEFT_LOBES))
                if set(names_) & available <= free and set(names_) & available
            ]
            if sides:
                side = sides[rng.integers(len(sides))]
                lobes = tuple(n for n in (RIGHT_LOBES if side == "right" else LEFT_LOBES) if n in available)
                return Location(lobes, kind="side")
        if kind == "bilateral" and available <= free:
            return Location(tuple(n for n in LOBE_NAMES if n in available), kind="bilateral")
        if kind == "apical":
            opts = [lobes for lobes in (("RUL", "LUL"), ("RUL",), ("LUL",)) if set(lobes) <= free]
            pick = opts[rng.integers(len(opts))] if opts else None
            cand = _named(Location(pick, zones=("apical",), kind="apical"), free) if pick else None
            if cand is not None:
                return cand
        if kind == "basal":
            opts = [lobes for lobes in (("RLL", "LLL"), ("RLL",), ("LLL",)) if set(lobes) <= free]
            if opts:
                zones = ("basal", "subpleural") if cat in ("2f", "1d") else ("basal",)
                return Location(opts[rng.integers(len(opts))], zones=zones, kind="basal")
    return None


# Zones a single-lobe location of each category may add, with their chances.
LOBE_ZONES: dict[str, tuple[tuple[str, float], ...]] = {
    "2d": (("subpleural", 0.15),),
    "2c": (("subpleural", 0.15), ("central", 0.08), ("dependent", 0.07)),
    "2b": (("dependent", 0.2), ("subpleural", 0.1)),
    "2a": (("subpleural", 0.15),),
}


def _lobe_zone(cat: str, rng: np.random.Generator) -> tuple[str, ...]:
    r = rng.random()
    for zone, chance in LOBE_ZONES.get(cat, ()):
        if r < chance:
            return (zone,)
        r -= chance
    return ()


def _named(loc: Location, free: set[str]) -> Location | None:
    """A sentence naming the left upper lobe covers the lingula too: widen the lobes, keep the name."""
    if "LUL" in loc.lobes and "lingula" not in loc.lobes:
        if "lingula" not in free:
            return None
        return Location((*loc.lobes, "lingula"), loc.segment, loc.zones, loc.kind, named=loc.lobes)
    return loc


def distractor_location(cat: str, loc: Location, rng: np.random.Generator, free: set[str]) -> Location | None:
    """Somewhere the finding's sentence does not cover: another lobe, preferably the other lung."""
    if cat in PLEURAL:
        other = "left" if loc.side == "right" else "right"
        lobes = set(LEFT_LOBES if other == "left" else RIGHT_LOBES)
        if loc.side != "bilateral" and lobes <= free:
            return Location(tuple(sorted(lobes, key=LOBE_NAMES.index)), kind="side")
        return None
    cands = sorted(free - set(loc.lobes))
    if not cands:
        return None
    other_side = [c for c in cands if (c in RIGHT_LOBES) != (loc.side == "right")]
    pool = other_side if other_side and rng.random() < 0.6 else cands
    lobe = str(rng.choice(pool))
    return Location((lobe,), zones=loc.zones if cat in ("2f",) else (), kind="lobe")


def choose_categories(rng: np.random.Generator, seed: int) -> list[str]:
    n = int(rng.choice([1, 2, 3, 4, 5], p=[0.25, 0.3, 0.22, 0.15, 0.08]))
    codes = list(CATEGORY_WEIGHTS)
    w = np.array([CATEGORY_WEIGHTS[c] for c in codes])
    cats = [CATEGORY_CODES[seed % len(CATEGORY_CODES)]]
    cats += [str(c) for c in rng.choice(codes, size=n - 1, p=w / w.sum())]
    return cats


def add_findings(
    chest: ChestVolumes,
    model: ChestModel,
    grid: Grid,
    rng: np.random.Generator,
    seed: int,
    categories: Sequence[str] | None = None,
    small: bool = True,
):
    """Plan, paint and describe the case's findings; returns (PhantomFinding list with exhaustive masks,
    Distractor list)."""
    from rexground.synth.case import PhantomFinding
    from rexground.synth.sentences import describe

    cats = list(categories) if categories else choose_categories(rng, seed)
    unknown = [c for c in cats if c not in GENERATORS]
    if unknown:
        raise ValueError(f"unknown category codes {unknown}; expected some of {CATEGORY_CODES}")
    available = {n for n in LOBE_NAMES if n in model.lobe_points}
    painter = Painter(chest, model, grid, rng)
    free_by_cat: dict[str, set[str]] = {}
    plans = []
    for order, cat in enumerate(cats):
        free = free_by_cat.setdefault("pleural" if cat in PLEURAL else cat, set(available))
        loc = plan_location(cat, rng, free, available)
        if loc is None:
            continue
        free -= set(loc.lobes)
        distractor = distractor_location(cat, loc, rng, free) if rng.random() < 0.75 else None
        if distractor is not None:
            free -= set(distractor.lobes)
        plans.append((order, cat, loc, distractor))

    results = []
    distractors: list[Distractor] = []
    for order, cat, loc, distractor in sorted(plans, key=lambda t: (PAINT_ORDER.index(t[1]), t[0])):
        drawn = GENERATORS[cat](painter, loc, small)
        if distractor is not None:
            decoy = GENERATORS[cat](painter, distractor, small)
            if decoy.instances:
                distractors.append(Distractor(cat, distractor.lobes, _label_map(grid, decoy) > 0))
        if not drawn.instances:
            continue
        if cat in PLEURAL and loc.side == "bilateral" and len(drawn.facts.get("sides", [])) == 1:
            # Only one side could be drawn: the sentence names that side.
            side = drawn.facts["sides"][0]
            loc = Location(
                tuple(n for n in (RIGHT_LOBES if side == "right" else LEFT_LOBES) if n in available),
                kind="side",
            )
        elif cat not in PLEURAL:
            loc = _honest_location(loc, drawn, painter, available)
        labels = _label_map(grid, drawn)
        text = describe(cat, loc, drawn, rng)
        results.append(
            (
                order,
                PhantomFinding(
                    text=text,
                    category=cat,
                    mask_labels=labels,
                    side=loc.side,
                    lobes=loc.lobes,
                    segment=f"{loc.segment[0]} {loc.segment[1]}" if loc.segment else None,
                    zones=loc.zones,
                    pleural=cat in PLEURAL,
                ),
            )
        )
    return [f for _, f in sorted(results, key=lambda t: t[0])], distractors


def _honest_location(loc: Location, drawn: Drawn, p: Painter, available: set[str]) -> Location:
    """If a sentence names several places but lesions could be drawn in only one (the others were taken),
    name just that one."""
    groups = cover_groups(loc)
    if len(groups) < 2:
        return loc
    touched = set()
    for box, mask in drawn.instances:
        touched |= {LOBE_NAMES[v - 1] for v in np.unique(p.lobes[box][mask]) if v}
    hit = [g for g in groups if set(g) & touched]
    if len(hit) == len(groups) or not hit:
        return loc
    if loc.kind == "bilateral":
        side = RIGHT_LOBES if set(hit[0]) & set(RIGHT_LOBES) else LEFT_LOBES
        return Location(tuple(n for n in side if n in available), kind="side")
    group = hit[0]
    named = ("LUL",) if "LUL" in group else ()
    kind = "lobe" if loc.kind == "lobes" else loc.kind
    return Location(group, zones=loc.zones, kind=kind, named=named)


def _label_map(grid: Grid, drawn: Drawn) -> np.ndarray:
    labels = np.zeros(grid.shape, dtype=np.uint8)
    for k, (box, mask) in enumerate(drawn.instances[:255], start=1):
        labels[box][mask] = k
    return labels


@dataclass(frozen=True, eq=False)
class Distractor:
    """A lesion painted in the image but described by no finding: same category, another place."""

    category: str
    lobes: tuple[str, ...]
    mask: np.ndarray = field(repr=False)  # bool, canonical
