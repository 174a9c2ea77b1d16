"""Fault tests of the batch route: break ``rexground predict`` and ``rexground evaluate`` the ways real runs break
and print, per fault, what was done, what the program did, its exit status and the bytes of good output lost.

    python bench/bench_faults.py [--cases 8] [--container TAG] [--large] [--keep]

Everything runs the real commands in subprocesses (``python -m rexground.cli``, zero-shot engine) on phantoms
(``rexground.synth``, the ``train`` split: scans with masks). First an uninterrupted reference run writes the
split's files and zip; every fault is then checked against it:

* ``predict`` killed with SIGKILL mid-scan (and once while a file is being written), then ``--resume --zip``:
  the zip must be byte-identical to the reference's; a watcher checks every file that appears under its final
  name while the run goes (each must be complete: no half-written file is ever visible);
* a full disk while writing a scan file and while writing the zip (``RLIMIT_FSIZE`` in the child, which works
  anywhere, root or not): a clear error, no partial file, the earlier files intact, ``--resume`` completes;
* a read-only output folder (as root, which ignores mode bits, a read-only bind mount in the child's own
  mount namespace);
* the CT folder disappearing mid-run (renamed away, then back);
* two runs on one folder: the same scans (refused), disjoint shards (both complete), overlapping shards
  (refused);
* ``evaluate`` with a prediction that is truncated, of the wrong shape, float (0.7 and 1.0), 0/255, NaN, and
  with every prediction broken: each scored or refused as the official script does, refused cases counted in
  the summary, and no summary at all when nothing could be scored;
* with ``--container TAG``: the algorithm container (``scripts/container/test-run.sh``) given a truncated CT and
  a CT with NaN voxels; with ``--large`` also a 768 x 768 x 1005 CT under the 8 GB cap (minutes of CPU).

"Good output lost" counts the bytes of files that were complete and correct before the fault and are missing
or different after it (for evaluate: the metrics of the cases that were not broken, compared with the clean
evaluation's). Every row must show 0; the script exits 1 when a row fails its check.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rexground.errors import InputFileError  # noqa: E402
from rexground.integrity import check_image_file  # noqa: E402
from rexground.io import read_mask_raw, temporary_of  # noqa: E402

SPLIT = "train"


@dataclass
class Row:
    fault: str
    done: str
    did: str
    exit: str
    lost: int
    ok: bool


@dataclass
class Run:
    rc: int
    out: str

    @property
    def last(self) -> str:
        lines = [line for line in self.out.splitlines() if line.strip()]
        return lines[-1] if lines else ""

    def line_with(self, *words: str) -> str:
        for line in self.out.splitlines():
            if all(w in line for w in words):
                return line.strip()
        return ""


class Bench:
    def __init__(self, work: Path, cases: int):
        self.work = work
        from rexground.synth import write_dataset

        self.data = work / "phantoms"
        self.dataset = write_dataset(self.data, cases, seed=0)
        self.ct_root = self.data / "ct_rate"
        self.names = sorted(e["name"] for e in json.loads(self.dataset.read_text())[SPLIT])
        if len(self.names) < 3:  # a kill must land between the first and the last scan
            raise SystemExit(
                f"--cases {cases} gives {len(self.names)} {SPLIT} scan(s); at least 3 are needed (--cases 7)"
            )
        self.rows: list[Row] = []
        start = time.monotonic()
        ref = self.predict(work / "reference", "--zip", str(work / "reference.zip"))
        if ref.rc != 0:
            raise SystemExit(f"the reference run failed:\n{ref.out}")
        self.seconds_per_run = time.monotonic() - start
        self.ref = {n: (work / "reference" / n).read_bytes() for n in self.names}
        self.ref_zip = (work / "reference.zip").read_bytes()

    # --- running the commands -----------------------------------------------------------------------

    def argv(self, command: str, *extra: str) -> list[str]:
        return [sys.executable, "-m", "rexground.cli", command, *extra]

    def predict_argv(self, out: Path, *extra: str) -> list[str]:
        return self.argv("predict", "--dataset", str(self.dataset), "--split", SPLIT, "--ct-root", str(self.ct_root),
                         "--out", str(out), "--engine", "rules", "--no-progress", *extra)  # fmt: skip

    def start(self, argv: list[str], preexec: Callable[[], None] | None = None) -> subprocess.Popen:
        env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1"}
        return subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, preexec_fn=preexec)  # fmt: skip

    def finish(self, proc: subprocess.Popen, timeout: float = 600) -> Run:
        out, _ = proc.communicate(timeout=timeout)
        return Run(proc.returncode, out)

    def predict(self, out: Path, *extra: str, preexec=None) -> Run:
        return self.finish(self.start(self.predict_argv(out, *extra), preexec))

    # --- what is in a folder ------------------------------------------------------------------------

    def finals(self, folder: Path) -> dict[str, bytes]:
        """Files under their final (scan) names."""
        if not folder.is_dir():
            return {}
        return {p.name: p.read_bytes() for p in folder.iterdir() if p.name in self.names}

    def good(self, folder: Path) -> set[str]:
        """Final files identical to the reference's."""
        return {n for n, data in self.finals(folder).items() if data == self.ref[n]}

    def lost(self, before: set[str], folder: Path) -> int:
        after = self.finals(folder)
        return sum(len(self.ref[n]) for n in before if after.get(n) != self.ref[n])

    def temporaries(self, folder: Path) -> list[str]:
        return sorted(p.name for p in folder.iterdir() if temporary_of(p.name)) if folder.is_dir() else []

    def resume_zip(self, out: Path) -> tuple[Run, bool]:
        z = out.parent / f"{out.name}.zip"
        run = self.predict(out, "--resume", "--zip", str(z))
        return run, z.is_file() and z.read_bytes() == self.ref_zip

    def add(self, fault: str, done: str, did: str, exit_: str, lost: int, ok: bool) -> None:
        self.rows.append(Row(fault, done, did, exit_, lost, ok and lost == 0))


