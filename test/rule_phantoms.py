"""Small hand-built chests for the zero-shot rules' tests: lungs, vessels, ribs, a chest wall and an anatomy
stand-in, at any voxel spacing, so a rule can be tested on the situation it must handle (thick slices, a
vessel branching, a rim along the chest wall) in a second, without the real anatomy module."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rexground.anatomy import LOBE_LABELS
from rexground.engines.zero_shot import ZeroShotEngine
from rexground.geometry import Geometry
from rexground.io import CTVolume
from rexground.synth.insert import insert_lesion, thick_slices
from rexground.text.parser import parse_finding


def ellipsoid_mm(shape, spacing, centre, radii) -> np.ndarray:
    axes = [(np.arange(n) + 0.5) * s for n, s in zip(shape, spacing, strict=True)]
    g = np.meshgrid(*axes, indexing="ij", sparse=True)
    return sum(((a - c) / r) ** 2 for a, c, r in zip(g, centre, radii, strict=True)) <= 1.0


def tube_mm(shape, spacing, p0, p1, radius) -> np.ndarray:
    """A straight tube (vessel) of ``radius`` mm between two points (mm)."""
    axes = [(np.arange(n) + 0.5) * s for n, s in zip(shape, spacing, strict=True)]
    g = np.meshgrid(*axes, indexing="ij", sparse=True)
    p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
    d = p1 - p0
    t = sum((a - p0[i]) * d[i] for i, a in enumerate(g)) / float(d @ d)
    t = np.clip(t, 0.0, 1.0)
    dist2 = sum((a - (p0[i] + t * d[i])) ** 2 for i, a in enumerate(g))
    return dist2 <= radius**2


@dataclass
class Chest:
    """A chest on a given grid: ``hu`` float32 (noise added by :meth:`ct`), masks, spacing (z, y, x) mm."""

    hu: np.ndarray
    spacing: tuple[float, float, float]
    body: np.ndarray
    lung_right: np.ndarray
    lung_left: np.ndarray
    cavity: np.ndarray  # both pleural cavities (lung + anything displacing it)
    targets: dict = field(default_factory=dict)

    @property
    def shape(self):
        return self.hu.shape

    def resliced(self, slice_mm: float) -> Chest:
        """The same chest on thick slices: HU averaged over each slab (a thick reconstruction), masks by
        majority."""
        hu, sp = thick_slices(self.hu, self.spacing, slice_mm)

        def mask(m):
            return thick_slices(m.astype(np.int16) * 1000, self.spacing, slice_mm)[0] >= 500

        return Chest(
            hu=hu.astype(np.float32), spacing=sp, body=mask(self.body), lung_right=mask(self.lung_right),
            lung_left=mask(self.lung_left), cavity=mask(self.cavity),
            targets={k: mask(v) for k, v in self.targets.items()},
        )  # fmt: skip

    def insert(self, name: str, centre_mm, diameter_mm: float, kind: str = "solid", density_hu=None) -> None:
        """A spherical lesion with its partial volume (rexground.synth.insert), noise-free (``ct`` adds it)."""
        self.hu, mask = insert_lesion(
            self.hu, self.spacing, centre_mm, diameter_mm, kind=kind, density_hu=density_hu, noise_hu=0.0
        )
        self.targets[name] = mask > 0

    def ct(self, noise_hu: float = 15.0, seed: int = 0) -> CTVolume:
        rng = np.random.default_rng(seed)
        hu = self.hu + rng.normal(0.0, noise_hu, self.shape).astype(np.float32)
        geom = Geometry(
            size=self.shape[::-1], spacing=tuple(self.spacing[::-1]), origin=(0.0, 0.0, 0.0),
            direction=tuple(np.eye(3).ravel()),
        )  # fmt: skip
        return CTVolume(hu=np.round(hu).astype(np.int16), geometry=geom)


def make_chest(spacing=(1.5, 1.5, 1.5), vessels: bool = True, ribs: bool = True) -> Chest:
    """Two lung ellipsoids (120 mm tall) in a soft-tissue body, tube vessels running craniocaudally and
    obliquely, ribs as bone rings around the cavities with intercostal muscle between them."""
    extent = (150.0, 120.0, 180.0)
    shape = tuple(round(e / s) for e, s in zip(extent, spacing, strict=True))
    sp = tuple(e / n for e, n in zip(extent, shape, strict=True))
    hu = np.full(shape, -1000.0, np.float32)
    body = ellipsoid_mm(shape, sp, (75.0, 60.0, 90.0), (1e9, 57.0, 86.0))
    hu[body] = 40.0  # muscle / soft tissue
    cav_r = ellipsoid_mm(shape, sp, (75.0, 60.0, 50.0), (60.0, 42.0, 32.0))
    cav_l = ellipsoid_mm(shape, sp, (75.0, 60.0, 130.0), (60.0, 42.0, 32.0))
    cavity = cav_r | cav_l
    if ribs:
        # Ribs: bone bands 6 mm tall every 20 mm, in a 5 mm shell just outside the cavities.
        shell = ellipsoid_mm(shape, sp, (75.0, 60.0, 50.0), (66.0, 48.0, 38.0)) | ellipsoid_mm(
            shape, sp, (75.0, 60.0, 130.0), (66.0, 48.0, 38.0)
        )
        shell &= ~(ellipsoid_mm(shape, sp, (75.0, 60.0, 50.0), (62.0, 44.0, 34.0)) | ellipsoid_mm(
            shape, sp, (75.0, 60.0, 130.0), (62.0, 44.0, 34.0)))  # fmt: skip
        z = (np.arange(shape[0]) + 0.5) * sp[0]
        rib_rows = ((z % 20.0) < 6.0)[:, None, None]
        hu[shell & rib_rows & body] = 500.0
    lung_r, lung_l = cav_r.copy(), cav_l.copy()
    hu[cavity] = -860.0
    if vessels:
        for p0, p1, r in (
            ((20, 50, 45), (130, 50, 45), 1.8),
            ((20, 75, 60), (130, 70, 55), 1.5),
            ((30, 45, 125), (125, 80, 135), 1.8),
            ((25, 70, 140), (130, 50, 120), 1.5),
        ):
            v = tube_mm(shape, sp, p0, p1, r) & cavity
            hu[v] = 40.0
    return Chest(hu=hu, spacing=sp, body=body, lung_right=lung_r, lung_left=lung_l, cavity=cavity)


class LobedAnatomyStandIn:
    """The place-answering half of rexground.anatomy.Anatomy for stand-ins that set ``lung_right``,
    ``lung_left``, ``lungs`` and ``lobes`` (labels of ``LOBE_LABELS``) on a working grid that is the CT grid:
    a side's lung, its named lobes within it (the whole side when they are absent), zones as the side."""

    def region(self, side="unspecified", lobes=(), zones=()):
        env = {"right": self.lung_right, "left": self.lung_left}.get(side, self.lungs)
        if lobes:
            sel = np.isin(self.lobes, [LOBE_LABELS[x] for x in lobes]) & env
            return sel if sel.any() else env
        return env

    def zone(self, name, side="unspecified"):
        return self.region(side)

    def to_ct_grid(self, arr):
        return np.asarray(arr).copy()


