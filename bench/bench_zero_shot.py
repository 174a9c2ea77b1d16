"""Benchmark a grounding engine on real CT cases with expert labels, on CTs without the finding, and on phantoms.

    rexground bench zero-shot                                     # ../shared/data/real-ct + the bundled example
    rexground bench zero-shot --real-dir DIR [DIR ...]            # any folders of cases (or case folders)
    rexground bench zero-shot --engine network --model MODEL_DIR  # a model package, scored the same way
    rexground bench zero-shot --absent-ct CT --absent-finding "Bilateral pleural effusions" ...
    rexground bench zero-shot --phantoms 10 --size small          # also per-category Dice on phantoms
    rexground bench zero-shot --no-real --no-absent --timing CT   # CPU s per finding, CT resampled to 300 slices

A case is a folder with a ``case.json``: ``{"ct": "ct.nii.gz", "labels": {file: description},
"findings": [{"text", "category", "label"?, "score"?, "lobe"?}, ...], "lobe_slices_z"?: {lobe: [z...]}}``.
Each finding is scored by what its labels allow:

* ``"score": "dice"`` with a ``label``: the official per-finding logic of ``rexground.metrics`` (the
  prediction's 18-connected components under 10 voxels dropped, the 50 largest kept; global Dice; hit at
  Dice >= 0.1; greedy one-to-one instance matching at Dice >= 0.2 against the label's distinct values);
* another ``label`` (a radiologist's box): the fraction of the answer inside the box, and the fraction of
  the box's dense (> -300 HU) voxels the answer covers;
* a ``lobe`` with ``lobe_slices_z`` (weak per-slice labels): the fraction of the answer on the slices
  labelled for that lobe, on the named side;
* nothing (a finding the CT does not show): only the answer's volume, which should be small.

Every row also gives the answer's and the label's volume in mL, and the CPU seconds (``time.process_time``
of this process) of the scan's anatomy and of the finding's rule. The per-category table averages each
measure over the findings that have it, with the instance recall summed over findings (micro).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pickle
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from rexground.io import CTVolume, read_ct, read_mask_raw
from rexground.metrics import evaluate_case
from rexground.text.parser import parse_finding

REPO = Path(__file__).resolve().parents[1]
REAL_CT = Path(os.environ.get("REXGROUND_SHARED", REPO.parent / "shared")) / "data" / "real-ct"
EXAMPLE = REPO / "rexground" / "resources" / "example"
# The bundled example (TCIA Lung-PET-CT-Dx A0001, a left upper lobe mass) shows none of these.
ABSENT_FINDINGS = (
    "Bilateral pleural effusions",
    "Nodule in the right lower lobe",
    "Centrilobular emphysema in both upper lobes",
)
MEASURES = ("dice", "inside_box", "dense_box_covered", "on_lobe_slices", "on_side", "on_both")


# --- cases ------------------------------------------------------------------------------------------------
def find_cases(dirs: list[Path]) -> list[Path]:
    """Every case folder under the given folders (a folder with a case.json is a case itself)."""
    cases: list[Path] = []
    for d in dirs:
        if (d / "case.json").is_file():
            cases.append(d)
        elif d.is_dir():
            cases.extend(sorted(p for p in d.iterdir() if (p / "case.json").is_file()))
        else:
            print(f"{d}: not a folder; skipped", file=sys.stderr)
    return cases


def read_case(case_dir: Path) -> tuple[dict, list[dict]]:
    meta = json.loads((case_dir / "case.json").read_text())
    findings = [f if isinstance(f, dict) else {"text": str(f)} for f in meta.get("findings", [])]
    return meta, findings


# --- engines ----------------------------------------------------------------------------------------------
class CpuTimedAnatomy:
    """The zero-shot engine's anatomy, timed in CPU seconds, optionally cached on disk (development: a CT's
    anatomy takes tens of CPU seconds and does not change while a rule is tuned). The cache key holds the
    CT's path, size and mtime and the source of ``rexground/anatomy``, so a changed anatomy recomputes."""

    def __init__(self, cache_dir: Path | None):
        self.cache_dir = cache_dir
        self.cpu_s = 0.0
        self.cached = False
        src = sorted((REPO / "rexground" / "anatomy").glob("*.py"))
        self._code = hashlib.sha256(b"".join(p.read_bytes() for p in src)).hexdigest()[:16]

    def __call__(self, ct: CTVolume):
        from rexground.anatomy import compute_anatomy

        t0 = time.process_time()
        self.cached = False
        path = None
        if self.cache_dir is not None and ct.path is not None:
            st = Path(ct.path).stat()
            key = f"{Path(ct.path).resolve()}|{st.st_size}|{st.st_mtime_ns}|{ct.shape}|{self._code}"
            path = self.cache_dir / f"anatomy-{hashlib.sha256(key.encode()).hexdigest()[:24]}.pkl"
            if path.is_file():
                with path.open("rb") as fh:
                    anat = pickle.load(fh)
                self.cached = True
                self.cpu_s = time.process_time() - t0
                return anat
        anat = compute_anatomy(ct)
        self.cpu_s = time.process_time() - t0
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
            with os.fdopen(fd, "wb") as fh:
                pickle.dump(anat, fh, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, path)
        return anat