class Watcher(threading.Thread):
    """Checks every file that appears under a final name while a run goes: it must be complete."""

    def __init__(self, folder: Path, names: list[str]):
        super().__init__(daemon=True)
        self.folder, self.names = folder, set(names)
        self.checked: set[str] = set()
        self.torn: list[str] = []
        self.temporaries_seen = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            with contextlib.suppress(OSError):
                for entry in os.scandir(self.folder):
                    if entry.name in self.names and entry.name not in self.checked:
                        self.checked.add(entry.name)
                        try:
                            check_image_file(entry.path)
                        except InputFileError as exc:
                            self.torn.append(f"{entry.name}: {exc.problem}")
                    elif temporary_of(entry.name):
                        self.temporaries_seen += 1
            time.sleep(0.002)


def wait_for(
    condition: Callable[[], bool], proc: subprocess.Popen, timeout: float = 300, poll: float = 0.01
) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        if proc.poll() is not None:
            return condition()
        time.sleep(poll)
    return False


# --- the faults -----------------------------------------------------------------------------------------


def fault_kill(b: Bench, during_write: bool) -> None:
    out = b.work / ("kill-write" if during_write else "kill")
    out.mkdir()
    watcher = Watcher(out, b.names)
    watcher.start()
    attempts, temporaries = 0, []
    for attempts in range(1, 6):  # noqa: B007 - a write lasts milliseconds: catching one may take tries
        shutil.rmtree(out)
        out.mkdir()
        proc = b.start(b.predict_argv(out))
        if during_write:
            wait_for(lambda: bool(b.temporaries(out)) and len(b.finals(out)) >= 1, proc, poll=0)
        else:
            wait_for(lambda: len(b.finals(out)) >= 1, proc)
            time.sleep(0.3 * b.seconds_per_run / max(1, len(b.names)))  # into the next scan
        proc.send_signal(signal.SIGKILL)
        killed = b.finish(proc)
        temporaries = b.temporaries(out)
        partway = killed.rc == -signal.SIGKILL and 0 < len(b.finals(out)) < len(b.names)
        if partway and (not during_write or temporaries):
            break
    before = b.good(out)
    written = len(b.finals(out))
    resumed, identical = b.resume_zip(out)
    watcher.stop.set()
    watcher.join()
    removed = resumed.line_with("removed", "temporary")
    did = (f"killed with {written} of {len(b.names)} files written ({len(before)} complete and correct), "
           f"{len(temporaries)} temporary left; resume: {resumed.line_with('predicted') or resumed.last}"
           f"{'; ' + removed if removed else ''}; zip identical to the uninterrupted run's: "
           f"{'yes' if identical else 'NO'}; torn files seen under final names: {len(watcher.torn)}")  # fmt: skip
    what = "SIGKILL while a file is being written" if during_write else "SIGKILL mid-scan"
    ok = identical and not watcher.torn and resumed.rc == 0 and written == len(before)
    if during_write:
        ok = ok and bool(temporaries) and not b.temporaries(out)
    b.add(f"predict: {what}", f"kill -9 (try {attempts}), then --resume --zip",
          did, f"-9, then {resumed.rc}", b.lost(before, out), ok)  # fmt: skip


