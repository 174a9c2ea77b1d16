"""Training data: cases prepared once at the model's spacing, and patches sampled with their prompts.

Preparation (``prepare_arrays``) turns a ReXGroundingCT entry into compact arrays at the model's spacing: the
CT as int16 HU clipped to the intensity window (``CtEncoding``), the anatomy channels packed into a few uint8
"words" (``rexground.train.anatomy_codec``: one volume for configs/real.toml's eight channels), the finding
labels (F, Z, Y, X) uint8 0/1, the ignore masks (see below) and foreground voxel coordinates for biased
sampling. ``rexground.train.cache`` stores them as chunked, compressed blosc2 arrays that a random patch reads
in a few milliseconds (format and measurements there), and ``rexground.train.prepare`` builds the cache for
a whole split (``rexground prepare``). Network channels are built per patch (``PreparedCase.image_patch``):
CT normalised as inference normalises it, anatomy expanded. Scans read from files are cropped to the body box
first (as inference crops them); validation cases also keep their whole native-grid entity labels for the
official metrics, and their CT channel as float32 network values (``norm_float32``): their image is then
exactly the network input inference computes for the CT, so validation scores what the package answers.

Partial labels. In the training split at most ``partial_label_cap`` (3) instances of a finding were drawn,
so when a finding has exactly that many instances, other look-alike lesions in the scan may be the same
finding left unlabelled. We do not treat them as certain negatives: voxels of *unlabelled components that
look like the labelled ones* get an ignore flag (BCE weight ``loss.ignore_weight``, 0 by default). "Look
like" = CT intensity inside the labelled voxels' 10th-90th percentile band (widened by 0.05) and a
component volume within [0.3 x the smallest, 3 x the largest] labelled instance, at least 2 voxels away
from the labelled ones. Vessels and airways pass the intensity test but form large connected trees, so they
stay negatives. Findings below the cap, and all validation/test findings (exhaustively drawn), get no
ignore mask. The same ignore mask applies when a finding is used as a negative prompt in a patch where its
labelled instances are absent.

Sampling (``PatchSampler``). A batch is a pure function of ``(seed, rank, step)``, which is what makes resume
exact and DDP ranks draw different data without coordination. With probability ``foreground_fraction`` a
patch is centred (with a +-1/4 patch jitter) on a random labelled voxel of a random finding, otherwise it
is placed uniformly. Prompts per patch: ``positives_per_patch`` findings whose target is non-empty in the
patch (the centred finding first), then negatives to fill ``prompts_per_patch``: findings of the same scan
whose target is empty in the patch (same category as a positive first: "the nodule in the *left* lung" on a
patch holding the right one is what teaches the network to read location), then sentences of other scans
whose category the scan has no finding of (a sentence of another scan could describe an unreported lesion
of this one; a category absent from the report is the safest choice). No spatial flips: a left-right flip
would contradict the sentence.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from rexground.infer.package import IntensityNormalisation
from rexground.infer.preprocess import air_value, normalise
from rexground.io import resample_zyx
from rexground.train.anatomy_codec import AnatomyCodec, EncodedAnatomy
from rexground.train.config import DataConfig, InputSpec

MAX_FG_COORDS = 20_000  # per finding, enough for sampling centres
CT_ENCODINGS = ("hu_int16", "norm_float16", "norm_float32")


@dataclass(frozen=True)
class CtEncoding:
    """How the CT channel is stored. ``hu_int16``: HU clipped to the intensity window and rounded (0.5 HU at
    most from the float value; 20% smaller compressed than float16 on real CTs, see ``cache``), normalised
    per patch exactly as inference normalises. ``norm_float16``: the network values in float16, as cache
    format 2 held them (the anatomy channels are rounded to float16 too, which changes only the coordinate
    levels): the learning benchmark's in-memory phantoms, so its batches stay bit for bit what they were.
    ``norm_float32``: the network values themselves, for validation cases: their image is exactly what
    ``rexground.infer.preprocess.prepare`` computes, so validation's Dice is the exported package's."""

    kind: str
    intensity: IntensityNormalisation

    def __post_init__(self) -> None:
        if self.kind not in CT_ENCODINGS:
            raise ValueError(f"unknown CT encoding {self.kind!r}; known: {', '.join(CT_ENCODINGS)}")
        if (
            self.kind == "hu_int16"
            and not -32768 <= self.intensity.clip_min < self.intensity.clip_max <= 32767
        ):
            raise ValueError(f"intensity window {self.intensity} does not fit int16 HU")

    @property
    def dtype(self) -> np.dtype:
        return np.dtype({"hu_int16": np.int16, "norm_float16": np.float16, "norm_float32": np.float32}[self.kind])

    def encode(self, hu_clipped: np.ndarray) -> np.ndarray:
        """Padding-clipped HU (float) at the model's spacing -> the stored array."""
        if self.kind == "hu_int16":
            window = np.clip(hu_clipped, self.intensity.clip_min, self.intensity.clip_max)
            return np.rint(window).astype(np.int16)
        return normalise(hu_clipped, self.intensity).astype(self.dtype)

    @property
    def pad_value(self) -> float:
        """Air (-1024 HU) in stored units: what a patch reaching outside the volume is padded with."""
        if self.kind == "hu_int16":
            return -1024.0
        return float(self.dtype.type(air_value(self.intensity)))

    def decode(self, stored: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Stored array -> float32 network values."""
        if self.kind == "hu_int16":
            return normalise(stored, self.intensity, out=out)
        if out is None:
            return np.asarray(stored, dtype=np.float32)
        out[...] = stored
        return out

    def to_json(self) -> dict:
        return {"kind": self.kind, "intensity": self.intensity.model_dump(mode="json")}

    @classmethod
    def from_json(cls, obj: Mapping) -> CtEncoding:
        return cls(kind=obj["kind"], intensity=IntensityNormalisation(**obj["intensity"]))


@dataclass
class PreparedCase:
    """One scan at the model's spacing, stored compactly. Volumes are numpy arrays (in memory) or lazily
    opened chunked arrays of the cache (``rexground.train.cache.ChunkedVolume``): anything whose
    ``[..., z0:z1, y0:y1, x0:x1]`` gives a numpy array. The network channels exist only per patch
    (``image_patch``) or on demand for a whole scan (``image``)."""

    name: str
    split: str
    ct: Any  # (Z, Y, X) stored as ``ct_encoding`` says
    ct_encoding: CtEncoding
    anatomy: Any | None  # (W, Z, Y, X) uint8 words of ``anatomy_codec``, or None without anatomy channels
    anatomy_codec: AnatomyCodec | None
    labels: Any  # (F, Z, Y, X) uint8 0/1
    ignore: Any | None  # (F, Z, Y, X) uint8 0/1, or None
    texts: list[str]
    categories: list[str]
    fg_coords: list[np.ndarray]  # per finding (N, 3) int32 voxel indices at the model's spacing
    native_shape: tuple[int, int, int]
    native_spacing: tuple[float, float, float]
    native_labels: np.ndarray | None = None  # (F, z, y, x) entity labels on the canonical CT grid (val only)
    crop: tuple[tuple[int, int], ...] | None = None  # native voxel range the image covers (None: all of it)
    native_labels_file: Path | None = None  # where load_case left the native labels (read on demand)
    extra: dict = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(Z, Y, X) at the model's spacing."""
        return tuple(int(n) for n in self.ct.shape)  # type: ignore[return-value]

    @property
    def n_channels(self) -> int:
        return 1 + (len(self.anatomy_codec.channels) if self.anatomy_codec is not None else 0)

    def image_patch(self, start: Sequence[int], size: Sequence[int]) -> np.ndarray:
        """(C, *size) float32 network input at ``start`` (may reach outside the volume): the CT channel
        padded with air, the anatomy channels 0 outside, as inference pads its tiles."""
        out = np.empty((self.n_channels, *size), np.float32)
        self.ct_encoding.decode(crop_pad(self.ct, start, size, self.ct_encoding.pad_value), out=out[0])
        if self.anatomy_codec is not None:
            self.anatomy_codec.decode(crop_pad(self.anatomy, start, size, 0), out=out[1:])
            if self.ct_encoding.kind == "norm_float16":  # format 2 held every channel in float16
                out[1:] = out[1:].astype(np.float16)
        return out

    @property
    def image(self) -> np.ndarray:
        """The whole (C, Z, Y, X) float32 network input (validation tiles it as inference does)."""
        return self.image_patch((0, 0, 0), self.shape)

    def labels_native(self) -> np.ndarray:
        """(F, z, y, x) entity labels on the full native canonical grid (validation cases)."""
        if self.native_labels is not None:
            return self.native_labels
        if self.native_labels_file is None:
            raise ValueError(f"{self.name}: no native labels were kept (a training case?)")
        with np.load(self.native_labels_file) as npz:
            return npz["labels"]

    @property
    def crop_slices(self) -> tuple[slice, slice, slice]:
        if self.crop is None:
            return tuple(slice(0, n) for n in self.native_shape)  # type: ignore[return-value]
        return tuple(slice(a, b) for a, b in self.crop)  # type: ignore[return-value]

    @property
    def n_findings(self) -> int:
        return len(self.texts)


# ---- partial labels ------------------------------------------------------------------------------------


def partial_label_ignore(ct_norm: np.ndarray, entities: np.ndarray, cap: int) -> np.ndarray | None:
    """Voxels that may be unlabelled instances of a finding whose labels stopped at ``cap`` instances.

    ``ct_norm``: normalised CT channel (Z, Y, X); ``entities``: entity labels of one finding on the same grid.
    Returns a uint8 mask or None when the finding is below the cap or nothing looks alike."""
    ids = np.unique(entities)
    ids = ids[ids > 0]
    if len(ids) < cap:
        return None
    labelled = entities > 0
    volumes = ndimage.sum_labels(np.ones_like(entities, dtype=np.float32), entities, ids)
    volumes = volumes[volumes > 0]
    if volumes.size == 0:
        return None
    values = ct_norm[labelled].astype(np.float32)
    lo, hi = np.percentile(values, [10, 90])
    band = (ct_norm >= lo - 0.05) & (ct_norm <= hi + 0.05)
    band &= ~ndimage.binary_dilation(labelled, iterations=2)
    comps, n = ndimage.label(band)
    if n == 0:
        return None
    sizes = np.bincount(comps.ravel(), minlength=n + 1)
    keep = (sizes >= 0.3 * volumes.min()) & (sizes <= 3.0 * volumes.max())
    keep[0] = False
    if not keep.any():
        return None
    return ndimage.binary_dilation(keep[comps], iterations=1).astype(np.uint8)


# ---- preparation ---------------------------------------------------------------------------------------


def prepare_arrays(
    *,
    name: str,
    split: str,
    hu_clipped_zyx: np.ndarray,
    spacing_zyx: tuple[float, float, float],
    entities_fzyx: np.ndarray,
    texts: Sequence[str],
    categories: Sequence[str],
    spec: InputSpec,
    data: DataConfig,
    anatomy: Mapping[str, np.ndarray] | EncodedAnatomy | None = None,
    keep_native_labels: bool = False,
    seed: int = 0,
    crop: tuple[slice, slice, slice] | None = None,
    ct_encoding: str = "hu_int16",
) -> PreparedCase:
    """Canonical HU (padding clipped) + canonical entity labels (F, z, y, x) -> a :class:`PreparedCase`.

    ``anatomy``: the prior masks on the CT grid ({channel: uint8}, as ``anatomy_channels.masks_from_anatomy``
    gives them) or already packed words (``anatomy_codec.encode_anatomy``); both give the same case. ``crop``
    (e.g. the body box inference crops to) limits the training arrays; native labels stay whole.
    ``ct_encoding``: see :class:`CtEncoding`; it applies to training cases: a validation case
    (``keep_native_labels``) always stores ``norm_float32``, exactly the network input inference computes."""
    if entities_fzyx.shape[1:] != hu_clipped_zyx.shape:
        raise ValueError(f"{name}: mask shape {entities_fzyx.shape[1:]} != CT shape {hu_clipped_zyx.shape}")
    if len(texts) != entities_fzyx.shape[0] or len(categories) != len(texts):
        raise ValueError(f"{name}: {entities_fzyx.shape[0]} mask channels for {len(texts)} findings")
    encoding = CtEncoding("norm_float32" if keep_native_labels else ct_encoding, spec.intensity)
    native_shape = tuple(int(n) for n in hu_clipped_zyx.shape)
    native_entities = entities_fzyx
    if crop is not None:
        hu_clipped_zyx = hu_clipped_zyx[crop]
        entities_fzyx = entities_fzyx[(slice(None), *crop)]
    hu = resample_zyx(hu_clipped_zyx, spacing_zyx, spec.spacing_zyx, order=1)
    ct = normalise(hu, spec.intensity)  # float32: what the partial-label test compares intensities in
    codec, words = None, None
    if spec.anatomy_channels:
        if anatomy is None:
            raise KeyError(f"{name}: the input spec needs anatomy channels {list(spec.anatomy_channels)}")
        if isinstance(anatomy, EncodedAnatomy):
            if anatomy.codec.channels != tuple(spec.anatomy_channels):
                raise ValueError(
                    f"{name}: anatomy words hold {anatomy.codec.channels}, not the spec's channels"
                )
            codec, native_words = anatomy.codec, anatomy.words
        else:
            codec = AnatomyCodec.for_channels(spec.anatomy_channels)
            try:
                native_words = codec.encode({k: anatomy[k] for k in codec.channels if k in anatomy})
            except KeyError as exc:
                raise KeyError(f"{name}: {exc.args[0]}") from None
        if crop is not None:
            native_words = native_words[(slice(None), *crop)]
        words = np.stack(
            [resample_zyx(w, spacing_zyx, spec.spacing_zyx, order=0, shape=ct.shape) for w in native_words]
        )
    labels = np.zeros((len(texts), *ct.shape), np.uint8)
    ignore = np.zeros_like(labels)
    any_ignore = False
    rng = np.random.default_rng(seed)
    fg_coords = []
    for f in range(len(texts)):
        ent = resample_zyx(entities_fzyx[f], spacing_zyx, spec.spacing_zyx, order=0, shape=ct.shape)
        if not ent.any() and entities_fzyx[f].any():
            # A lesion smaller than one target voxel: keep its centre so the finding stays trainable.
            com = np.asarray(ndimage.center_of_mass(entities_fzyx[f] > 0))
            idx = np.clip(
                np.round(com * np.asarray(ct.shape) / np.asarray(hu_clipped_zyx.shape)),
                0,
                np.asarray(ct.shape) - 1,
            ).astype(int)
            ent[tuple(idx)] = 1
        labels[f] = ent > 0
        if split == data.train_split and data.partial_ignore == "components":
            ig = partial_label_ignore(ct, ent, data.partial_label_cap)
            if ig is not None:
                ignore[f] = ig
                any_ignore = True
        coords = np.argwhere(labels[f]).astype(np.int32)
        if len(coords) > MAX_FG_COORDS:
            coords = coords[rng.choice(len(coords), MAX_FG_COORDS, replace=False)]
        fg_coords.append(coords)
    return PreparedCase(
        name=name,
        split=split,
        ct=encoding.encode(hu) if encoding.kind == "hu_int16" else ct.astype(encoding.dtype),
        ct_encoding=encoding,
        anatomy=words,
        anatomy_codec=codec,
        labels=labels,
        ignore=ignore if any_ignore else None,
        texts=list(texts),
        categories=list(categories),
        fg_coords=fg_coords,
        native_shape=native_shape,  # type: ignore[arg-type]
        native_spacing=tuple(float(s) for s in spacing_zyx),  # type: ignore[arg-type]
        native_labels=native_entities.astype(np.uint8) if keep_native_labels else None,
        crop=tuple((int(c.start), int(c.stop)) for c in crop) if crop is not None else None,
    )


def save_case(case: PreparedCase, folder: Path) -> Path:
    """Write a prepared case to the cache (``rexground.train.cache``, current format); atomic."""
    from rexground.train.cache import write_case

    return write_case(case, folder)


def load_case(folder: Path) -> PreparedCase:
    """A cached case with its volumes opened lazily (a patch reads only the chunks it covers); a cache of
    another format is refused with a message saying how to rebuild it."""
    from rexground.train.cache import read_case

    return read_case(folder)


def is_cached(folder: Path) -> bool:
    """True when ``folder`` holds a complete case of the current cache format."""
    from rexground.train.cache import cache_status

    return cache_status(folder) == "ok"


def spec_cache_key(spec: InputSpec, data: DataConfig) -> str:
    """Cache folder name: changes whenever anything that shapes the prepared arrays changes. The cache
    format is not part of it (from format 3 on): each scan's ``meta.json`` carries it, so a scan of another
    format under this key is refused, or rebuilt by ``rexground prepare``."""
    return _cache_key(spec, data, {})


def legacy_cache_key(spec: InputSpec, data: DataConfig) -> str:
    """The folder name format 2 (``image.npy`` / ``labels.npy`` per scan) used for the same settings: its key
    included the format, so an old cache is found there and refused with a rebuild hint."""
    return _cache_key(spec, data, {"format": 2})


def _cache_key(spec: InputSpec, data: DataConfig, extra: dict) -> str:
    import hashlib

    payload = json.dumps(
        {
            "spec": spec.model_dump(mode="json"),
            "cap": data.partial_label_cap,
            "ignore": data.partial_ignore,
            "train_split": data.train_split,
            **extra,
        },
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


# ---- patch sampling ------------------------------------------------------------------------------------


def crop_pad(arr: np.ndarray, start: Sequence[int], size: Sequence[int], pad_value: float) -> np.ndarray:
    """``arr[..., start:start+size]`` over the last three axes, padded with ``pad_value`` outside."""
    lead = arr.shape[:-3]
    out = np.full((*lead, *size), pad_value, dtype=arr.dtype)
    src, dst = [], []
    for s, n, dim in zip(start, size, arr.shape[-3:], strict=True):
        a, b = max(s, 0), min(s + n, dim)
        if b <= a:
            return out
        src.append(slice(a, b))
        dst.append(slice(a - s, b - s))
    out[(..., *dst)] = arr[(..., *src)]
    return out


@dataclass
class Batch:
    image: np.ndarray  # (B, C, Z, Y, X) float32
    target: np.ndarray  # (B*P, 1, Z, Y, X) float32 0/1
    weight: np.ndarray  # (B*P, 1, Z, Y, X) float32 per-voxel BCE weight (0 = ignored / padding)
    prompt: np.ndarray  # (B*P,) int64 index into the sampler's text table
    positive: np.ndarray  # (B*P,) bool: the target is non-empty
    prompts_per_image: int


class PatchSampler:
    """Deterministic patch + prompt sampler over prepared cases. See the module docstring."""

    def __init__(
        self,
        cases: Sequence[PreparedCase],
        texts: Sequence[str],
        spec: InputSpec,
        data: DataConfig,
        seed: int,
        ignore_weight: float = 0.0,
    ):
        if not cases:
            raise ValueError("no training cases")
        self.cases = list(cases)
        self.text_index = {t: i for i, t in enumerate(texts)}
        self.spec, self.data, self.seed = spec, data, int(seed)
        self.patch = tuple(spec.patch_size_zyx)
        self.ignore_weight = float(ignore_weight)
        self.findings = [
            (c, f)
            for c, case in enumerate(self.cases)
            for f in range(case.n_findings)
            if len(case.fg_coords[f])
        ]
        if not self.findings:
            raise ValueError("no training finding has a non-empty mask")
        # For cross-scan negatives: every (case, finding) by category.
        self.by_category: dict[str, list[tuple[int, int]]] = {}
        for c, case in enumerate(self.cases):
            for f, cat in enumerate(case.categories):
                self.by_category.setdefault(cat, []).append((c, f))

    def rng_for(self, step: int, rank: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, rank, step])

    def batch(self, step: int, rank: int, batch_size: int) -> Batch:
        rng = self.rng_for(step, rank)
        P = self.data.prompts_per_patch
        images, targets, weights, prompts, positive = [], [], [], [], []
        for _ in range(batch_size):
            img, tgt, wgt, prm, pos = self._sample_patch(rng, P)
            images.append(img)
            targets.extend(tgt)
            weights.extend(wgt)
            prompts.extend(prm)
            positive.extend(pos)
        return Batch(
            image=np.stack(images).astype(np.float32),
            target=np.stack(targets)[:, None].astype(np.float32),
            weight=np.stack(weights)[:, None].astype(np.float32),
            prompt=np.asarray(prompts, np.int64),
            positive=np.asarray(positive, bool),
            prompts_per_image=P,
        )

    def _start(self, rng: np.random.Generator, shape, centre=None) -> list[int]:
        start = []
        for d, (n, p) in enumerate(zip(shape, self.patch, strict=True)):
            lo, hi = min(0, n - p), max(0, n - p)
            if centre is None:
                s = int(rng.integers(lo, hi + 1))
            else:
                jitter = int(rng.integers(-(p // 4), p // 4 + 1))
                s = int(np.clip(int(centre[d]) - p // 2 + jitter, lo, hi))
            start.append(s)
        return start

    def _sample_patch(self, rng: np.random.Generator, n_prompts: int):
        centred: int | None = None
        if rng.random() < self.data.foreground_fraction:
            c, centred = self.findings[int(rng.integers(len(self.findings)))]
            case = self.cases[c]
            coords = case.fg_coords[centred]
            start = self._start(rng, case.shape, coords[int(rng.integers(len(coords)))])
        else:
            c = int(rng.integers(len(self.cases)))
            case = self.cases[c]
            start = self._start(rng, case.shape)
        image = case.image_patch(start, self.patch)  # anatomy channels 0 outside the volume, as at inference
        inside = crop_pad(_ones_view(case), start, self.patch, 0)
        labels = crop_pad(case.labels, start, self.patch, 0)
        ignore = crop_pad(case.ignore, start, self.patch, 0) if case.ignore is not None else None
        present = [f for f in range(case.n_findings) if labels[f].any()]
        # A finding whose mask is empty everywhere (a labelling gap) is never a prompt: "absent" would be a lie.
        absent = [f for f in range(case.n_findings) if f not in present and len(case.fg_coords[f])]

        pos: list[int] = []
        if centred is not None and centred in present:
            pos.append(centred)
        others = [f for f in present if f not in pos]
        rng.shuffle(others)
        pos += others[: max(0, self.data.positives_per_patch - len(pos))]
        pos = pos[: self.data.positives_per_patch] if self.data.positives_per_patch else []
        n_neg = n_prompts - len(pos)
        pos_cats = {case.categories[f] for f in pos}
        same_cat = [f for f in absent if case.categories[f] in pos_cats]
        other_same_scan = [f for f in absent if case.categories[f] not in pos_cats]
        rng.shuffle(same_cat)
        rng.shuffle(other_same_scan)
        neg_local = (same_cat + other_same_scan)[:n_neg]
        n_foreign = n_neg - len(neg_local)
        foreign = self._foreign_negatives(rng, c, n_foreign)

        weight_base = inside.astype(np.float32)
        tgt, wgt, prm, is_pos = [], [], [], []
        for f in pos + neg_local:
            tgt.append(labels[f])
            w = weight_base.copy()
            if ignore is not None:
                w[(ignore[f] > 0) & (labels[f] == 0)] = self.ignore_weight
            wgt.append(w)
            prm.append(self.text_index[case.texts[f]])
            is_pos.append(f in pos)
        for text in foreign:
            tgt.append(np.zeros(self.patch, np.uint8))
            wgt.append(weight_base)
            prm.append(self.text_index[text])
            is_pos.append(False)
        if self.data.intensity_augment:
            image[0] = self._augment(rng, image[0])
        return image, tgt, wgt, prm, is_pos

    def _foreign_negatives(self, rng: np.random.Generator, c: int, n: int) -> list[str]:
        if n <= 0:
            return []
        own = set(self.cases[c].categories)
        pool = [k for k in self.by_category if k not in own] or list(self.by_category)
        out = []
        for _ in range(n):
            cat = pool[int(rng.integers(len(pool)))]
            candidates = [(cc, f) for cc, f in self.by_category[cat] if cc != c] or self.by_category[cat]
            cc, f = candidates[int(rng.integers(len(candidates)))]
            out.append(self.cases[cc].texts[f])
        return out

    @staticmethod
    def _augment(rng: np.random.Generator, ct: np.ndarray) -> np.ndarray:
        scale = rng.uniform(0.9, 1.1)
        shift = rng.uniform(-0.1, 0.1)
        sigma = rng.uniform(0.0, 0.05)
        return (ct * scale + shift + rng.normal(0.0, sigma, ct.shape)).astype(np.float32)


def _ones_view(case: PreparedCase) -> np.ndarray:
    """A read-only all-ones (Z, Y, X) view without allocating the whole volume (for the padding mask)."""
    return np.broadcast_to(np.ones((1, 1, 1), np.uint8), case.shape)
