"""Write phantom cases as a CT-RATE-like tree plus a ReXGroundingCT-format dataset.

Layout under ``out_dir`` (the challenge's, see docs/CHALLENGE.md "Data layout"):

- ``ct_rate/dataset/{train|valid}_fixed/<p>_<id>/<p>_<id>_<s>/<name>``: int16 HU CTs with the case's own
  spacing, origin and direction, in raw array order; the folder follows the name's prefix, and some
  validation/test scans carry ``train_`` names, as in the real data.
- ``segmentations/<name>``: (F, H, W, D) uint8 entity labels in the CT's raw order, identity header, for the
  train and val splits. Train masks follow the partial protocol (at most 3 entities drawn per finding; the
  others stay in the image, unlabelled); val masks are exhaustive.
- ``test_ground_truth/<name>``: the exhaustive test masks, for local scoring only (the challenge withholds them).
- ``dataset.json`` (train / val / test); as in the real data, ``entity_counts`` of some training findings counts
  every instance (more than the mask holds): trust the masks. and ``MICCAI_challenge_dataset.json`` (val with masks; test with names,
  findings and categories only).
- ``phantom_truth.json``: per scan, the case seed and each finding's side, lobes, segment, zones and
  exhaustive entity count (facts real data does not have; used by tests and benchmarks).

Each case's entry is kept in ``entries/<name>.json`` once its files are written, so an interrupted run
resumes where it stopped and a rerun with the same arguments rewrites nothing. A phantom whose findings could
not be drawn (it happens: a plan whose lobes were all taken) has no finding; it is left out of the dataset,
with a warning that counts such cases (its record says why), so ``--cases N`` may write fewer than N scans.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from rexground.io import atomic_path, write_channels
from rexground.synth.case import PhantomCase, generate_case

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
MAX_DRAWN_INSTANCES = 3  # the training split's annotation protocol
PROTOCOL = {"train": "protocol1", "val": "protocol2", "test": "protocol2"}  # partial vs exhaustive masks


def split_of(index: int) -> str:
    """Cases 0, 1, 2 are train, val, test (so three cases exercise every split); then 3:1:1."""
    if index < 3:
        return SPLITS[index]
    return ("train", "train", "train", "val", "test")[index % 5]


def case_seed(seed: int, index: int) -> int:
    """Consecutive cases get consecutive seeds, so any 14 of them cover every category."""
    return seed * 10_000 + index


def scan_name(seed: int, index: int, split: str) -> tuple[str, str]:
    """(file name, prefix). Names look like ``train_123_a_1.nii.gz``; some val/test scans keep ``train_``."""
    rng = np.random.default_rng([seed, index, 7])
    prefix = "train" if split == "train" or rng.random() < 0.25 else "valid"
    scan_id = 100 + index
    return f"{prefix}_{scan_id}_{'ab'[int(rng.integers(2))]}_{int(rng.integers(1, 3))}.nii.gz", prefix


def ct_path(out_dir: Path, name: str) -> Path:
    prefix, scan_id, series = name.split("_")[:3]
    return (
        out_dir
        / "ct_rate"
        / "dataset"
        / f"{prefix}_fixed"
        / f"{prefix}_{scan_id}"
        / f"{prefix}_{scan_id}_{series}"
        / name
    )


def _write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=1) + "\n")


def _labels(case: PhantomCase, split: str, seed: int, index: int) -> np.ndarray:
    rng = np.random.default_rng([seed, index, 11])
    channels = [
        f.partial(rng, MAX_DRAWN_INSTANCES) if split == "train" else f.mask_labels for f in case.findings
    ]
    return np.stack(channels)


def _entity_counts(
    case: PhantomCase, labels: np.ndarray, split: str, seed: int, index: int
) -> dict[str, int]:
    """Entities per channel (labels are 1..n). Like the real data, some training entries count every
    instance the radiologist saw while the mask holds only the drawn ones: trust the masks."""
    rng = np.random.default_rng([seed, index, 13])
    counts = {}
    for i, f in enumerate(case.findings):
        drawn = int(labels[i].max())
        counts[str(i)] = (
            f.n_entities if split == "train" and f.n_entities > drawn and rng.random() < 0.3 else drawn
        )
    return counts


def write_case(out_dir: Path, seed: int, index: int, size: str) -> dict:
    """Generate and write one case; returns its entry record (and skips the work when it is already done)."""
    split = split_of(index)
    name, _ = scan_name(seed, index, split)
    entry_file = out_dir / "entries" / f"{name}.json"
    ident = {"seed": seed, "index": index, "size": size}
    if entry_file.is_file():
        record = json.loads(entry_file.read_text())
        if record.get("ident") == ident:
            return record
    case = generate_case(case_seed(seed, index), size)
    if not case.findings:
        # Nothing could be drawn where the plan put it: a scan with no finding has nothing to ground (and
        # ReXGroundingCT has no such entry), so it is left out of the dataset, counted, never written.
        record = {"ident": ident, "split": split, "entry": None, "skipped": "no finding could be drawn"}
        _write_json(entry_file, record)
        return record
    geom = case.geometry
    path = ct_path(out_dir, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        sitk.WriteImage(case.to_image(), str(tmp), useCompression=True)
    labels = _labels(case, split, seed, index)
    mask_dir = out_dir / ("test_ground_truth" if split == "test" else "segmentations")
    mask_dir.mkdir(parents=True, exist_ok=True)
    write_channels(mask_dir / name, labels, geom, binary=False)
    keys = [str(i) for i in range(len(case.findings))]
    entry = {
        "name": name,
        "findings": dict(zip(keys, (f.text for f in case.findings), strict=True)),
        "categories": dict(zip(keys, (f.category for f in case.findings), strict=True)),
        "entity_counts": _entity_counts(case, labels, split, seed, index),
        "shape": [int(s) for s in geom.size],
        "pixels": {k: int(np.count_nonzero(labels[i])) for i, k in enumerate(keys)},
        "protocol": PROTOCOL[split],
    }
    truth = {
        "seed": case.seed,
        "split": split,
        "size": size,
        "padding_value": case.padding_value,
        "direction": [float(v) for v in case.direction.ravel()],
        "findings": [
            {
                "side": f.side,
                "lobes": list(f.lobes),
                "segment": f.segment,
                "zones": list(f.zones),
                "pleural": f.pleural,
                "entities_exhaustive": f.n_entities,
            }
            for f in case.findings
        ],
    }
    record = {"ident": ident, "split": split, "entry": entry, "truth": truth}
    _write_json(entry_file, record)
    return record


def write_dataset(
    out_dir: str | Path, n_cases: int, seed: int, size: str = "small", workers: int = 1
) -> Path:
    """Write ``n_cases`` phantom cases under ``out_dir``; returns the path of ``dataset.json``."""
    from tqdm import tqdm

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    indices = range(n_cases)
    if workers > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(write_case, out_dir, seed, i, size) for i in indices]
            records = [f.result() for f in tqdm(futures, desc="phantoms", unit="case")]
    else:
        records = [write_case(out_dir, seed, i, size) for i in tqdm(indices, desc="phantoms", unit="case")]

    skipped = [r for r in records if r["entry"] is None]
    if skipped:
        log.warning(
            "%d of %d phantom cases drew no finding and were left out of the dataset", len(skipped), n_cases
        )
    records = [r for r in records if r["entry"] is not None]
    dataset = {split: [r["entry"] for r in records if r["split"] == split] for split in SPLITS}
    challenge = {
        "val": dataset["val"],
        "test": [{k: e[k] for k in ("name", "findings", "categories")} for e in dataset["test"]],
    }
    _write_json(out_dir / "MICCAI_challenge_dataset.json", challenge)
    _write_json(out_dir / "phantom_truth.json", {r["entry"]["name"]: r["truth"] for r in records})
    dataset_path = out_dir / "dataset.json"
    _write_json(dataset_path, dataset)
    return dataset_path
