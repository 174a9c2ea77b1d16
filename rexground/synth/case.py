"""One phantom case: the grid and scanner quirks, the rendered chest, its findings, and its file geometry."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk

from rexground.geometry import Geometry, Orientation, image_from_raw_array
from rexground.synth.anatomy import ChestModel, ChestParams, Grid, render_chest

SIZES = ("small", "real")
# Canonical axis c holds world (LPS) axis _WORLD[c]: z -> 2 (S), y -> 1 (P), x -> 0 (L).
_WORLD = (2, 1, 0)


@dataclass(frozen=True, eq=False)  # eq=False: comparing mask arrays with == is ambiguous
class PhantomFinding:
    """One finding sentence and its exhaustive ground truth (entity values 1..n, canonical (z, y, x))."""

    text: str
    category: str
    mask_labels: np.ndarray = field(repr=False)
    side: str  # "right", "left", "bilateral"
    lobes: tuple[
        str, ...
    ]  # the lobes the sentence allows (every mask voxel lies in one of them, or beside it)
    segment: str | None = None  # e.g. "RLL lateral basal" when the sentence names one
    zones: tuple[str, ...] = ()
    pleural: bool = False  # lies outside the lungs, in the pleural space of ``side``

    @property
    def lobe(self) -> str | None:
        """The single lobe the sentence names, or None when it names several or none."""
        return self.lobes[0] if len(self.lobes) == 1 else None

    @property
    def n_entities(self) -> int:
        return int(self.mask_labels.max())

    def partial(self, rng: np.random.Generator, max_instances: int = 3) -> np.ndarray:
        """The training split's protocol: at most ``max_instances`` entities drawn, relabelled 1..k."""
        n = self.n_entities
        keep = np.sort(rng.choice(np.arange(1, n + 1), size=min(n, max_instances), replace=False))
        lut = np.zeros(max(n, 1) + 1, dtype=np.uint8)
        lut[keep] = np.arange(1, len(keep) + 1, dtype=np.uint8)
        return lut[self.mask_labels]


@dataclass
class PhantomCase:
    """A phantom CT with exact ground truth. Arrays are canonical (z, y, x); files use raw order."""

    seed: int
    size: str
    hu: np.ndarray  # int16, padding included where the case has it
    spacing_zyx: tuple[float, float, float]
    direction: np.ndarray  # 3x3, columns = raw index axes (i, j, k) in LPS
    origin: tuple[float, float, float]  # LPS mm of raw index (0, 0, 0)
    findings: list[PhantomFinding]
    lobes: np.ndarray  # uint8, 1 RUL, 2 RML, 3 RLL, 4 LUL, 5 lingula, 6 LLL
    segments: np.ndarray  # uint8, rexground.synth.anatomy.SEGMENT_LABEL
    airway: np.ndarray | None = field(default=None, repr=False)  # bool canonical: trachea and bronchial lumen
    padding_value: int | None = None
    distractors: list = field(default_factory=list)  # findings.Distractor: painted, described by no finding

    @property
    def orientation(self) -> Orientation:
        return Orientation.from_direction(self.direction)

    @property
    def geometry(self) -> Geometry:
        o = self.orientation
        size = [0, 0, 0]
        spacing = [0.0, 0.0, 0.0]
        for c, a in enumerate(o.raw_axis_for_canonical):
            size[a] = self.hu.shape[c]
            spacing[a] = self.spacing_zyx[c]
        return Geometry(
            size=tuple(size),  # type: ignore[arg-type]
            spacing=tuple(spacing),  # type: ignore[arg-type]
            origin=tuple(float(v) for v in self.origin),  # type: ignore[arg-type]
            direction=tuple(float(v) for v in self.direction.ravel()),
        )

    @property
    def raw_shape(self) -> tuple[int, int, int]:
        return self.geometry.size

    def to_raw(self, canonical: np.ndarray) -> np.ndarray:
        return self.geometry.to_raw(canonical)

    def to_image(self) -> sitk.Image:
        """The CT as a SimpleITK image: int16 HU in raw order with this case's spacing, origin, direction."""
        geom = self.geometry
        return geom.apply_to(image_from_raw_array(geom.to_raw(self.hu)))