def fault_disk_full_scan(b: Bench) -> None:
    out = b.work / "disk-full"
    sizes = [len(b.ref[n]) for n in b.names]  # predict order is name order
    j = next((i for i in range(1, len(sizes)) if sizes[i] > max(sizes[:i])), 0)
    limit = sizes[j] - 1  # every file before j fits, file j does not

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    full = b.predict(out, preexec=cap)
    before = b.good(out)
    partial = [n for n in b.finals(out) if n not in before]
    leftovers = b.temporaries(out)
    error = full.line_with("stopped:") or full.last
    resumed, identical = b.resume_zip(out)
    did = (f"{error[:150]}; {len(before)} earlier file(s) intact, {len(partial)} partial, {len(leftovers)} "
           f"temporaries left; resume: {resumed.line_with('predicted')}; zip identical: {'yes' if identical else 'NO'}")  # fmt: skip
    ok = full.rc == 1 and "written" in error and not partial and not leftovers and len(before) == j
    b.add("predict: disk full writing a scan file", f"RLIMIT_FSIZE {limit:,} B (file {j + 1} is {sizes[j]:,} B); "
          "--resume --zip", did, f"{full.rc}, then {resumed.rc}", b.lost(before, out),
          ok and identical and resumed.rc == 0)  # fmt: skip


def fault_disk_full_zip(b: Bench) -> None:
    out = b.work / "zip-full"
    shutil.copytree(b.work / "reference", out)
    limit = max(len(v) for v in b.ref.values()) + (len(b.ref_zip) - max(len(v) for v in b.ref.values())) // 2
    z = out.parent / f"{out.name}.zip"

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    before = b.good(out)
    full = b.predict(out, "--resume", "--zip", str(z), preexec=cap)
    partial_zip = z.exists() or any(p.name.startswith(f".{z.name}.") for p in z.parent.iterdir())
    error = full.line_with("error:") or full.last
    resumed, identical = b.resume_zip(out)
    did = (f"{error[:150]}; partial zip left: {'YES' if partial_zip else 'no'}; files intact: "
           f"{len(b.good(out))}/{len(b.names)}; rerun: zip identical: {'yes' if identical else 'NO'}")  # fmt: skip
    ok = full.rc == 1 and "cannot be written" in error and not partial_zip and identical and resumed.rc == 0
    b.add("predict: disk full writing the zip", f"RLIMIT_FSIZE {limit:,} B (zip {len(b.ref_zip):,} B); "
          "--resume --zip", did, f"{full.rc}, then {resumed.rc}", b.lost(before, out), ok)  # fmt: skip


