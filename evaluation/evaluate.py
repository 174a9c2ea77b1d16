"""The evaluation container's entrypoint (Grand Challenge evaluation conventions): score every algorithm job
with the official ReXGrounding logic of ``rexground.metrics`` (imported, never copied).

Inputs:
    /input/predictions.json       the platform's list of algorithm jobs: ``pk``, ``status``, ``inputs`` (the CT
                                  image's ``name`` on socket ``chest-ct``, the finding(s) on ``finding``)
                                  and ``outputs``
    /input/<pk>/output/images/finding-segmentation/<file>.mha
                                  each job's mask: 3D for one finding, F components for a list of findings
    /opt/ml/input/data/ground_truth/
        dataset.json              the challenge's dataset JSON: entries with ``name``, ``findings``,
                                  ``categories`` (the split EVAL_SPLIT, default ``test``, or its only split)
        segmentations/<name>      (F, H, W, D) uint8 label masks in the CT's raw order, one value per instance
Output:
    /output/metrics.json          ``{"results": [per scan], "aggregates": {...}}``: aggregates hold the
                                  official summary keys (``dice_per_case`` is the leaderboard number), the
                                  per-category block, the distance metrics, missing scans, errors, warnings.
                                  When no scan could be scored, ``aggregates`` is null (no numbers for
                                  nothing) and the exit status is 1; refused scans exit 2.

Matching: a job belongs to the scan whose ``name`` has the same stem as the job's CT image (``x.mha`` ->
``x.nii.gz``); each of its findings fills the channel whose text is the same (whitespace-normalised). A
channel no successful job answered is scored as an empty prediction (Dice 0); a scan without any job is
``missing`` (scored 0 with MISSING_POLICY=zero, the default, or dropped with ``drop`` as the official
script does). The CT spacing for the distance metrics comes from the job's mask header (the algorithm
copies the CT geometry; ground-truth masks have an identity header and carry none).
Paths can be moved with GC_INPUT_PATH, GC_OUTPUT_PATH and GC_GROUND_TRUTH_PATH (used by the tests).
"""

from __future__ import annotations

import os
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, RootModel, ValidationError

from rexground.dataset import load_dataset, mask_path
from rexground.errors import InputFileError, RexgroundError
from rexground.io import image_suffix, read_mask, read_mask_raw
from rexground.metrics import CaseResult, aggregate, evaluate_case, missing_case
from rexground.metrics.official import as_channels, cast_prediction
from rexground.metrics.report import format_problems, format_summary, metrics_document, write_metrics_json

INPUT_PATH = Path(os.environ.get("GC_INPUT_PATH", "/input"))
OUTPUT_PATH = Path(os.environ.get("GC_OUTPUT_PATH", "/output"))
GROUND_TRUTH_PATH = Path(os.environ.get("GC_GROUND_TRUTH_PATH", "/opt/ml/input/data/ground_truth"))
EVAL_SPLIT = os.environ.get("EVAL_SPLIT", "test")
MISSING_POLICY = os.environ.get("MISSING_POLICY", "zero")
CT_SOCKET = "chest-ct"
FINDING_SOCKET = "finding"
MASK_SOCKET = "finding-segmentation"
IMAGE_SUFFIXES = (".mha", ".nii.gz", ".nii", ".nrrd", ".tif", ".tiff")