def _choose_grid(rng: np.random.Generator, size: str, p: ChestParams, model: ChestModel) -> Grid:
    z_lo = min(p.dome_right_z, p.dome_left_z) - p.recess_depth - 35 - rng.uniform(0, 20)
    z_hi = p.apex_z + rng.uniform(20, 45)
    # The body (and most of the table) must fit inside the circular reconstruction field of view.
    need_fov = 2.0 * max(p.body_ax, p.body_ay + 45) + 24.0
    if size == "small":
        n_inplane = 96
        s_in = max(rng.uniform(3.3, 3.9), need_fov / n_inplane)
        s_z = rng.uniform(3.5, 4.2)
    elif size == "real":
        n_inplane = 768 if rng.random() < 0.2 else 512
        lo = max(0.6, need_fov / n_inplane)
        s_in = rng.uniform(lo, max(lo, 0.98 if n_inplane == 512 else 0.75))
        # 0.75 mm slices only on 512 matrices: a 768 x 768 x 490 case would need ~4 GB to render.
        s_z = float(rng.choice([0.75, 1.0, 1.0, 1.25, 1.5, 1.5] if n_inplane == 512 else [1.0, 1.25, 1.5]))
    else:
        raise ValueError(f"unknown phantom size {size!r}; expected one of {SIZES}")
    s_in = round(s_in, 4)
    nz = int(np.ceil((z_hi - z_lo) / s_z))
    centre_y = rng.uniform(-8, 8) + 20.0  # the table sits low in the field of view
    start = (
        z_lo,
        centre_y - s_in * (n_inplane - 1) / 2,
        rng.uniform(-8, 8) - s_in * (n_inplane - 1) / 2,
    )
    return Grid(shape=(nz, n_inplane, n_inplane), spacing=(round(s_z, 4), s_in, s_in), start=start)


@dataclass(frozen=True)
class ScannerQuirks:
    """How one case's file differs from a tidy one; drawn from the seed alone, apart from the anatomy."""

    padding_value: int | None  # outside the circular field of view, or None
    raw_axis_for_canonical: tuple[int, int, int]
    flips: tuple[bool, bool, bool]
    table_offset: tuple[float, float, float]  # mm added to the LPS origin

    @property
    def identity_direction(self) -> bool:
        return self.raw_axis_for_canonical == (2, 1, 0) and not any(self.flips)


def scanner_quirks(seed: int) -> ScannerQuirks:
    """Padding in about a third of the scans; a flipped or permuted direction in about 45%."""
    rng = np.random.default_rng([seed, 4242])
    padding = int(rng.choice([-2048, -8192, -3024])) if rng.random() < 0.35 else None
    perm, flips = _choose_orientation(rng)
    offset = (float(rng.uniform(-20, 20)), float(rng.uniform(-40, 40)), float(rng.uniform(-700, -100)))
    return ScannerQuirks(padding, perm, flips, offset)


def _choose_orientation(rng: np.random.Generator) -> tuple[tuple[int, int, int], tuple[bool, bool, bool]]:
    """Raw axis of each canonical axis and flips: identity mostly, RAS-style flips or permutations sometimes."""
    r = rng.random()
    if r < 0.55:
        return (2, 1, 0), (False, False, False)
    if r < 0.75:
        return (2, 1, 0), (False, True, True)  # x and y flipped, as many NIfTI converters write
    perm = tuple(int(v) for v in rng.permutation(3))
    flips = tuple(bool(v) for v in rng.random(3) < 0.5)
    return perm, flips  # type: ignore[return-value]


def _direction_and_origin(grid: Grid, perm, flips, world0: np.ndarray):
    direction = np.zeros((3, 3))
    for c, a in enumerate(perm):
        direction[_WORLD[c], a] = -1.0 if flips[c] else 1.0
    origin = np.array(world0, dtype=float)
    for c in range(3):
        if flips[c]:
            origin[_WORLD[c]] += (grid.shape[c] - 1) * grid.spacing[c]
    return direction, tuple(float(v) for v in origin)