def fault_read_only(b: Bench) -> None:
    out = b.work / "read-only"
    out.mkdir()
    for n in b.names[:1]:
        (out / n).write_bytes(b.ref[n])
    before = b.good(out)
    argv = b.predict_argv(out)
    if os.geteuid() == 0:
        # Root ignores mode bits: make the folder a read-only bind mount, in a mount namespace of the child's
        # own (it vanishes with the child, nothing to clean up).
        how = "read-only bind mount"  # root ignores mode bits
        argv = ["unshare", "-m", "--propagation", "private", "sh", "-c",
                'mount --bind -o ro "$0" "$0" && exec "$@"', str(out), *argv]  # fmt: skip
    else:
        how = "chmod 555"
        out.chmod(0o555)
    refused = b.finish(b.start(argv))
    out.chmod(0o755)
    if "mount:" in refused.out or "unshare:" in refused.out:
        b.add("predict: read-only output folder", how, f"skipped: no read-only folder here ({refused.last[:100]})",
              "-", 0, True)  # fmt: skip
        return
    error = refused.line_with("error:") or refused.last
    untouched = sorted(p.name for p in out.iterdir()) == b.names[:1]
    resumed, identical = b.resume_zip(out)
    did = (f"{error[:160]}; before any work: {'yes' if 'predicted' not in refused.out else 'NO'}; folder untouched: "
           f"{'yes' if untouched else 'NO'}; writable again, resume: zip identical: {'yes' if identical else 'NO'}")  # fmt: skip
    ok = refused.rc == 1 and "cannot be written" in error and untouched and identical and resumed.rc == 0
    b.add("predict: read-only output folder", f"{how}, 1 file in it; writable, --resume --zip", did,
          f"{refused.rc}, then {resumed.rc}", b.lost(before, out), ok)  # fmt: skip


def fault_ct_folder_gone(b: Bench) -> None:
    out = b.work / "ct-gone"
    moved = b.ct_root.with_name("ct_rate.moved")
    proc = b.start(b.predict_argv(out))
    wait_for(lambda: len(b.finals(out)) >= 1, proc)
    b.ct_root.rename(moved)
    try:
        gone = b.finish(proc)
    finally:
        moved.rename(b.ct_root)
    before = b.good(out)
    partial = [n for n in b.finals(out) if n not in before]
    error = gone.line_with("stopped:") or gone.line_with("error:") or gone.last
    resumed, identical = b.resume_zip(out)
    did = (f"{error[:160]}; {len(before)} file(s) intact, {len(partial)} partial; folder back, resume: zip identical: "
           f"{'yes' if identical else 'NO'}")  # fmt: skip
    ok = gone.rc == 1 and "CT folder is gone" in gone.out and not partial and identical and resumed.rc == 0
    b.add("predict: CT folder disappears mid-run", "moved away after file 1, back after; "
          "--resume --zip", did, f"{gone.rc}, then {resumed.rc}", b.lost(before, out), ok)  # fmt: skip


def fault_two_runs(b: Bench, kind: str) -> None:
    out = b.work / f"two-{kind}"
    first_args = {"same": (), "disjoint": ("--shard", "0/2"), "overlap": ("--shard", "0/2")}[kind]
    second_args = {"same": (), "disjoint": ("--shard", "1/2"), "overlap": ()}[kind]
    first = b.start(b.predict_argv(out, *first_args))
    wait_for(lambda: any(p.name.startswith(".rexground-predict.") for p in out.iterdir()) if out.is_dir() else False,
             first)  # fmt: skip
    second = b.finish(b.start(b.predict_argv(out, *second_args)))
    first_run = b.finish(first)
    before = b.good(out)
    resumed, identical = b.resume_zip(out)
    if kind == "disjoint":
        did = (f"both ran: {first_run.last[:70]} | {second.last[:70]}; then --resume --zip: zip identical: "
               f"{'yes' if identical else 'NO'}")  # fmt: skip
        ok = first_run.rc == 0 and second.rc == 0
        exit_ = f"{first_run.rc} and {second.rc}, then {resumed.rc}"
    else:
        error = second.line_with("error:") or second.last
        did = (f"second refused: {error[:170]}; first completed ({first_run.rc}); zip identical: "
               f"{'yes' if identical else 'NO'}")  # fmt: skip
        ok = second.rc == 1 and "another `rexground predict`" in error and first_run.rc == 0
        exit_ = f"{second.rc} (second), {first_run.rc} (first), then {resumed.rc}"
    what = {"same": "two runs, same scans", "disjoint": "two runs, --shard 0/2 and 1/2",
            "overlap": "two runs, --shard 0/2 and the whole split"}[kind]  # fmt: skip
    b.add(f"predict: {what}", "both at once on one folder; --resume --zip", did, exit_,
          b.lost(before, out), ok and identical and resumed.rc == 0)  # fmt: skip