class FakeAnatomy(LobedAnatomyStandIn):
    """Enough of rexground.anatomy.Anatomy for the rules: exact lungs (the true cavities minus what the test
    says displaces them), lobes split by height (upper above 55%, lower below 45% of the lung), no airways,
    working grid = CT grid."""

    def __init__(self, chest: Chest, lungs_right=None, lungs_left=None):
        self.hu = chest.hu
        self.spacing_zyx = chest.spacing
        self.body = chest.body
        self.lung_right = chest.lung_right if lungs_right is None else lungs_right
        self.lung_left = chest.lung_left if lungs_left is None else lungs_left
        self.lungs = self.lung_right | self.lung_left
        self.lung_envelope = self.lungs.copy()
        # The cage: the cavities and 12 mm of chest wall around them, less the lungs' cores.
        from scipy import ndimage

        cage = ndimage.distance_transform_edt(~chest.cavity, sampling=chest.spacing) <= 12.0
        self.pleural_envelope = cage & chest.body & ~(self.lungs & ~_shell(self.lungs))
        self.airways = np.zeros(chest.shape, bool)
        self.mediastinum = np.zeros(chest.shape, bool)
        lobes = np.zeros(chest.shape, np.uint8)
        for lung, upper, lower in ((self.lung_right, 1, 3), (self.lung_left, 4, 6)):
            zs = np.flatnonzero(lung.any(axis=(1, 2)))
            if zs.size == 0:
                continue
            zn = ((np.arange(chest.shape[0]) - zs[0]) / max(1, zs[-1] - zs[0]))[:, None, None]
            lobes[lung & (zn >= 0.5)] = upper
            lobes[lung & (zn < 0.5)] = lower
        self.lobes = lobes


def _shell(mask: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    return mask & ~ndimage.binary_erosion(mask, iterations=2)


def predict(chest: Chest, texts: list[str], anat=None, noise_hu: float = 15.0):
    """The zero-shot engine with the stand-in anatomy and the real parser."""
    anat = anat if anat is not None else FakeAnatomy(chest)
    ct = chest.ct(noise_hu)
    anat.hu = ct.hu.astype(np.float32)  # the rules read the working grid's HU from the anatomy
    eng = ZeroShotEngine(anatomy_fn=lambda _: anat, parse_fn=parse_finding)
    return eng.predict(ct, texts)


def dice(a, b) -> float:
    a, b = np.asarray(a) > 0, np.asarray(b) > 0
    return float(2 * (a & b).sum() / max(a.sum() + b.sum(), 1))