def make_engine(kind: str, model: Path | None, anatomy: CpuTimedAnatomy):
    if kind == "rules":
        from rexground.engines.zero_shot import ZeroShotEngine

        return ZeroShotEngine(keep_score=False, anatomy_fn=anatomy)
    from rexground.engines.select import choose_engine

    return choose_engine("network", model).engine


# --- scoring ----------------------------------------------------------------------------------------------
def _official(ct: CTVolume, gt_raw: np.ndarray, pred_canonical: np.ndarray, category: str) -> dict:
    """The official per-finding metrics (rexground.metrics) of one answer against one label."""
    pred_raw = ct.geometry.to_raw(pred_canonical.astype(np.uint8))
    res = evaluate_case(gt_raw, pred_raw, categories=[category], spacing=ct.geometry.spacing).findings[0]
    return {
        "dice": res.dice,
        "hit": bool(res.hit),
        "tp": res.tp,
        "n_gt": res.n_gt_instances,
        "n_pred": res.n_pred_instances,
        "pred_ml_scored": res.pred_voxels * float(np.prod(ct.spacing_zyx)) / 1000.0,
    }


def score_finding(
    case_dir: Path, meta: dict, ct: CTVolume, finding: dict, mask: np.ndarray, side: str
) -> dict:
    """The measures this finding's labels allow (see the module docstring)."""
    m = mask > 0
    voxel_ml = float(np.prod(ct.spacing_zyx)) / 1000.0
    label = finding.get("label")
    if label and finding.get("score") == "dice":
        gt_raw = read_mask_raw(case_dir / label)
        gt = ct.geometry.to_canonical(gt_raw) > 0
        return {
            "kind": "dice",
            "gt_ml": gt.sum() * voxel_ml,
            **_official(ct, gt_raw, m, finding.get("category", "")),
        }
    if label:
        box = ct.geometry.to_canonical(read_mask_raw(case_dir / label)) > 0
        dense = box & (ct.hu > -300)
        return {
            "kind": "box",
            "gt_ml": box.sum() * voxel_ml,
            "inside_box": float((m & box).sum() / max(m.sum(), 1)),
            "dense_box_covered": float((m & dense).sum() / max(dense.sum(), 1)),
        }
    if finding.get("lobe") and "lobe_slices_z" in meta:
        on_slices = np.isin(np.arange(ct.shape[0]), meta["lobe_slices_z"][finding["lobe"]])[:, None, None]
        x = np.arange(ct.shape[2])[None, None, :]
        # Canonical x runs patient right -> left: the right side is the lower half of the columns.
        lobe_side = "right" if finding["lobe"].startswith("R") else "left"
        on_side = x < ct.shape[2] / 2 if lobe_side == "right" else x >= ct.shape[2] / 2
        return {
            "kind": "lobe-slices",
            "on_lobe_slices": float((m & on_slices).sum() / max(m.sum(), 1)),
            "on_side": float((m & on_side).sum() / max(m.sum(), 1)),
            "on_both": float((m & on_slices & on_side).sum() / max(m.sum(), 1)),
        }
    return {"kind": "absent"}