# --- evaluate -------------------------------------------------------------------------------------------


def _write_like(path: Path, array: np.ndarray) -> None:
    """A prediction file as a participant would write it (raw (F, H, W, D) order, identity header)."""
    sitk.WriteImage(sitk.GetImageFromArray(np.ascontiguousarray(array.transpose()), isVector=False), str(path),
                    useCompression=True)  # fmt: skip


def evaluate(b: Bench, pred: Path) -> tuple[Run, dict | None]:
    out = pred.parent / f"{pred.name}.metrics.json"
    run = b.finish(b.start(b.argv("evaluate", "--gt-dir", str(b.data / "segmentations"), "--pred-dir", str(pred),
                                  "--dataset", str(b.dataset), "--split", SPLIT, "--out", str(out), "--quiet")))  # fmt: skip
    return run, json.loads(out.read_text()) if out.is_file() else None


def fault_evaluate(b: Bench) -> None:
    _, clean = evaluate(b, b.work / "reference")
    by_name = {c["name"]: c for c in clean["cases"]}
    target = b.names[0]
    first = read_mask_raw(b.work / "reference" / target)
    cases: list[tuple[str, str, Callable[[Path], None], str]] = [
        ("truncated", "the file cut to half its length", lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
         "refused"),
        ("wrong shape", "one slice fewer", lambda p: _write_like(p, first[..., :-1]), "refused"),
        ("float 0.7", "float32, 0.7 where the mask is 1", lambda p: _write_like(p, first.astype(np.float32) * 0.7),
         "scored, all background"),
        ("float 1.0", "float32 0.0/1.0", lambda p: _write_like(p, first.astype(np.float32)), "scored as the uint8 file"),
        ("values 0/255", "uint8 0/255", lambda p: _write_like(p, first * np.uint8(255)), "scored as the 0/1 file"),
        ("NaN", "float32 with one NaN voxel",
         lambda p: _write_like(p, np.where(np.arange(first.size).reshape(first.shape) == 7, np.nan, first).astype(np.float32)),
         "refused"),
    ]  # fmt: skip
    for label, what, damage, expected in cases:
        pred = b.work / f"eval-{label.replace(' ', '-').replace('/', '')}"
        shutil.copytree(b.work / "reference", pred)
        damage(pred / target)
        run, doc = evaluate(b, pred)
        mine = next((c for c in doc["cases"] if c["name"] == target), None) if doc else None
        others = [c for c in doc["cases"] if c["name"] != target] if doc else []
        lost = sum(len(json.dumps(c)) for c in others if c != by_name[c["name"]])
        counts = doc["counts"] if doc else {}
        first_line = run.out.splitlines()[0] if run.out else ""
        if expected == "refused":
            ok = (
                run.rc == 1
                and mine["status"] == "error"
                and counts.get("refused") == 1
                and target in first_line
            )
            did = f"refused, listed first: {first_line[:150]}"
        else:
            dice = [f["dice"] for f in mine["findings"]]
            same = dice == [f["dice"] for f in by_name[target]["findings"]]
            warned = any(w["name"] == target and target in w["warning"] for w in doc["warnings"])
            if expected == "scored, all background":
                ok = run.rc == 0 and all(f["pred_voxels"] == 0 for f in mine["findings"]) and warned
                voxels = sum(f["pred_voxels"] for f in mine["findings"])
                did = f"scored as background ({voxels} predicted voxels, Dice 0), warning names the file"
            else:
                ok = run.rc == 0 and same and warned
                did = f"scored, Dice {'equal to' if same else 'DIFFERENT from'} the uint8 0/1 file's, warning names the file"
        summary = run.line_with("scored", "cases") or ""
        b.add(f"evaluate: {label}", what, f"{did}; {summary.strip()}", str(run.rc), lost, ok)
    # Nothing can be scored: every prediction truncated.
    pred = b.work / "eval-all-broken"
    shutil.copytree(b.work / "reference", pred)
    for n in b.names:
        (pred / n).write_bytes((pred / n).read_bytes()[:100])
    run, doc = evaluate(b, pred)
    ok = run.rc == 1 and doc is not None and doc["summary"] is None and "Dice per case" not in run.out
    b.add("evaluate: every prediction truncated", f"all {len(b.names)} files cut to 100 bytes",
          f"{run.last[:170]}; metrics.json summary: {json.dumps(doc['summary']) if doc else 'absent'}", str(run.rc), 0,
          ok)  # fmt: skip


