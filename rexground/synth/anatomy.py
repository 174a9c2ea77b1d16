"""Analytic chest anatomy for phantoms: body, chest wall, ribs, spine, mediastinum, heart, aorta, airways,
two lungs split into lobes by fissures, and branching vessel and bronchial trees.

Everything is a vectorised function of body-frame coordinates in millimetres, so the same model answers
"which lobe is this point in" for a few thousand sampled points (to grow trees) and for a whole grid (to
render), and a grid is rendered in slabs of slices to bound memory at 512 x 512 x 400.

Body frame: ``X`` towards the patient's left, ``Y`` towards posterior, ``Z`` towards superior (the directions
of the canonical axes x, y, z), origin on the midline at the carina.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LOBE_NAMES: tuple[str, ...] = ("RUL", "RML", "RLL", "LUL", "lingula", "LLL")  # label = index + 1
LOBE_LABEL: dict[str, int] = {name: i + 1 for i, name in enumerate(LOBE_NAMES)}
RIGHT_LOBES = ("RUL", "RML", "RLL")
LEFT_LOBES = ("LUL", "lingula", "LLL")

# (lobe, segment) -> label = index + 1 in the segment map.
SEGMENTS: tuple[tuple[str, str], ...] = (
    ("RUL", "apical"), ("RUL", "posterior"), ("RUL", "anterior"),
    ("RML", "lateral"), ("RML", "medial"),
    ("RLL", "superior"), ("RLL", "medial basal"), ("RLL", "anterior basal"),
    ("RLL", "lateral basal"), ("RLL", "posterior basal"),
    ("LUL", "apicoposterior"), ("LUL", "anterior"),
    ("lingula", "superior"), ("lingula", "inferior"),
    ("LLL", "superior"), ("LLL", "anteromedial basal"), ("LLL", "lateral basal"), ("LLL", "posterior basal"),
)  # fmt: skip
SEGMENT_LABEL: dict[tuple[str, str], int] = {seg: i + 1 for i, seg in enumerate(SEGMENTS)}

# Tissue densities (HU) of the normal anatomy.
AIR = -1000.0
FAT = -100.0
MUSCLE = 45.0
BLOOD = 40.0
LUNG = -855.0
FLUID = 15.0
LIVER = 60.0
TRABECULAR = 280.0
CORTICAL = 850.0


@dataclass(frozen=True)
class Grid:
    """A canonical (z, y, x) voxel grid placed in the body frame."""

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]  # mm, (z, y, x)
    start: tuple[float, float, float]  # body-frame mm of voxel (0, 0, 0), (Z, Y, X)

    @property
    def z(self) -> np.ndarray:
        return (self.start[0] + self.spacing[0] * np.arange(self.shape[0])).astype(np.float32)

    @property
    def y(self) -> np.ndarray:
        return (self.start[1] + self.spacing[1] * np.arange(self.shape[1])).astype(np.float32)

    @property
    def x(self) -> np.ndarray:
        return (self.start[2] + self.spacing[2] * np.arange(self.shape[2])).astype(np.float32)

    def coords(self, zs: slice = slice(None), ys: slice = slice(None), xs: slice = slice(None)):
        """Broadcastable Z (n,1,1), Y (1,m,1), X (1,1,k) for a box of the grid."""
        return self.z[zs][:, None, None], self.y[ys][None, :, None], self.x[xs][None, None, :]

    def to_mm(self, idx: np.ndarray) -> np.ndarray:
        """(n, 3) voxel indices -> (n, 3) body-frame mm (Z, Y, X)."""
        return np.asarray(self.start) + np.asarray(idx, dtype=float) * np.asarray(self.spacing)

    def to_index(self, mm: np.ndarray) -> np.ndarray:
        """(n, 3) body-frame mm -> (n, 3) fractional voxel indices."""
        return (np.asarray(mm, dtype=float) - np.asarray(self.start)) / np.asarray(self.spacing)

    def box(self, lo_mm, hi_mm) -> tuple[slice, slice, slice] | None:
        """Index slices covering the mm box [lo, hi] clipped to the grid, or None when it misses."""
        lo = np.floor(self.to_index(np.asarray(lo_mm)[None])[0]).astype(int)
        hi = np.ceil(self.to_index(np.asarray(hi_mm)[None])[0]).astype(int) + 1
        lo = np.maximum(lo, 0)
        hi = np.minimum(hi, self.shape)
        if np.any(hi <= lo):
            return None
        return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))  # type: ignore[return-value]

    def chunks(self, n: int):
        for z0 in range(0, self.shape[0], n):
            yield slice(z0, min(z0 + n, self.shape[0]))


@dataclass(frozen=True)
class ChestParams:
    """Random but plausible body measurements (mm), drawn once per case."""

    body_ax: float
    body_ay: float
    fat: float
    muscle: float
    rib: float
    apex_z: float
    dome_right_z: float
    dome_left_z: float
    recess_depth: float
    med_halfwidth: float
    heart_center: tuple[float, float, float]  # Z, Y, X
    heart_axes: tuple[float, float, float]
    aorta_radius: float
    vertebra_radius: float
    trachea_radius: float
    major_right: tuple[float, float, float]  # Z intercept, slope dZ/dY, lateral curvature
    major_left: tuple[float, float, float]
    minor_z: float
    lingula_z: float
    rib_period: float
    rib_phase: float

    @classmethod
    def sample(cls, rng: np.random.Generator) -> ChestParams:
        u = rng.uniform
        body_ax = u(140, 172)
        return cls(
            body_ax=body_ax,
            body_ay=u(0.68, 0.8) * body_ax,
            fat=u(5, 20),
            muscle=u(6, 11),
            rib=u(8, 11),
            apex_z=u(95, 120),
            dome_right_z=u(-100, -75),
            dome_left_z=u(-118, -92),
            recess_depth=u(55, 80),
            med_halfwidth=u(18, 26),
            heart_center=(u(-85, -65), u(-32, -18), u(14, 28)),
            heart_axes=(u(50, 62), u(45, 55), u(55, 68)),
            aorta_radius=u(12, 16),
            vertebra_radius=u(15, 19),
            trachea_radius=u(7.5, 10),
            major_right=(u(-36, -20), u(0.85, 1.15), u(-0.004, 0.004)),
            major_left=(u(-30, -14), u(0.85, 1.15), u(-0.004, 0.004)),
            minor_z=u(-20, -2),
            lingula_z=u(-26, -10),
            rib_period=u(30, 36),
            rib_phase=u(0, 36),
        )


def _seg_dist(Z, Y, X, p0, p1):
    """Distance of points to the segment p0-p1 (mm, (Z, Y, X) order); broadcasts, keeps float32 inputs."""
    a0, a1, a2 = (float(v) for v in p0)
    d0, d1, d2 = (float(b) - float(a) for a, b in zip(p0, p1, strict=True))
    length2 = d0 * d0 + d1 * d1 + d2 * d2 or 1e-9
    z, y, x = Z - a0, Y - a1, X - a2
    t = (z * d0 + y * d1 + x * d2) * (1.0 / length2)
    np.clip(t, 0.0, 1.0, out=t)
    return np.sqrt((z - t * d0) ** 2 + (y - t * d1) ** 2 + (x - t * d2) ** 2)


class ChestModel:
    """The analytic chest of one case: label functions of body-frame points."""

    def __init__(self, p: ChestParams):
        self.p = p
        wall = p.fat + p.muscle + p.rib
        self.cav_ax = p.body_ax - wall
        self.cav_ay = p.body_ay - wall
        self.cav_cy = 0.0
        self.vert_y = self.cav_ay - 0.55 * p.vertebra_radius
        self.trachea_y = self.vert_y - p.vertebra_radius - p.trachea_radius - 14
        self.hilum = {
            "right": np.array([-12.0, self.trachea_y + 22, -p.med_halfwidth - 14]),
            "left": np.array([-6.0, self.trachea_y + 26, p.med_halfwidth + 18]),
        }
        self.carina = np.array([0.0, self.trachea_y, 0.0])
        hz, hy, _ = p.heart_center
        # Aorta: ascending from the heart, arch over the left main bronchus, descending left of the spine.
        self.aorta = [
            np.array([hz + 30, hy + 8, 6.0]),
            np.array([22.0, hy + 14, 8.0]),
            np.array([34.0, self.trachea_y + 6, 12.0]),
            np.array([26.0, self.vert_y - 6, 24.0]),
            np.array([-260.0, self.vert_y - 8, 22.0]),
        ]
        self.pulmonary_trunk = [np.array([hz + 35, hy - 5, 18.0]), np.array([2.0, hy + 22, 22.0])]
        self.segment_quantiles: dict[str, dict[str, float]] = {}
        self.lobe_points: dict[str, np.ndarray] = {}

    # --- body and walls -------------------------------------------------------------------------------
    def body(self, Z, Y, X, inset: float = 0.0):
        """Inside the skin (or ``inset`` mm under it): an ellipse flattened at the back, where the patient lies."""
        p = self.p
        ax, ay = p.body_ax - inset, p.body_ay - inset
        back = np.abs(np.maximum(Y, 0) / ay) ** 3.0
        front = (np.minimum(Y, 0) / ay) ** 2
        return (X / ax) ** 2 + back + front + 0 * Z < 1.0

    def cavity_radius(self, Z, Y, X):
        """Normalised radius of the thoracic cavity ellipse (< 1 inside); widens a little towards the base."""
        scale = 1.0 + 0.06 * np.clip(-Z / 150.0, -1.0, 1.0)
        return np.sqrt((X / (self.cav_ax * scale)) ** 2 + ((Y - self.cav_cy) / (self.cav_ay * scale)) ** 2)

    def diaphragm_z(self, Y, X):
        """Height of the diaphragm under each point: two domes with deep posterior and lateral recesses."""
        p = self.p
        right = p.dome_right_z - p.recess_depth * (
            ((X + 0.45 * self.cav_ax) / (0.75 * self.cav_ax)) ** 2
            + ((Y + 0.1 * self.cav_ay) / self.cav_ay) ** 2
        )
        left = p.dome_left_z - p.recess_depth * (
            ((X - 0.45 * self.cav_ax) / (0.75 * self.cav_ax)) ** 2
            + ((Y + 0.1 * self.cav_ay) / self.cav_ay) ** 2
        )
        return np.where(X < 0, right, left) - 12.0 * np.clip(Y / self.cav_ay, 0, 1)

    def heart(self, Z, Y, X, margin: float = 0.0):
        hz, hy, hx = self.p.heart_center
        az, ay, ax = (a + margin for a in self.p.heart_axes)
        return ((Z - hz) / az) ** 2 + ((Y - hy) / ay) ** 2 + ((X - hx) / ax) ** 2 < 1.0

    def aorta_dist(self, Z, Y, X):
        d = None
        for a, b in zip(self.aorta[:-1], self.aorta[1:], strict=True):
            di = _seg_dist(Z, Y, X, a, b)
            d = di if d is None else np.minimum(d, di)
        return d

    def mediastinum_halfwidth(self, Z, Y):
        """Half-width of the central band between the lungs: narrow anteriorly (junction line)."""
        w = self.p.med_halfwidth
        anterior = 1.0 / (1.0 + np.exp((Y - (self.trachea_y - 30)) / 8.0))
        return w * (1.0 - 0.65 * anterior) + 0 * Z

    def spine_exclusion(self, Z, Y, X):
        r = self.p.vertebra_radius + 7
        return (X**2 + (Y - self.vert_y) ** 2 < r**2) | ((np.abs(X) < r) & (self.vert_y < Y)) | (0 * Z > 1)

    # --- lungs and lobes ------------------------------------------------------------------------------
    def lung_side(self, Z, Y, X):
        """0 outside the lungs, 1 right lung, 2 left lung."""
        p = self.p
        Z, Y, X = np.broadcast_arrays(Z, Y, X)
        inside = (self.cavity_radius(Z, Y, X) < 1.0) & (self.diaphragm_z(Y, X) < Z)
        inside &= np.abs(X) > self.mediastinum_halfwidth(Z, Y)
        inside &= ~self.spine_exclusion(Z, Y, X)
        # Apices: each lung ends in a dome above the top of the cavity.
        cap_z = p.apex_z - 75.0
        side_x = np.where(X < 0, -0.48, 0.48) * self.cav_ax
        cap = ((X - side_x) / (0.52 * self.cav_ax)) ** 2 + (
            (Y - 0.05 * self.cav_ay) / (0.85 * self.cav_ay)
        ) ** 2
        cap = cap + (np.maximum(Z - cap_z, 0) / 75.0) ** 2
        inside &= cap < 1.0
        # The costlier exclusions (heart, aorta) only for the points still in.
        idx = np.nonzero(inside)
        z, y, x = Z[idx], Y[idx], X[idx]
        keep = ~self.heart(z, y, x, margin=4.0) & (self.aorta_dist(z, y, x) > p.aorta_radius + 4.0)
        out = np.zeros(inside.shape, dtype=np.uint8)
        out[idx] = np.where(keep, np.where(x < 0, 1, 2), 0)
        return out

    def major_fissure_dz(self, Z, Y, X, side: str):
        """Signed height above the major fissure (mm along Z): > 0 upper (and middle) lobe, < 0 lower lobe."""
        a, b, c = self.p.major_right if side == "right" else self.p.major_left
        # Laterally the fissure lies further forward, so axial slices cut it as an oblique line running
        # from posteromedial to anterolateral.
        lateral = np.abs(X) - 0.5 * self.cav_ax
        k = 0.35
        norm = np.sqrt(1 + b * b * (1 + k * k))
        return Z - (a + b * (Y + k * lateral) + c * lateral**2), norm

    def minor_fissure_dz(self, Z, Y, X):
        return Z - (self.p.minor_z + 0.12 * (Y - self.trachea_y) + 0 * X)

    def lingula_dz(self, Z, Y, X):
        return Z - (self.p.lingula_z - 0.35 * Y + 0 * X)

    def lobe(self, Z, Y, X, side=None):
        """Lobe label (1..6 as LOBE_NAMES, 0 outside the lungs) of each point."""
        if side is None:
            side = self.lung_side(Z, Y, X)
        maj_r, _ = self.major_fissure_dz(Z, Y, X, "right")
        maj_l, _ = self.major_fissure_dz(Z, Y, X, "left")
        right = np.where(maj_r < 0, 3, np.where(self.minor_fissure_dz(Z, Y, X) > 0, 1, 2))
        left = np.where(maj_l < 0, 6, np.where(self.lingula_dz(Z, Y, X) > 0, 4, 5))
        return np.where(side == 1, right, np.where(side == 2, left, 0)).astype(np.uint8)

    def fit_segments(self, samples: dict[str, np.ndarray]) -> None:
        """Learn per-lobe coordinate quantiles from sampled lobe points; segments are cut at them."""
        for lobe, pts in samples.items():
            z, y, ax = pts[:, 0], pts[:, 1], np.abs(pts[:, 2])
            q = {
                "z30": np.quantile(z, 0.70),
                "z50": np.quantile(z, 0.50),
                "z72": np.quantile(z, 0.72),
                "z55": np.quantile(z, 0.55),
                "y35": np.quantile(y, 0.35),
                "y40": np.quantile(y, 0.40),
                "y50": np.quantile(y, 0.50),
                "y65": np.quantile(y, 0.65),
                "x20": np.quantile(ax, 0.20),
                "x50": np.quantile(ax, 0.50),
                "x55": np.quantile(ax, 0.55),
            }
            self.segment_quantiles[lobe] = {k: float(v) for k, v in q.items()}

    def segment(self, lobe, Z, Y, X):
        """Segment label (SEGMENT_LABEL) of points whose lobe label is ``lobe`` (array of labels)."""
        Z, Y, X = np.broadcast_arrays(Z, Y, X)
        ax = np.abs(X)
        out = np.zeros(lobe.shape, dtype=np.uint8)
        q = self.segment_quantiles
        S = SEGMENT_LABEL

        def put(lobe_name, values):
            sel = lobe == LOBE_LABEL[lobe_name]
            out[sel] = values[sel]

        if "RUL" in q:
            r = q["RUL"]
            put("RUL", np.where(r["z30"] < Z, S["RUL", "apical"],
                                np.where(r["y50"] < Y, S["RUL", "posterior"], S["RUL", "anterior"])))  # fmt: skip
        if "RML" in q:
            r = q["RML"]
            put("RML", np.where(ax > r["x50"], S["RML", "lateral"], S["RML", "medial"]))
        if "RLL" in q:
            r = q["RLL"]
            basal = np.where(
                ax < r["x20"], S["RLL", "medial basal"],
                np.where(r["y65"] < Y, S["RLL", "posterior basal"],
                         np.where(ax > r["x55"], S["RLL", "lateral basal"], S["RLL", "anterior basal"])))  # fmt: skip
            put("RLL", np.where(r["z72"] < Z, S["RLL", "superior"], basal))
        if "LUL" in q:
            r = q["LUL"]
            put(
                "LUL",
                np.where((r["z55"] < Z) & (r["y35"] < Y), S["LUL", "apicoposterior"], S["LUL", "anterior"]),
            )
        if "lingula" in q:
            r = q["lingula"]
            put("lingula", np.where(r["z50"] < Z, S["lingula", "superior"], S["lingula", "inferior"]))
        if "LLL" in q:
            r = q["LLL"]
            basal = np.where(
                r["y65"] < Y, S["LLL", "posterior basal"],
                np.where(ax > r["x55"], S["LLL", "lateral basal"], S["LLL", "anteromedial basal"]))  # fmt: skip
            put("LLL", np.where(r["z72"] < Z, S["LLL", "superior"], basal))
        return out

    def lung_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        lo = np.array(
            [
                min(self.p.dome_right_z, self.p.dome_left_z) - self.p.recess_depth - 25,
                -self.cav_ay * 1.1,
                -self.cav_ax * 1.1,
            ]
        )
        hi = np.array([self.p.apex_z + 2, self.cav_ay * 1.1, self.cav_ax * 1.1])
        return lo, hi

    def sample_lobe_points(self, rng: np.random.Generator, n_per_lobe: int) -> dict[str, np.ndarray]:
        """Uniform random points inside each lobe (rejection sampling in the lung bounding box)."""
        lo, hi = self.lung_bounds()
        found: dict[int, list[np.ndarray]] = {i: [] for i in range(1, 7)}
        counts = dict.fromkeys(range(1, 7), 0)
        for _ in range(40):
            pts = rng.uniform(lo, hi, size=(20000, 3))
            lab = self.lobe(pts[:, 0], pts[:, 1], pts[:, 2])
            for i in range(1, 7):
                if counts[i] < n_per_lobe:
                    sel = pts[lab == i][: n_per_lobe - counts[i]]
                    found[i].append(sel)
                    counts[i] += len(sel)
            if all(c >= n_per_lobe for c in counts.values()):
                break
        return {LOBE_NAMES[i - 1]: np.concatenate(found[i]) for i in range(1, 7) if counts[i] > 20}


@dataclass
class Tree:
    """A branching tube tree: node positions (mm), parent index (-1 root), radius of the tube ending at each node."""

    points: np.ndarray
    parent: np.ndarray
    radius: np.ndarray
    generation: np.ndarray
    lobe: np.ndarray  # lobe label of the subtree

    def segments(self, max_generation: int = 99):
        keep = (self.parent >= 0) & (self.generation <= max_generation)
        idx = np.flatnonzero(keep)
        return self.points[self.parent[idx]], self.points[idx], self.radius[idx], idx


def grow_tree(
    root: np.ndarray,
    lobe_points: dict[str, np.ndarray],
    rng: np.random.Generator,
    depth: int,
    root_radius: float,
    reach: float = 0.6,
) -> Tree:
    """Grow one tree per lobe from a common root by recursive halving of the lobe's point cloud.

    Each branch heads towards the centroid of its share of the lobe, so branches fill the lobe evenly and
    never cross a (planar) fissure: a segment between two points of one half-space stays in it.
    """
    pts_out = [np.asarray(root, dtype=float)]
    parent = [-1]
    radius = [root_radius]
    gen = [0]
    lobe_of = [0]

    def grow(node: int, cloud: np.ndarray, r: float, g: int, lab: int, frac: float):
        centroid = cloud.mean(axis=0)
        start = pts_out[node]
        leaf = g >= depth or len(cloud) < 16
        if leaf:
            # Leaves run on towards the far edge of their share, so that vessels reach the periphery.
            dist = np.linalg.norm(cloud - start, axis=1)
            target = cloud[np.argsort(dist)[int(0.85 * (len(cloud) - 1))]]
            end = start + 0.9 * (target - start)
        else:
            end = start + frac * (centroid - start)
        pts_out.append(end)
        parent.append(node)
        radius.append(r)
        gen.append(g)
        lobe_of.append(lab)
        me = len(pts_out) - 1
        if leaf:
            return
        centred = cloud - centroid
        # Split across the longest spread, with a little randomness so that trees differ per case.
        sub = centred[:: max(1, len(centred) // 400)]
        _, _, vt = np.linalg.svd(sub, full_matrices=False)
        axis = vt[0] + rng.normal(0, 0.25, 3)
        proj = centred @ axis
        cut = np.quantile(proj, rng.uniform(0.4, 0.6))
        for part in (cloud[proj < cut], cloud[proj >= cut]):
            if len(part) >= 4:
                grow(me, part, r * rng.uniform(0.74, 0.82), g + 1, lab, reach)

    for name, cloud in lobe_points.items():
        grow(0, cloud, root_radius, 1, LOBE_LABEL[name], 0.45)
    return Tree(
        points=np.array(pts_out),
        parent=np.array(parent),
        radius=np.array(radius),
        generation=np.array(gen),
        lobe=np.array(lobe_of, dtype=np.uint8),
    )


def bronchial_tree(arteries: Tree, rng: np.random.Generator, max_generation: int) -> Tree:
    """Bronchi run beside the arteries: each node shifted sideways by a little more than the two radii."""
    keep = arteries.generation <= max_generation
    pts = arteries.points.copy()
    for i in range(len(pts)):
        if not keep[i] or arteries.parent[i] < 0:
            continue  # roots (the hila) stay where the main bronchi end
        d = pts[i] - pts[arteries.parent[i]]
        d /= np.linalg.norm(d) + 1e-9
        side = np.cross(d, rng.normal(size=3))
        side /= np.linalg.norm(side) + 1e-9
        lumen = 0.8 * arteries.radius[i]
        pts[i] = pts[i] + side * (arteries.radius[i] + lumen + 1.5)
    gen = np.where(keep, arteries.generation, 999)
    return Tree(
        points=pts, parent=arteries.parent, radius=0.8 * arteries.radius, generation=gen, lobe=arteries.lobe
    )


def render_tubes(
    vol: np.ndarray,
    grid: Grid,
    p0s: np.ndarray,
    p1s: np.ndarray,
    radii: np.ndarray,
    value: float,
    where: np.ndarray | None = None,
    core: np.ndarray | None = None,
    shell: float = 0.0,
) -> None:
    """Paint tubes (capsules) into ``vol`` with a partial-volume edge; ``core`` (bool) collects voxels whose
    centre lies inside a tube (inside radius + shell when shell > 0, outside radius: a wall ring)."""
    h = float(np.mean(grid.spacing))
    for p0, p1, r in zip(p0s, p1s, radii, strict=True):
        outer = r + shell
        pad = outer + h
        box = grid.box(np.minimum(p0, p1) - pad, np.maximum(p0, p1) + pad)
        if box is None:
            continue
        Z, Y, X = grid.coords(*box)
        d = _seg_dist(Z, Y, X, p0, p1)
        if shell > 0:
            # A ring: the wall between r and r + shell.
            occ = np.clip(0.5 - (d - outer) / h, 0, 1) * np.clip(0.5 + (d - r) / h, 0, 1)
            inside = (d <= outer) & (d >= r)
        else:
            occ = np.clip(0.5 - (d - r) / h, 0, 1) * min(1.0, 2.0 * r / h)
            inside = d <= r
        if where is not None:
            occ = occ * where[box]
            inside &= where[box]
        sub = vol[box]
        sub += (occ * (value - sub)).astype(vol.dtype)
        if core is not None:
            core[box] |= inside


FISSURE_MM = 0.6  # apparent fissure thickness: a thin line at 1 mm, barely a haze at 4 mm


def _slab_overlap(dist, thickness: float, h: float):
    """Fraction of a voxel of size h (along the normal) covered by a slab of ``thickness`` at distance dist."""
    lo = np.maximum(dist - h / 2, -thickness / 2)
    hi = np.minimum(dist + h / 2, thickness / 2)
    return np.clip((hi - lo) / h, 0.0, 1.0)


@dataclass
class ChestVolumes:
    """The rendered normal chest of one case, all canonical (z, y, x)."""

    hu: np.ndarray  # float32, before noise
    lobes: np.ndarray  # uint8, LOBE_LABEL
    segments: np.ndarray  # uint8, SEGMENT_LABEL
    thorax: np.ndarray  # bool: thoracic cavity above the diaphragm (lungs + mediastinum)
    airway: np.ndarray  # bool: airway lumen
    arteries: Tree
    veins: Tree
    bronchi: Tree


def render_chest(model: ChestModel, grid: Grid, rng: np.random.Generator, detail: int) -> ChestVolumes:
    """Render the normal anatomy of ``model`` on ``grid``; ``detail`` = vessel tree depth (5 small, 7 real)."""
    p = model.p
    lobe_points = model.sample_lobe_points(rng, 2500 if detail <= 5 else 5000)
    model.fit_segments(lobe_points)
    model.lobe_points = lobe_points

    shape = grid.shape
    hu = np.full(shape, AIR, dtype=np.float32)
    lobes = np.zeros(shape, dtype=np.uint8)
    segments = np.zeros(shape, dtype=np.uint8)
    thorax = np.zeros(shape, dtype=bool)
    airway = np.zeros(shape, dtype=bool)
    h_mean = float(np.mean(grid.spacing))
    chunk = max(4, int(4_000_000 // (shape[1] * shape[2])))

    # Everything that does not depend on Z is computed once, on the (y, x) plane.
    Y = grid.y[:, None]
    X = grid.x[None, :]
    plane = (shape[1], shape[2])
    table_top = p.body_ay + 6.0
    table = (table_top < Y) & (table_top + 45 > Y) & (np.abs(X) < 220)
    table_shell = table & ((table_top + 3 > Y) | (table_top + 42 < Y))
    body = model.body(0.0, Y, X)
    muscle = model.body(0.0, Y, X, inset=p.fat)
    cr_plane = np.sqrt((X / model.cav_ax) ** 2 + ((Y - model.cav_cy) / model.cav_ay) ** 2)
    dz_plane = np.broadcast_to(model.diaphragm_z(Y, X), plane)
    rib_width = p.rib / min(model.cav_ax, model.cav_ay)
    rib_shift = 45.0 * (1.0 - Y / model.cav_ay) + p.rib_phase  # ribs run down and forward
    cartilage = np.abs(X) < 0.28 * model.cav_ax
    sternum_plane = (-0.8 * model.cav_ay > Y) & (np.abs(X) < 17)
    stomach_plane = (X - 0.45 * model.cav_ax) ** 2 / 60**2 + (Y + 0.35 * model.cav_ay) ** 2 / 45**2
    rv = p.vertebra_radius
    rr = np.sqrt(X**2 + (Y - model.vert_y) ** 2)
    canal_y = model.vert_y + rv + 9
    rc = np.sqrt(X**2 + (Y - canal_y) ** 2)
    spine_layers = [
        (rr < rv, CORTICAL),
        (rr < rv - 2.0, TRABECULAR),
        ((rc < 14) & (rc >= 8) & (model.vert_y + rv - 2 < Y), CORTICAL - 250),
        (rc < 8, 25.0),
        (
            (np.abs(X) < 5) & (canal_y + 12 < Y) & (min(canal_y + 48, p.body_ay - p.fat - 4) > Y),
            CORTICAL - 250,
        ),
        ((np.abs(Y - canal_y) < 5) & (np.abs(X) > 12) & (np.abs(X) < 42), CORTICAL - 300),
    ]
    disc_plane = rr < rv - 1.0
    esophagus = np.hypot(X - 8, Y - (model.trachea_y + p.trachea_radius + 9)) < 7
    tr = np.hypot(X, Y - model.trachea_y)
    trachea_wall, trachea_lumen = tr < p.trachea_radius + 2.0, tr < p.trachea_radius
    lung_base = np.broadcast_to(LUNG + 35.0 * np.clip(Y / model.cav_ay, -1, 1), plane)

    for z_index, zv in enumerate(grid.z):
        h = hu[z_index]
        zv = float(zv)
        h[table] = -920.0
        h[table_shell] = 180.0
        h[body] = FAT
        h[muscle] = MUSCLE
        scale = 1.0 + 0.06 * float(np.clip(-zv / 150.0, -1.0, 1.0))
        cr = cr_plane / scale
        cav = cr < 1.0
        # Ribs: oblique bands in the ring outside the cavity, lower anteriorly; costal cartilage near the sternum.
        ring = (cr >= 1.0) & (cr < 1.0 + rib_width)
        phase = np.mod(zv + rib_shift, p.rib_period)
        rib = ring & (phase < 11.0) & (dz_plane - 30 < zv) if zv < p.apex_z + 5 else np.zeros(plane, bool)
        h[rib & ~cartilage] = TRABECULAR + 200
        h[rib & ~cartilage & ((phase < 2.0) | (phase > 9.0))] = CORTICAL
        h[rib & cartilage & (Y < 0)] = 110.0
        if -135 < zv < 70:
            h[sternum_plane & ring] = TRABECULAR + 120
        h[cav] = FAT + 15
        abdomen = cav & (dz_plane > zv)
        h[abdomen] = LIVER
        left_abd = abdomen & (X > 25)
        h[left_abd & (Y > 0)] = 50.0  # spleen
        stomach = left_abd & (stomach_plane + (zv - dz_plane + 45) ** 2 / 40**2 < 1)
        h[stomach] = FLUID
        h[stomach & (dz_plane - 28 < zv)] = AIR
        h[cav & (dz_plane - 5 <= zv) & (dz_plane > zv)] = MUSCLE  # diaphragm
        # Spine: vertebral bodies with cortex and discs, canal, arch and processes.
        for mask, value in spine_layers:
            h[mask] = value
        if np.mod(zv + p.rib_phase, 28.0) < 5.0:
            h[disc_plane] = 90.0
        # Mediastinum: esophagus and trachea (heart and great vessels are painted in their boxes below).
        if zv > -160:
            h[esophagus] = 35.0
        if zv > model.carina[0]:
            h[trachea_wall] = 50.0
            h[trachea_lumen] = AIR
            airway[z_index] |= trachea_lumen
        thorax[z_index] = cav & (dz_plane <= zv)

    # The heart, in its box.
    hz, hy, hx = p.heart_center
    box = grid.box(
        np.array([hz, hy, hx]) - np.array(p.heart_axes), np.array([hz, hy, hx]) + np.array(p.heart_axes)
    )
    if box is not None:
        Zb, Yb, Xb = grid.coords(*box)
        heart = np.broadcast_to(model.heart(Zb, Yb, Xb), hu[box].shape)
        hu[box][heart] = BLOOD + 5

    # Lung density drifts slowly (perfusion, partial inspiration): a few random plane waves, about +-12 HU,
    # so that no single threshold separates normal lung from faint disease.
    k = rng.normal(size=(6, 3))
    k *= (2 * np.pi / rng.uniform(30, 90, size=6) / np.linalg.norm(k, axis=1))[:, None]
    phase0 = rng.uniform(0, 2 * np.pi, size=6)

    def waves(z, y, x):
        out = np.zeros(z.shape, dtype=np.float32)
        for (kz, ky, kx), ph in zip(k, phase0, strict=True):
            out += np.float32(5.0) * np.cos(kz * z + ky * y + kx * x + ph).astype(np.float32)
        return out

    # Lungs, lobes, segments and fissures: evaluated only at points inside the thoracic cavity.
    for zs in grid.chunks(chunk):
        idx = np.nonzero(thorax[zs])
        if not len(idx[0]):
            continue
        z = grid.z[zs][idx[0]]
        y = grid.y[idx[1]]
        x = grid.x[idx[2]]
        side = model.lung_side(z, y, x)
        inl = side > 0
        idx = tuple(i[inl] for i in idx)
        z, y, x, side = z[inl], y[inl], x[inl], side[inl]
        lab = model.lobe(z, y, x, side=side)
        value = lung_base[idx[1], idx[2]] + waves(z, y, x)
        # Fissures: thin sheets of soft tissue, box-filtered into the voxels they cross.
        for s_name, side_label in (("right", 1), ("left", 2)):
            dzm, norm = model.major_fissure_dz(z, y, x, s_name)
            occ = _slab_overlap(np.abs(dzm) / norm, FISSURE_MM, h_mean) * (side == side_label)
            value += occ * (-120.0 - value)
        occ = _slab_overlap(np.abs(model.minor_fissure_dz(z, y, x)), FISSURE_MM, h_mean) * (
            (lab == 1) | (lab == 2)
        )
        value += occ * (-120.0 - value)
        hu[zs][idx] = value
        lobes[zs][idx] = lab
        segments[zs][idx] = model.segment(lab, z, y, x)

    aorta = np.array(model.aorta)
    render_tubes(hu, grid, aorta[:-1], aorta[1:], np.full(len(aorta) - 1, p.aorta_radius), BLOOD)
    trunk = np.array(model.pulmonary_trunk)
    render_tubes(hu, grid, trunk[:1], trunk[1:], np.array([0.9 * p.aorta_radius]), BLOOD)
    # Vessel and bronchial trees, painted only inside the chest cavity above the diaphragm.
    depth = detail
    arteries = grow_tree(
        model.hilum["right"], {k: v for k, v in lobe_points.items() if k in RIGHT_LOBES}, rng, depth, 7.0
    )
    left_art = grow_tree(
        model.hilum["left"], {k: v for k, v in lobe_points.items() if k in LEFT_LOBES}, rng, depth, 7.0
    )
    arteries = _merge_trees(arteries, left_art)
    vein_roots = {
        s: model.hilum[s] + np.array([-28.0, -14.0, 6.0 if s == "right" else -6.0]) for s in model.hilum
    }
    veins = _merge_trees(
        grow_tree(
            vein_roots["right"],
            {k: v for k, v in lobe_points.items() if k in RIGHT_LOBES},
            rng,
            depth,
            6.5,
            0.68,
        ),
        grow_tree(
            vein_roots["left"],
            {k: v for k, v in lobe_points.items() if k in LEFT_LOBES},
            rng,
            depth,
            6.5,
            0.68,
        ),
    )
    bronchi = bronchial_tree(arteries, rng, max_generation=3 if detail <= 5 else 4)
    for tree in (arteries, veins):
        p0, p1, r, _ = tree.segments()
        render_tubes(hu, grid, p0, p1, r, BLOOD, where=thorax)
    # Main bronchi join the carina to each hilum, where the lobar bronchi start.
    p0, p1, r, _ = bronchi.segments(max_generation=4)
    wall = np.maximum(0.6, 0.22 * r)
    mains_p0 = np.array([model.carina, model.carina])
    mains_p1 = np.array([model.hilum["right"], model.hilum["left"]])
    main_r = np.array([0.7, 0.65]) * p.trachea_radius
    all_p0 = np.concatenate([mains_p0, p0])
    all_p1 = np.concatenate([mains_p1, p1])
    all_r = np.concatenate([main_r, r])
    all_wall = np.concatenate([[2.0, 2.0], wall])
    for a, b, rad, w in zip(all_p0, all_p1, all_r, all_wall, strict=True):
        render_tubes(hu, grid, a[None], b[None], np.array([rad]), 30.0, where=thorax, shell=w)
    render_tubes(hu, grid, all_p0, all_p1, all_r, AIR, where=thorax, core=airway)
    return ChestVolumes(hu, lobes, segments, thorax, airway, arteries, veins, bronchi)


def _merge_trees(a: Tree, b: Tree) -> Tree:
    offset = len(a.points)
    return Tree(
        points=np.concatenate([a.points, b.points]),
        parent=np.concatenate([a.parent, np.where(b.parent >= 0, b.parent + offset, -1)]),
        radius=np.concatenate([a.radius, b.radius]),
        generation=np.concatenate([a.generation, b.generation]),
        lobe=np.concatenate([a.lobe, b.lobe]),
    )
