"""Training data: cases prepared once at the model's spacing, and patches sampled with their prompts.

Preparation (``prepare_case``) turns a ReXGroundingCT entry into arrays at the model's spacing and caches
them as ``.npy`` files that training memory-maps, so 3,000 real scans never need to fit in RAM:
``image.npy`` (C, Z, Y, X) float16, ``labels.npy`` (F, Z, Y, X) uint8 0/1 per finding, ``ignore.npy``
(F, Z, Y, X) uint8 (see below), ``fg_<f>.npy`` foreground voxel coordinates for biased sampling, and
``meta.json``. Scans read from files are cropped to the body box first (as inference crops them); validation
cases also keep their whole native-grid entity labels (``native_labels.npz``) for the official metrics, and
their image in float32: it is then exactly the network input inference computes for the CT.

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
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

from rexground.infer.channels import channel_scale
from rexground.infer.preprocess import air_value, normalise
from rexground.io import resample_zyx
from rexground.train.config import DataConfig, InputSpec

MAX_FG_COORDS = 20_000  # per finding, enough for sampling centres
CACHE_FORMAT = 3  # 3: validation images in float32


@dataclass
class PreparedCase:
    """One scan at the model's spacing. Arrays may be ``np.memmap`` (read lazily)."""

    name: str
    split: str
    image: np.ndarray  # (C, Z, Y, X) float16 / float32
    labels: np.ndarray  # (F, Z, Y, X) uint8 0/1
    ignore: np.ndarray | None  # (F, Z, Y, X) uint8 0/1, or None
    texts: list[str]
    categories: list[str]
    fg_coords: list[np.ndarray]  # per finding (N, 3) int32 voxel indices at the model's spacing
    native_shape: tuple[int, int, int]
    native_spacing: tuple[float, float, float]
    native_labels: np.ndarray | None = None  # (F, z, y, x) entity labels on the canonical CT grid (val only)
    crop: tuple[tuple[int, int], ...] | None = None  # native voxel range the image covers (None: all of it)
    native_labels_file: Path | None = None  # where load_case left the native labels (read on demand)
    extra: dict = field(default_factory=dict)

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
    anatomy: dict[str, np.ndarray] | None = None,
    keep_native_labels: bool = False,
    seed: int = 0,
    crop: tuple[slice, slice, slice] | None = None,
) -> PreparedCase:
    """Canonical HU (padding clipped) + canonical entity labels (F, z, y, x) -> a :class:`PreparedCase`.
    ``crop`` (e.g. the body box inference crops to) limits the training arrays; native labels stay whole."""
    if entities_fzyx.shape[1:] != hu_clipped_zyx.shape:
        raise ValueError(f"{name}: mask shape {entities_fzyx.shape[1:]} != CT shape {hu_clipped_zyx.shape}")
    if len(texts) != entities_fzyx.shape[0] or len(categories) != len(texts):
        raise ValueError(f"{name}: {entities_fzyx.shape[0]} mask channels for {len(texts)} findings")
    native_shape = tuple(int(n) for n in hu_clipped_zyx.shape)
    native_entities = entities_fzyx
    if crop is not None:
        hu_clipped_zyx = hu_clipped_zyx[crop]
        entities_fzyx = entities_fzyx[(slice(None), *crop)]
        if anatomy is not None:
            anatomy = {k: np.asarray(v)[crop] for k, v in anatomy.items()}
    hu = resample_zyx(hu_clipped_zyx, spacing_zyx, spec.spacing_zyx, order=1)
    ct = normalise(hu, spec.intensity)
    channels = [ct]
    for ch in spec.anatomy_channels:
        if anatomy is None or ch not in anatomy:
            raise KeyError(f"{name}: anatomy channel {ch!r} required by the input spec is missing")
        channels.append(
            resample_zyx(
                np.asarray(anatomy[ch], np.uint8), spacing_zyx, spec.spacing_zyx, order=0, shape=ct.shape
            ).astype(np.float32)
            * channel_scale(ch)
        )
    # Validation cases keep float32: their image is the network input inference computes for the CT
    # (rexground.infer.preprocess.prepare), so validation scores what the exported package answers.
    image = np.stack(channels).astype(np.float32 if keep_native_labels else np.float16)
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
        image=image,
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
    """Write a prepared case as a folder of .npy files; atomic (a temporary folder renamed at the end)."""
    folder = Path(folder)
    tmp = folder.with_name(folder.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    np.save(tmp / "image.npy", case.image)
    np.save(tmp / "labels.npy", case.labels)
    if case.ignore is not None:
        np.save(tmp / "ignore.npy", case.ignore)
    if case.native_labels is not None:  # full-size masks compress ~100x; read once per validation
        np.savez_compressed(tmp / "native_labels.npz", labels=case.native_labels)
    for f, coords in enumerate(case.fg_coords):
        np.save(tmp / f"fg_{f}.npy", coords)
    meta = {
        "format": CACHE_FORMAT,
        "name": case.name,
        "split": case.split,
        "texts": case.texts,
        "categories": case.categories,
        "native_shape": list(case.native_shape),
        "native_spacing": list(case.native_spacing),
        "crop": [list(c) for c in case.crop] if case.crop is not None else None,
        "extra": case.extra,
    }
    (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
    if folder.exists():
        shutil.rmtree(folder)
    tmp.rename(folder)
    return folder


def load_case(folder: Path, mmap: bool = True) -> PreparedCase:
    folder = Path(folder)
    meta = json.loads((folder / "meta.json").read_text())
    mode = "r" if mmap else None
    n = len(meta["texts"])
    opt = lambda name: np.load(folder / name, mmap_mode=mode) if (folder / name).exists() else None  # noqa: E731
    return PreparedCase(
        name=meta["name"],
        split=meta["split"],
        image=np.load(folder / "image.npy", mmap_mode=mode),
        labels=np.load(folder / "labels.npy", mmap_mode=mode),
        ignore=opt("ignore.npy"),
        texts=list(meta["texts"]),
        categories=list(meta["categories"]),
        fg_coords=[np.load(folder / f"fg_{f}.npy") for f in range(n)],
        native_shape=tuple(meta["native_shape"]),
        native_spacing=tuple(meta["native_spacing"]),
        native_labels_file=folder / "native_labels.npz" if (folder / "native_labels.npz").exists() else None,
        crop=tuple(tuple(c) for c in meta["crop"]) if meta.get("crop") else None,
        extra=meta.get("extra", {}),
    )


def is_cached(folder: Path) -> bool:
    meta = Path(folder) / "meta.json"
    if not meta.is_file():
        return False
    try:
        return json.loads(meta.read_text()).get("format") == CACHE_FORMAT
    except (OSError, json.JSONDecodeError):
        return False


def spec_cache_key(spec: InputSpec, data: DataConfig) -> str:
    """Cache folder name: changes whenever anything that shapes the prepared arrays changes."""
    import hashlib

    payload = json.dumps(
        {
            "spec": spec.model_dump(mode="json"),
            "cap": data.partial_label_cap,
            "ignore": data.partial_ignore,
            "train_split": data.train_split,
            "format": CACHE_FORMAT,
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
        self.pad = air_value(spec.intensity)
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
            start = self._start(rng, case.image.shape[1:], coords[int(rng.integers(len(coords)))])
        else:
            c = int(rng.integers(len(self.cases)))
            case = self.cases[c]
            start = self._start(rng, case.image.shape[1:])
        image = crop_pad(case.image, start, self.patch, self.pad).astype(np.float32)
        inside = crop_pad(_ones_view(case), start, self.patch, 0)
        image[1:, inside == 0] = 0.0  # anatomy channels are 0 outside the volume, as at inference
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
    return np.broadcast_to(np.ones((1, 1, 1), np.uint8), case.image.shape[1:])


# ---- preparation from a ReXGroundingCT-format dataset folder -------------------------------------------


def default_ct_root(data_dir: Path) -> Path:
    """Phantom trees keep their CTs under ``ct_rate/``; otherwise the dataset folder itself is tried."""
    data_dir = Path(data_dir)
    return data_dir / "ct_rate" if (data_dir / "ct_rate").is_dir() else data_dir


def prepare_split(
    data_dir: str | Path,
    split: str,
    spec: InputSpec,
    data: DataConfig,
    cache_root: str | Path,
    *,
    ct_root: str | Path | None = None,
    limit: int | None = None,
    rank: int = 0,
    world_size: int = 1,
    progress: bool = True,
) -> list[Path]:
    """Prepare (and cache) the scans of ``split``; this rank prepares every ``world_size``-th one. Returns the
    cache folders of *all* the split's scans (valid once every rank has finished: call a barrier)."""
    import logging

    from rexground.dataset import load_dataset, load_entry_masks, resolve_ct, split_by_findings
    from rexground.errors import InputFileError
    from rexground.io import read_ct

    data_dir = Path(data_dir)
    dataset_json = data_dir / "dataset.json"
    if not dataset_json.is_file():
        raise InputFileError(data_dir, "holds no dataset.json (expected a ReXGroundingCT-format folder)")
    ct_root = Path(ct_root) if ct_root is not None else default_ct_root(data_dir)
    entries, no_findings = split_by_findings(list(load_dataset(dataset_json).split(split))[:limit])
    if no_findings and rank == 0:  # nothing to train on or to validate: skipped, counted
        logging.getLogger(__name__).warning(
            "prepare %s: %d scan(s) without findings skipped (e.g. %s)", split, len(no_findings), no_findings[0].name
        )
    base = Path(cache_root) / spec_cache_key(spec, data) / split
    folders = [base / Path(e.name).name.split(".")[0] for e in entries]
    mine = [(e, f) for i, (e, f) in enumerate(zip(entries, folders, strict=True)) if i % world_size == rank]
    todo = [(e, f) for e, f in mine if not is_cached(f)]
    bar = None
    if progress and todo:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), desc=f"prepare {split}", unit="scan")
    for entry, folder in todo:
        ct = read_ct(resolve_ct(ct_root, entry.name))
        masks_raw = load_entry_masks(data_dir / "segmentations", entry)
        entities = ct.geometry.to_canonical(masks_raw)
        anatomy = None
        if spec.anatomy_channels:
            from rexground.infer.channels import anatomy_prior_masks

            anatomy = anatomy_prior_masks(ct, spec.anatomy_channels)
        from rexground.infer.preprocess import body_box

        case = prepare_arrays(
            name=entry.name,
            split=split,
            hu_clipped_zyx=ct.hu_clipped(),
            spacing_zyx=ct.spacing_zyx,
            entities_fzyx=entities,
            texts=list(entry.texts),
            categories=entry.category_list(),
            spec=spec,
            data=data,
            anatomy=anatomy,
            keep_native_labels=split != data.train_split,
            crop=body_box(ct.hu, ct.spacing_zyx),  # what inference crops to: the body plus 10 mm
        )
        save_case(case, folder)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return folders