# --- container ------------------------------------------------------------------------------------------


def _sections(text: str) -> dict[str, list[str]]:
    """test-run.sh's output by case: the "== NAME: exit ..." line and the check lines under it."""
    out: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("== "):
            current = line[3:].split(":")[0]
            out[current] = [line[3:]]
        elif current is not None and line.startswith("  "):
            out[current].append(line.strip())
    return out


def fault_container(b: Bench, tag: str, large: bool) -> None:
    cases = {"bad-truncated-ct": "a .nii.gz CT cut to 60%", "bad-nan-ct": "a float CT with 3 NaN slices"}
    argv = [str(REPO / "scripts/container/test-run.sh"), "--tag", tag, "--no-real", "--no-model"]
    if large:
        argv.append("--large")
    run = b.finish(b.start([*argv, *cases]), timeout=3600)
    sections = _sections(run.out)
    if large:
        cases["large-768x768x1005"] = "768 x 768 x 1005 int16 CT, --memory 8g"
    for case, what in cases.items():
        lines = sections.get(case, ["not run"])
        head = lines[0]  # "NAME: exit N in S s[; peak memory X GB]"
        exit_ = head.split("exit ")[-1].split(" ")[0] if "exit " in head else "-"
        checks = [ln for ln in lines[1:] if ln.startswith(("ok", "FAIL"))]
        failed = [ln for ln in checks if ln.startswith("FAIL")]
        said = next((ln.split("): ", 1)[-1] for ln in checks if "stderr names the problem" in ln), "")
        peak = head.split("; ", 1)[1] if "; " in head else ""
        did = f"{len(checks) - len(failed)}/{len(checks)} checks ok; " + (said[:150] or peak)
        if case.startswith("large") and exit_ == "137":
            did += "; killed: out of memory under the 8 GB cap"
        b.add(f"container: {case}", what, did, exit_, 0, bool(checks) and not failed)


def print_table(rows: list[Row]) -> None:
    widths = (46, 50, 12, 5)
    head = f"{'fault':<{widths[0]}} {'what was done':<{widths[1]}} {'exit':<{widths[2]}} {'lost':>{widths[3]}}  what the program did"
    print(head)
    print("-" * len(head))
    for r in rows:
        mark = "" if r.ok else "  <-- FAILED"
        print(f"{r.fault:<{widths[0]}} {r.done[: widths[1]]:<{widths[1]}} {r.exit:<{widths[2]}} {r.lost:>{widths[3]}}  "
              f"{r.did}{mark}")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cases", type=int, default=8, help="phantoms to generate (about half are train scans)"
    )
    parser.add_argument("--container", metavar="TAG", help="also run the container faults on this image")
    parser.add_argument("--large", action="store_true", help="with --container: the 768 x 768 x 1005 CT too")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (printed)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_faults_"))
    start = time.monotonic()
    try:
        b = Bench(work, args.cases)
        print(f"{len(b.names)} {SPLIT} scans; reference run {b.seconds_per_run:.1f} s; work folder {work}")
        fault_kill(b, during_write=False)
        fault_kill(b, during_write=True)
        fault_disk_full_scan(b)
        fault_disk_full_zip(b)
        fault_read_only(b)
        fault_ct_folder_gone(b)
        for kind in ("same", "disjoint", "overlap"):
            fault_two_runs(b, kind)
        fault_evaluate(b)
        if args.container:
            fault_container(b, args.container, args.large)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print()
    print_table(b.rows)
    failed = [r.fault for r in b.rows if not r.ok]
    print(f"\n{len(b.rows)} faults, {len(failed)} failed{': ' + ', '.join(failed) if failed else ''}; "
          f"bytes of good output lost: {sum(r.lost for r in b.rows)}; {time.monotonic() - start:.0f} s")  # fmt: skip
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