def run_case(
    case_dir: Path, engine, anatomy: CpuTimedAnatomy, findings: list[dict] | None = None
) -> list[dict]:
    meta, case_findings = read_case(case_dir)
    findings = case_findings if findings is None else findings
    ct = read_ct(case_dir / meta.get("ct", "ct.nii.gz"))
    voxel_ml = float(np.prod(ct.spacing_zyx)) / 1000.0
    queries = [parse_finding(f["text"]) for f in findings]  # parsed once, as the predictor does
    t0 = time.process_time()
    preds = engine.predict(ct, queries)
    total_cpu = time.process_time() - t0
    rows = []
    for f, query, p in zip(findings, queries, preds, strict=True):
        rows.append(
            {
                "case": case_dir.name,
                "finding": f["text"],
                "category": f.get("category") or query.category,
                "parsed": query.category,
                "shape": "x".join(map(str, ct.shape)),
                "spacing_mm": [round(s, 3) for s in ct.spacing_zyx],
                "pred_ml": float(p.mask.sum()) * voxel_ml,
                "anatomy_cpu_s": anatomy.cpu_s,
                "anatomy_cached": anatomy.cached,
                # engines without a per-finding time (the network) get the scan's CPU time shared out
                "rule_cpu_s": p.info.get("rule_cpu_s", total_cpu / max(len(findings), 1)),
                "case_cpu_s": total_cpu,
                "rule": p.info.get("rule"),
                "fallback": p.info.get("fallback"),
                **score_finding(case_dir, meta, ct, f, p.mask, query.side),
            }
        )
    return rows


# --- printing ---------------------------------------------------------------------------------------------
def _fmt(v, spec: str = ".3f") -> str:
    return "-" if v is None else format(v, spec)


def print_findings(rows: list[dict], title: str) -> None:
    print(f"\n## {title}")
    head = f"{'case':20s} {'cat':4s} {'measure':44s} {'inst':>5s} {'pred mL':>8s} {'gt mL':>7s} {'anat s':>6s} {'rule s':>6s}  finding"
    print(head)
    for r in rows:
        if r["kind"] == "dice":
            measure = f"dice={r['dice']:.3f} hit={'yes' if r['hit'] else 'no'}"
            inst = f"{r['tp']}/{r['n_gt']}"
        else:
            measure = " ".join(f"{k}={r[k]:.3f}" for k in MEASURES if k in r) or "(absent: volume only)"
            inst = "-"
        anat = f"{r['anatomy_cpu_s']:.1f}{'c' if r.get('anatomy_cached') else ''}"
        print(f"{r['case']:20s} {r['category']:4s} {measure:44s} {inst:>5s} {r['pred_ml']:8.1f} "
              f"{_fmt(r.get('gt_ml'), '.1f'):>7s} {anat:>6s} {_fmt(r['rule_cpu_s'], '.1f'):>6s}  {r['finding']}")  # fmt: skip


def print_categories(rows: list[dict]) -> None:
    by = defaultdict(list)
    for r in rows:
        if r["kind"] != "absent":
            by[r["category"]].append(r)
    print(
        "\n## Per category (Dice, hit and instance recall over the Dice-scored findings; box and lobe-slice"
    )
    print("## measures over the findings that have them)")
    print(
        f"{'cat':4s} {'n':>3s} {'dice':>6s} {'hit':>5s} {'inst recall':>11s} {'in box':>6s} {'box cov':>7s} {'on lobe':>7s}"
    )
    for cat in sorted(by):
        rs = by[cat]
        d = [r for r in rs if r["kind"] == "dice"]
        tp, n_gt = sum(r["tp"] for r in d), sum(r["n_gt"] for r in d)

        def mean(key, rs=rs):
            vals = [r[key] for r in rs if key in r]
            return float(np.mean(vals)) if vals else None

        recall = f"{tp}/{n_gt}={tp / n_gt:.2f}" if n_gt else "-"
        print(f"{cat:4s} {len(rs):3d} {_fmt(mean('dice')):>6s} {_fmt(mean('hit'), '.2f'):>5s} {recall:>11s} "
              f"{_fmt(mean('inside_box')):>6s} {_fmt(mean('dense_box_covered')):>7s} {_fmt(mean('on_both')):>7s}")  # fmt: skip
    d = [r for r in rows if r["kind"] == "dice"]
    if d:
        per_case = defaultdict(list)
        for r in d:
            per_case[r["case"]].append(r["dice"])
        tp, n_gt = sum(r["tp"] for r in d), sum(r["n_gt"] for r in d)
        print(f"mean over {len(d)} Dice-scored findings: Dice {np.mean([r['dice'] for r in d]):.3f}, "
              f"hit {np.mean([r['hit'] for r in d]):.2f}, instance recall {tp}/{n_gt}; "
              f"per-case Dice {np.mean([np.mean(v) for v in per_case.values()]):.3f}")  # fmt: skip
    cpu = [r["anatomy_cpu_s"] + (r["rule_cpu_s"] or 0.0) for r in rows if not r.get("anatomy_cached")]
    if cpu:
        print(
            f"CPU s per finding (its scan's anatomy + its rule): max {max(cpu):.1f}, mean {np.mean(cpu):.1f}"
        )


