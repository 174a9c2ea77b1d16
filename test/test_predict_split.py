"""``rexground predict``: a split -> valid submission files and zip; resume redoes only what is missing or
broken; shards split the work without overlap; the run refuses to call an invalid folder a success."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
import SimpleITK as sitk
from test_predict_case import BrightEngine

from rexground.cli import main
from rexground.dataset import load_dataset
from rexground.engines import select
from rexground.io import read_mask_raw
from rexground.submission import validate_submission


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory):
    from rexground.synth import write_dataset

    root = tmp_path_factory.mktemp("phantoms")
    return root, write_dataset(root, 4, seed=7)


@pytest.fixture
def engine(monkeypatch):
    eng = BrightEngine()  # bright voxels: never empty on a phantom (bone, soft tissue)
    monkeypatch.setattr(select, "_rules", lambda: eng)
    return eng


def _predict(phantoms, out, *extra):
    root, dataset = phantoms
    return main(["predict", "--dataset", str(dataset), "--split", "val", "--ct-root", str(root / "ct_rate"),
                 "--out", str(out), "--engine", "rules", "--no-progress", *extra])  # fmt: skip


def _val(phantoms):
    return load_dataset(phantoms[1]).split("val")


def test_a_split_becomes_a_valid_submission_and_zip(tmp_path, phantoms, engine, capsys):
    out, zpath = tmp_path / "sub", tmp_path / "sub.zip"
    assert _predict(phantoms, out, "--zip", str(zpath)) == 0
    entries = _val(phantoms)
    assert validate_submission(entries, pred_dir=out, ct_root=phantoms[0] / "ct_rate") == []
    assert validate_submission(entries, zip_path=zpath) == []
    assert sorted(zipfile.ZipFile(zpath).namelist()) == sorted(e.name for e in entries)
    assert sorted(map(tuple, engine.calls)) == sorted(
        tuple(e.texts) for e in entries
    )  # every finding, in order
    first = entries[0]
    array = read_mask_raw(out / first.name)
    assert array.shape[0] == first.n_findings and array.dtype == np.uint8
    assert "valid submission" in capsys.readouterr().out


def test_resume_skips_valid_files_and_redoes_missing_and_broken_ones(tmp_path, phantoms, engine):
    out = tmp_path / "sub"
    assert _predict(phantoms, out) == 0
    entries = _val(phantoms)
    engine.calls.clear()
    assert _predict(phantoms, out, "--resume") == 0
    assert engine.calls == []  # everything was already valid
    (out / entries[0].name).unlink()
    broken = read_mask_raw(out / entries[1].name)[:1]  # one channel too few
    sitk.WriteImage(
        sitk.GetImageFromArray(np.ascontiguousarray(broken.transpose())), str(out / entries[1].name)
    )
    assert _predict(phantoms, out, "--resume") == 0
    assert sorted(map(tuple, engine.calls)) == sorted(tuple(e.texts) for e in entries[:2])
    assert validate_submission(entries, pred_dir=out) == []


def test_shards_are_disjoint_and_complete(tmp_path, phantoms, engine, capsys):
    out = tmp_path / "sub"
    assert _predict(phantoms, out, "--shard", "0/2") == 0
    first = {p.name for p in out.iterdir()}
    assert _predict(phantoms, out, "--shard", "1/2") == 0
    both = {p.name for p in out.iterdir()}
    names = {e.name for e in _val(phantoms)}
    assert both == names and first and first != names
    engine.calls.clear()
    assert _predict(phantoms, out, "--resume", "--zip", str(tmp_path / "z.zip")) == 0
    assert engine.calls == [] and (tmp_path / "z.zip").is_file()


def test_zip_with_a_shard_is_refused(tmp_path, phantoms, engine):
    assert _predict(phantoms, tmp_path / "sub", "--shard", "0/2", "--zip", str(tmp_path / "z.zip")) == 2


@pytest.mark.parametrize("shard", ["2/2", "1", "a/b", "-1/3"])
def test_bad_shard_is_a_usage_error(tmp_path, phantoms, shard):
    with pytest.raises(SystemExit):
        _predict(phantoms, tmp_path / "sub", "--shard", shard)


def test_an_invalid_result_is_not_reported_as_success(tmp_path, phantoms, monkeypatch, capsys):
    class Empty(BrightEngine):
        def predict(self, ct, queries):
            out = super().predict(ct, queries)
            for p in out:
                p.mask[...] = 0  # an engine bug: empty masks
            return out

    monkeypatch.setattr(select, "_rules", Empty)
    assert _predict(phantoms, tmp_path / "sub", "--zip", str(tmp_path / "z.zip")) == 1
    text = capsys.readouterr().out
    assert "empty_channel" in text and "not ready for upload" in text
    assert not (tmp_path / "z.zip").exists()


def test_a_missing_ct_is_reported_and_the_run_fails(tmp_path, phantoms, engine, capsys):
    import shutil

    from rexground.dataset import resolve_ct

    root, dataset = phantoms
    flat = tmp_path / "cts"
    flat.mkdir()  # an empty CT root: refused before any scan is predicted, naming where it looked
    argv = ["predict", "--dataset", str(dataset), "--split", "val", "--ct-root", str(flat),
            "--out", str(tmp_path / "sub"), "--engine", "rules", "--no-progress"]  # fmt: skip
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "--ct-root: none of the 2 CTs is there" in err and str(flat) in err and not engine.calls
    first, second = sorted(e.name for e in _val(phantoms))
    shutil.copy(resolve_ct(root / "ct_rate", first), flat / first)  # one of two: the other is an error, named
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert f"warning: 1 CT(s) not under {flat}" in out and "errors 1" in out and second in out


@pytest.mark.slow
def test_workers_with_the_zero_shot_engine(tmp_path, phantoms):
    """Two spawned workers, each building the real default engine."""
    out = tmp_path / "sub"
    assert _predict(phantoms, out, "--workers", "2") == 0
    assert validate_submission(_val(phantoms), pred_dir=out) == []


# --- faults (the whole table, with real kills and full disks in subprocesses, is bench/bench_faults.py) ---------


def test_temporaries_a_killed_run_left_are_removed_and_resume_completes(tmp_path, phantoms, engine, capsys):
    out, zpath = tmp_path / "sub", tmp_path / "sub.zip"
    assert _predict(phantoms, out, "--zip", str(zpath)) == 0
    reference = zpath.read_bytes()
    first = _val(phantoms)[0].name
    (out / first).unlink()
    # What SIGKILL in the middle of atomic_path leaves: a hidden temporary, never the final name.
    (out / f".{first}.k1ll3d.tmp.nii.gz").write_bytes(b"\x1f\x8b half a file")
    zpath.unlink()
    assert _predict(phantoms, out, "--resume", "--zip", str(zpath)) == 0
    assert "removed 1 unfinished temporary file" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == sorted(e.name for e in _val(phantoms))
    assert zpath.read_bytes() == reference  # the same files give the same zip, byte for byte


def test_a_second_run_on_the_same_scans_is_refused_and_disjoint_shards_are_not(
    tmp_path, phantoms, engine, capsys
):
    from rexground.folder_claim import claim_scans

    out = tmp_path / "sub"
    out.mkdir()
    names = [e.name for e in _val(phantoms)]
    with claim_scans(out, 0, 1, names):  # another run, alive, writing the whole split
        assert _predict(phantoms, out) == 1
        assert "another `rexground predict` (pid" in capsys.readouterr().err
        assert _predict(phantoms, out, "--shard", "1/2") == 1  # shares scans with the whole split
        assert engine.calls == [] and sorted(p.name for p in out.iterdir()) == [
            ".rexground-predict.0of1.lock"
        ]
    with claim_scans(out, 1, 2, names):  # a live shard 1/2: shard 0/2 is disjoint from it
        assert _predict(phantoms, out, "--shard", "0/2") == 0
    assert _predict(phantoms, out, "--resume") == 0  # the claims are gone with their holders
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_a_leftover_lock_of_a_dead_run_does_not_block(tmp_path, phantoms, engine):
    out = tmp_path / "sub"
    out.mkdir()
    (out / ".rexground-predict.0of1.lock").write_text("pid 999999, shard 0/1\n")  # nobody holds it
    (out / ".rexground-predict.1of3.lock").write_text("pid 999998, shard 1/3\n")
    assert _predict(phantoms, out) == 0
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_a_ct_folder_that_disappears_stops_the_run_and_resume_completes(
    tmp_path, phantoms, monkeypatch, capsys
):
    root, dataset = phantoms
    cts = tmp_path / "cts"
    import shutil

    shutil.copytree(root / "ct_rate", cts)

    class Unmounting(BrightEngine):
        def predict(self, ct, findings):
            out = super().predict(ct, findings)
            if len(self.calls) == 1:
                cts.rename(tmp_path / "cts.gone")  # the share goes away after the first scan
            return out

    monkeypatch.setattr(select, "_rules", Unmounting)
    out = tmp_path / "sub"
    argv = ["predict", "--dataset", str(dataset), "--split", "val", "--ct-root", str(cts), "--out", str(out),
            "--engine", "rules", "--no-progress"]  # fmt: skip
    assert main(argv) == 1
    text = capsys.readouterr().out
    assert "the CT folder is gone" in text and "stopped:" in text and "--resume" in text
    done = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    assert done == [sorted(e.name for e in _val(phantoms))[0]]  # the scan done before the CTs went
    assert read_mask_raw(out / done[0]).dtype == np.uint8  # complete and readable
    (tmp_path / "cts.gone").rename(cts)
    monkeypatch.setattr(select, "_rules", BrightEngine)
    assert main([*argv, "--resume"]) == 0


def test_a_scan_without_findings_is_skipped_with_a_count(tmp_path, phantoms, engine, capsys):
    import json

    root, dataset = phantoms
    doc = json.loads(dataset.read_text())
    doc["val"].append(
        {"name": "valid_999_a_1.nii.gz", "findings": {}}
    )  # no CT, no finding: nothing to ground
    patched = tmp_path / "dataset.json"
    patched.write_text(json.dumps(doc))
    rc = main(["predict", "--dataset", str(patched), "--split", "val", "--ct-root", str(root / "ct_rate"),
               "--out", str(tmp_path / "sub"), "--engine", "rules", "--no-progress"])  # fmt: skip
    assert rc == 0
    assert "1 scan(s) of split 'val' have no finding to ground: skipped" in capsys.readouterr().out