def add_noise(hu: np.ndarray, rng: np.random.Generator, sigma: float, slab: int = 32) -> None:
    """Add Gaussian noise of std ``sigma`` smoothed by a [1, 2, 1] kernel along y and x, in place."""
    # The separable [1,2,1]/4 kernel keeps sqrt(6/16) of white noise's std on each axis.
    gain = np.float32(sigma / (6.0 / 16.0))
    for z0 in range(0, hu.shape[0], slab):
        n = rng.standard_normal(
            (min(slab, hu.shape[0] - z0), hu.shape[1] + 2, hu.shape[2] + 2), dtype=np.float32
        )
        n = n[:, :-2, :] + 2 * n[:, 1:-1, :] + n[:, 2:, :]
        n = n[:, :, :-2] + 2 * n[:, :, 1:-1] + n[:, :, 2:]
        n *= gain / 16.0
        hu[z0 : z0 + n.shape[0]] += n


def generate_case(seed: int, size: str = "small", categories: Sequence[str] | None = None) -> PhantomCase:
    """Generate one phantom case, deterministic per (seed, size, categories).

    ``categories`` forces the findings' categories (1 to 5 codes); by default 1-5 are drawn, the first
    being CATEGORY_CODES[seed % 14] so that any 14 consecutive seeds cover every category. A finding that
    cannot be drawn where it was planned is dropped, so ``findings`` may be empty (seed 3031 is such a
    case): a scan with nothing to describe, which the dataset writer and the training benchmark skip.
    """
    from rexground.synth.findings import add_findings

    rng = np.random.default_rng([seed, SIZES.index(size) if size in SIZES else 99])
    params = ChestParams.sample(rng)
    model = ChestModel(params)
    grid = _choose_grid(rng, size, params, model)
    chest = render_chest(model, grid, rng, detail=5 if size == "small" else 8)
    findings, distractors = add_findings(
        chest, model, grid, rng, seed=seed, categories=categories, small=size == "small"
    )
    chest.thorax = None  # no longer needed: free it before the noise pass (real cases are large)

    # Scanner noise, correlated in-plane as reconstruction kernels leave it; added slab by slab to bound memory.
    hu = chest.hu
    add_noise(hu, rng, rng.uniform(10, 22))
    np.clip(hu, -1024, 3071, out=hu)
    hu_i16 = np.rint(hu).astype(np.int16)
    del hu

    quirks = scanner_quirks(seed)
    padding_value = quirks.padding_value
    if padding_value is not None:
        cy = (grid.shape[1] - 1) / 2
        cx = (grid.shape[2] - 1) / 2
        yy = (np.arange(grid.shape[1]) - cy)[:, None] * grid.spacing[1]
        xx = (np.arange(grid.shape[2]) - cx)[None, :] * grid.spacing[2]
        radius = 0.5 * min(grid.shape[1] * grid.spacing[1], grid.shape[2] * grid.spacing[2])
        hu_i16[:, yy**2 + xx**2 > radius**2] = padding_value

    perm, flips = quirks.raw_axis_for_canonical, quirks.flips
    world0 = np.array(
        [
            grid.start[2] + quirks.table_offset[0],  # x (L)
            grid.start[1] + quirks.table_offset[1] + 150.0,  # y (P): scanners put the table below isocentre
            quirks.table_offset[2],  # z (S): arbitrary table position
        ]
    )
    direction, origin = _direction_and_origin(grid, perm, flips, world0)
    return PhantomCase(
        seed=seed,
        size=size,
        hu=hu_i16,
        spacing_zyx=grid.spacing,
        direction=direction,
        origin=origin,
        findings=findings,
        lobes=chest.lobes,
        segments=chest.segments,
        airway=chest.airway,
        padding_value=padding_value,
        distractors=distractors,
    )