# --- phantoms ---------------------------------------------------------------------------------------------
def run_phantoms(engine_factory, n: int, size: str, seed0: int) -> list[dict]:
    from rexground.synth import generate_case

    rows = []
    for seed in range(seed0, seed0 + n):
        case = generate_case(seed, size)
        ct = CTVolume(hu=case.hu, geometry=case.geometry)
        queries = [parse_finding(f.text) for f in case.findings]
        preds = engine_factory().predict(ct, queries)
        for f, q, p in zip(case.findings, queries, preds, strict=True):
            gt_raw = case.to_raw(f.mask_labels)
            rows.append({"seed": seed, "category": f.category, "parsed": q.category,
                         "fallback": p.info.get("fallback"), **_official(ct, gt_raw, p.mask > 0, f.category)})  # fmt: skip
        print(f"  phantom {seed}: {len(preds)} findings", file=sys.stderr, flush=True)
    return rows


def print_phantoms(rows: list[dict], size: str) -> None:
    print(f"\n## Phantoms ({len({r['seed'] for r in rows})} cases, size={size}): official per-finding Dice")
    by = defaultdict(list)
    for r in rows:
        by[r["category"]].append(r)
    print(f"{'cat':4s} {'n':>3s} {'dice':>6s} {'hit':>5s} {'parsed ok':>9s} {'fallbacks':>9s}")
    for cat in sorted(by):
        rs = by[cat]
        fb = sum(r["fallback"] not in ("none", None) for r in rs)
        print(f"{cat:4s} {len(rs):3d} {np.mean([r['dice'] for r in rs]):6.3f} {np.mean([r['hit'] for r in rs]):5.2f} "
              f"{np.mean([r['parsed'] == cat for r in rs]):9.2f} {fb:9d}")  # fmt: skip
    per_case = defaultdict(list)
    for r in rows:
        per_case[r["seed"]].append(r["dice"])
    print(f"all  {len(rows):3d} {np.mean([r['dice'] for r in rows]):6.3f}   per-case Dice "
          f"{np.mean([np.mean(v) for v in per_case.values()]):.3f}")  # fmt: skip


# One sentence per rule family, for the runtime check.
TIMING_FINDINGS = (
    "Pulmonary nodules in both lungs.",
    "Ground-glass nodule in the left lower lobe.",
    "Large mass in the left upper lobe.",
    "Bilateral pleural effusions.",
    "Centrilobular emphysema in both upper lobes.",
    "Patchy ground-glass opacities in the right lower lobe.",
    "Bibasilar atelectasis.",
    "Bronchiectasis in the lower lobes.",
)


def run_timing(ct_path: Path, n_slices: int) -> list[dict]:
    """CPU seconds per finding, each in a fresh engine (its own anatomy and features, as a scan with one
    finding costs), on the CT resampled along z to ``n_slices`` slices (512 x 512 x 300 is the issue's size)."""
    from rexground.engines.zero_shot import ZeroShotEngine
    from rexground.geometry import Geometry
    from rexground.io import resample_zyx

    ct = read_ct(ct_path)
    shape = (n_slices, *ct.shape[1:])
    hu = resample_zyx(ct.hu, ct.spacing_zyx, ct.spacing_zyx, order=1, shape=shape)
    sp = (ct.spacing_zyx[0] * ct.shape[0] / n_slices, *ct.spacing_zyx[1:])
    geom = Geometry(
        size=shape[::-1], spacing=sp[::-1], origin=(0.0, 0.0, 0.0), direction=tuple(np.eye(3).ravel())
    )
    big = CTVolume(hu=hu, geometry=geom)
    rows = []
    for text in TIMING_FINDINGS:
        anatomy = CpuTimedAnatomy(None)
        t0 = time.process_time()
        p = ZeroShotEngine(anatomy_fn=anatomy).predict(big, [text])[0]
        rows.append({"finding": text, "shape": "x".join(map(str, shape)), "anatomy_cpu_s": anatomy.cpu_s,
                     "rule_cpu_s": p.info.get("rule_cpu_s"), "total_cpu_s": time.process_time() - t0})  # fmt: skip
        print(f"  {text}: {rows[-1]['total_cpu_s']:.1f} CPU s", file=sys.stderr, flush=True)
    return rows