class _Loose(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")  # the platform sends many more fields


class Interface(_Loose):
    slug: str
    relative_path: str


class ImageRef(_Loose):
    name: str


class SocketValue(_Loose):
    interface: Interface
    value: Any = None
    image: ImageRef | None = None


class Job(_Loose):
    pk: str
    status: str = "Succeeded"
    inputs: tuple[SocketValue, ...]
    outputs: tuple[SocketValue, ...] = ()

    def socket(self, slug: str, outputs: bool = False) -> SocketValue | None:
        return next((s for s in (self.outputs if outputs else self.inputs) if s.interface.slug == slug), None)


class Predictions(RootModel[tuple[Job, ...]]):
    model_config = ConfigDict(frozen=True)


def _stem(name: str) -> str:
    """The scan name without its image suffix ("x.mha" and "x.nii.gz" are the same scan)."""

    suffix = image_suffix(name)
    return name[: -len(suffix)] if suffix else name


def _norm(text: str) -> str:
    return " ".join(str(text).split()).casefold()


def load_jobs(input_path: Path) -> tuple[Job, ...]:

    path = input_path / "predictions.json"
    try:
        return Predictions.model_validate_json(path.read_bytes()).root
    except FileNotFoundError:
        raise InputFileError(path, "does not exist") from None
    except ValidationError as exc:
        err = exc.errors()[0]
        raise InputFileError(path, f"{'.'.join(map(str, err['loc']))}: {err['msg']}") from None


def job_mask_file(input_path: Path, job: Job) -> Path | None:
    """The job's mask: the one image file in ``/input/<pk>/output/<relative_path>/``."""
    out = job.socket(MASK_SOCKET, outputs=True)
    folder = (
        input_path / job.pk / "output" / (out.interface.relative_path if out else f"images/{MASK_SOCKET}")
    )
    if folder.is_file():
        return folder
    files = (
        sorted(p for p in folder.glob("*") if p.name.lower().endswith(IMAGE_SUFFIXES))
        if folder.is_dir()
        else []
    )
    return files[0] if files else None


def job_findings(job: Job) -> list[str]:
    socket = job.socket(FINDING_SOCKET)
    value = socket.value if socket else None
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    return []


def score_scan(entry, jobs: list[Job], input_path: Path, seg_dir: Path):
    """The rexground.metrics CaseResult of one scan, assembled from the channels its jobs answered."""

    keys = list(entry.finding_keys)
    categories = entry.category_list()
    try:
        gt = as_channels(read_mask_raw(mask_path(seg_dir, entry)), "ground truth")
    except RexgroundError as exc:
        return CaseResult(name=entry.name, status="error", error=f"ground truth: {exc}")
    if not jobs:
        result = missing_case(entry.name, gt, categories, keys=keys)
        no_job = "no algorithm job for this scan"
        return result.model_copy(update={"error": no_job, "distance_note": f"{no_job} (no CT spacing)"})
    channel_of = {_norm(entry.findings[k]): c for c, k in enumerate(keys)}
    pred = np.zeros(gt.shape, dtype=np.uint8)
    spacing = None
    warnings: list[str] = []
    for job in jobs:
        texts = job_findings(job)
        if job.status != "Succeeded":
            warnings.append(f"job {job.pk}: status {job.status}; its findings score as empty predictions")
            continue
        path = job_mask_file(input_path, job)
        if path is None:
            warnings.append(f"job {job.pk}: no mask in its output; its findings score as empty predictions")
            continue
        try:
            raw, header = read_mask(path)
        except RexgroundError as exc:
            return CaseResult(name=entry.name, status="error", error=f"job {job.pk}: {exc}")
        channels = as_channels(raw, f"job {job.pk} mask")
        if len(channels) != len(texts) or channels.shape[1:] != gt.shape[1:]:
            return CaseResult(
                name=entry.name,
                status="error",
                error=f"job {job.pk}: mask {path.name} has shape {channels.shape}; expected "
                f"({len(texts)}, *{gt.shape[1:]}) for its {len(texts)} finding(s)",
            )
        spacing = header.spacing[:3]
        for text, channel in zip(texts, channels, strict=True):
            c = channel_of.get(_norm(text))
            if c is None:
                warnings.append(
                    f"job {job.pk}: finding {text!r} is not one of {entry.name}'s findings; ignored"
                )
                continue
            # The official cast: values are taken as uint8 (float probabilities in (0, 1) become 0).
            pred[c], notes = cast_prediction(np.asarray(channel))
            warnings += [f"job {job.pk}: {path.name}: {note}" for note in notes]
    result = evaluate_case(gt, pred, categories, spacing, name=entry.name, keys=keys)
    note = None if spacing is not None else "no job mask carried the CT spacing"
    return result.model_copy(update={"warnings": (*result.warnings, *warnings), "distance_note": note})


def pick_split(dataset) -> tuple:
    """The EVAL_SPLIT entries; a ground truth with a single split is used whatever its name."""
    if len(dataset.splits) == 1 and EVAL_SPLIT not in dataset.splits:
        return next(iter(dataset.splits.values()))
    return dataset.split(EVAL_SPLIT)


def evaluate(input_path: Path, ground_truth: Path) -> dict[str, Any]:

    entries = pick_split(load_dataset(ground_truth / "dataset.json"))
    jobs = load_jobs(input_path)
    by_stem: dict[str, list[Job]] = defaultdict(list)
    unmatched = []
    for job in jobs:
        ct = job.socket(CT_SOCKET)
        if ct is None or ct.image is None:
            unmatched.append(job.pk)
            continue
        by_stem[_stem(ct.image.name)].append(job)
    known = {_stem(e.name) for e in entries}
    unmatched += [j.pk for stem, js in by_stem.items() if stem not in known for j in js]
    results = [
        score_scan(e, by_stem.get(_stem(e.name), []), input_path, ground_truth / "segmentations")
        for e in entries
    ]
    summary = aggregate(results, missing=MISSING_POLICY)
    scored = summary.n_cases > 0
    for line in format_problems(results):  # errors first: a refused scan is never hidden behind a summary
        print(line, file=sys.stderr)
    if scored:
        print(format_summary(summary))
    else:
        print(f"no scan could be scored ({len(results)} scans): no metrics", file=sys.stderr)
    doc = metrics_document(
        summary if scored else None,
        results,
        settings={"split": EVAL_SPLIT, "missing": MISSING_POLICY},
        extra_predictions=unmatched,
    )
    jobs_of = {e.name: [j.pk for j in by_stem.get(_stem(e.name), [])] for e in entries}
    cases = [{**case, "jobs": jobs_of.get(case["name"], [])} for case in doc.pop("cases")]
    summary_keys = doc.pop("summary")
    if summary_keys is None:  # nothing scored: no numbers, only what went wrong
        return {"results": cases, "aggregates": None, "errors": doc["errors"], "counts": doc["counts"]}
    aggregates = {**summary_keys, **doc}
    return {"results": cases, "aggregates": aggregates}


def run() -> int:

    if MISSING_POLICY not in ("zero", "drop"):
        print(
            f"evaluate.py: error: MISSING_POLICY must be zero or drop, got {MISSING_POLICY!r}",
            file=sys.stderr,
        )
        return 1
    try:
        metrics = evaluate(INPUT_PATH, GROUND_TRUTH_PATH)
    except RexgroundError as exc:
        print(f"evaluate.py: error: {exc}", file=sys.stderr)
        return 1
    path = write_metrics_json(OUTPUT_PATH / "metrics.json", metrics)
    print(f"wrote {path}")
    if metrics["aggregates"] is None:
        return 1
    return 0 if not metrics["aggregates"]["errors"] else 2


if __name__ == "__main__":
    raise SystemExit(run())