def print_timing(rows: list[dict]) -> None:
    print(f"\n## CPU seconds per finding on a {rows[0]['shape']} CT (z, y, x), one finding per scan")
    print(f"{'anatomy':>8s} {'rule':>6s} {'total':>6s}  finding")
    for r in rows:
        print(f"{r['anatomy_cpu_s']:8.1f} {r['rule_cpu_s']:6.1f} {r['total_cpu_s']:6.1f}  {r['finding']}")


def write_json(path: Path, doc: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump(doc, fh, indent=1, default=float)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--real-dir", type=Path, nargs="+", default=[REAL_CT], help="folders of cases, or cases")
    ap.add_argument("--engine", choices=("rules", "network"), default="rules")
    ap.add_argument("--model", type=Path, help="model package folder (with --engine network)")
    ap.add_argument("--absent-ct", type=Path, default=EXAMPLE / "ct.nii.gz",
                    help="a CT that shows none of the --absent-finding sentences (default: the bundled example)")  # fmt: skip
    ap.add_argument("--absent-finding", action="append", help=f"default: {'; '.join(ABSENT_FINDINGS)}")
    ap.add_argument("--no-absent", action="store_true", help="skip the CT-without-the-finding part")
    ap.add_argument("--no-real", action="store_true", help="skip the real cases")
    ap.add_argument("--case", action="append", help="only cases with this folder name (repeatable)")
    ap.add_argument("--phantoms", type=int, default=0, help="also score N phantom cases (default 0)")
    ap.add_argument("--size", choices=("small", "real"), default="small")
    ap.add_argument("--seed", type=int, default=1000)
    ap.add_argument(
        "--timing", type=Path, metavar="CT", help="also time one finding per rule family on this CT"
    )
    ap.add_argument(
        "--timing-slices", type=int, default=300, help="resample --timing's CT to this many slices"
    )
    ap.add_argument("--anatomy-cache", type=Path, help="cache anatomy results here (development)")
    ap.add_argument("--json", type=Path, help="also write every row to this JSON file")
    args = ap.parse_args(argv)
    if args.engine == "network" and args.model is None:
        ap.error("--engine network needs --model DIR")

    anatomy = CpuTimedAnatomy(args.anatomy_cache)
    engine = make_engine(args.engine, args.model, anatomy)
    doc: dict = {"engine": args.engine, "model": str(args.model) if args.model else None}
    if not args.no_real:
        cases = find_cases(args.real_dir)
        if args.case:
            cases = [c for c in cases if c.name in args.case]
        rows = []
        for case_dir in cases:
            print(f"  {case_dir.name} ...", file=sys.stderr, flush=True)
            rows.extend(run_case(case_dir, engine, anatomy))
        if rows:
            print_findings(rows, f"Real CTs ({args.engine} engine): one row per finding")
            print_categories(rows)
        else:
            print(f"no case folders (with a case.json) under {', '.join(map(str, args.real_dir))}")
        doc["real"] = rows
    if not args.no_absent and args.absent_ct.is_file():
        texts = args.absent_finding or list(ABSENT_FINDINGS)
        ct_path = args.absent_ct
        tmp_case = {"ct": ct_path.name, "findings": texts}
        with tempfile.TemporaryDirectory() as td:
            case_dir = Path(td) / ct_path.parent.name
            case_dir.mkdir()
            (case_dir / "case.json").write_text(json.dumps(tmp_case))
            (case_dir / ct_path.name).symlink_to(ct_path.resolve())
            rows = run_case(case_dir, engine, anatomy)
        print_findings(rows, f"A CT without the finding ({ct_path}): the never-empty answer's volume")
        doc["absent"] = rows
    if args.phantoms > 0:
        rows = run_phantoms(lambda: make_engine(args.engine, args.model, CpuTimedAnatomy(None)),
                            args.phantoms, args.size, args.seed)  # fmt: skip
        print_phantoms(rows, args.size)
        doc["phantoms"] = rows
    if args.timing is not None:
        doc["timing"] = run_timing(args.timing, args.timing_slices)
        print_timing(doc["timing"])
    if args.json:
        write_json(args.json, doc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
