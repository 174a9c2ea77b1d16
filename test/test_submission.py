"""Submission files: written in the CT's raw order, every validator error kind, a deterministic zip."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from image_helpers import write_raw

from rexground.cli import main
from rexground.dataset import DatasetEntry
from rexground.io import read_ct, read_mask_raw
from rexground.submission import pack_submission, validate_submission, write_scan_submission

SHAPE = (12, 10, 8)  # raw (H, W, D)




def entries(n: int = 3) -> list[DatasetEntry]:
    return [
        DatasetEntry(
            name=f"train_{i}_a_1.nii.gz",
            findings={str(c): f"finding {c}" for c in range(i + 1)},
            categories={str(c): "2d" for c in range(i + 1)},
            shape=SHAPE,
        )
        for i in range(n)
    ]


def valid_array(entry: DatasetEntry) -> np.ndarray:
    a = np.zeros((entry.n_findings, *SHAPE), np.uint8)
    for c in range(entry.n_findings):
        a[c, c : c + 3, 2:5, 2:5] = 1
    return a


@pytest.fixture
def submission(tmp_path: Path) -> tuple[Path, list[DatasetEntry]]:
    es = entries()
    for e in es:
        write_raw(tmp_path / "sub" / e.name, valid_array(e))
    return tmp_path / "sub", es


def kinds(problems) -> list[tuple[str, str]]:
    return sorted((p.kind, p.name) for p in problems)


def test_written_submission_has_the_ct_files_raw_shape_and_voxel_order(tmp_path):
    raw_ct = np.arange(np.prod(SHAPE), dtype=np.int16).reshape(SHAPE)
    # Axes permuted and flipped: the file's i axis runs along -z, j along x, k along -y.
    direction = (0, 1, 0, 0, 0, -1, -1, 0, 0)
    ct_path = write_raw(tmp_path / "ct.nii.gz", raw_ct, spacing=(0.7, 0.8, 1.5), direction=direction)
    ct = read_ct(ct_path)
    entry = DatasetEntry(name="train_9_a_1.nii.gz", findings={"0": "a", "1": "b"})
    masks = np.zeros((2, *ct.shape), np.uint8)
    masks[0, 1:3, 2:4, 3:6] = 1  # canonical (z, y, x)
    masks[1, -2:, :2, -1:] = 1
    path = write_scan_submission(tmp_path / "out", entry, masks, ct.geometry)
    raw = read_mask_raw(path)
    assert raw.shape == (2, *SHAPE) and raw.dtype == np.uint8
    # Voxel order: the raw mask marks exactly the raw CT voxels whose canonical position was marked.
    canonical_values = ct.hu  # canonical view of arange values: each value names its raw voxel
    for c in range(2):
        assert sorted(raw_ct[raw[c] > 0].tolist()) == sorted(canonical_values[masks[c] > 0].tolist())
    with pytest.raises(ValueError, match="channels for 3 findings"):
        write_scan_submission(tmp_path / "out", entry.model_copy(update={"findings": {"0": "a", "1": "b", "2": "c"}}),
                              masks, ct.geometry)  # fmt: skip
    assert validate_submission([entry], pred_dir=tmp_path / "out") == []


def test_a_valid_folder_and_its_zip_have_no_problems(submission, tmp_path):
    sub, es = submission
    assert validate_submission(es, pred_dir=sub) == []
    zip_path = pack_submission(sub, tmp_path / "sub.zip")
    assert validate_submission(es, zip_path=zip_path) == []
    assert sorted(zipfile.ZipFile(zip_path).namelist()) == sorted(e.name for e in es)


def test_every_error_kind_is_reported(submission):
    sub, es = submission
    (sub / es[0].name).unlink()  # missing
    write_raw(sub / "other_5_a_1.nii.gz", valid_array(es[0]))  # extra
    e1 = es[1]
    bad = valid_array(e1).astype(np.int16)
    bad[0, 0, 0, 0] = 2  # dtype and values
    bad[1] = 0  # empty channel
    write_raw(sub / e1.name, bad)
    (sub / es[2].name).unlink()
    write_raw(
        sub / es[2].name.replace(".nii.gz", ".nii"), valid_array(es[2])[:2, :, :, :7]
    )  # name, channels, shape
    problems = validate_submission(es, pred_dir=sub)
    assert kinds(problems) == [
        ("channels", "train_2_a_1.nii"),
        ("dtype", e1.name),
        ("empty_channel", e1.name),
        ("extra", "other_5_a_1.nii.gz"),
        ("missing", es[0].name),
        ("shape", "train_2_a_1.nii"),
        ("values", e1.name),
        ("wrong_name", "train_2_a_1.nii"),
    ]
    assert "must be exactly 'train_2_a_1.nii.gz'" in next(
        p.detail for p in problems if p.kind == "wrong_name"
    )
    assert "e.g. 2" in next(p.detail for p in problems if p.kind == "values")


def test_unreadable_files_and_nested_zip_members_are_reported(submission, tmp_path):
    sub, es = submission
    (sub / es[0].name).write_bytes(b"garbage")
    assert kinds(validate_submission(es, pred_dir=sub)) == [("unreadable", es[0].name)]
    zip_path = tmp_path / "nested.zip"
    with zipfile.ZipFile(zip_path, "w") as z:
        for e in es[1:]:
            z.write(sub / e.name, f"predictions/{e.name}")
    problems = validate_submission(es, zip_path=zip_path)
    assert kinds(problems) == [("missing", es[0].name)] + [
        ("wrong_name", f"predictions/{e.name}") for e in es[1:]
    ]


def test_shape_is_checked_against_the_ct_header(submission, tmp_path):
    sub, es = submission
    root = tmp_path / "ctrate"
    for e in es:
        size = (12, 10, 9) if e is es[1] else SHAPE
        write_raw(root / "train_fixed" / e.name.rsplit("_", 2)[0] / e.name.rsplit("_", 1)[0] / e.name,
                  np.zeros(size, np.int16))  # fmt: skip
    problems = validate_submission(
        [e.model_copy(update={"shape": None}) for e in es], pred_dir=sub, ct_root=root
    )
    assert kinds(problems) == [("shape", es[1].name)] and "(12, 10, 9)" in problems[0].detail


def test_the_zip_is_flat_sorted_and_byte_identical_across_runs(submission, tmp_path):
    sub, _ = submission
    a = pack_submission(sub, tmp_path / "a.zip")
    (sub / "train_0_a_1.nii.gz").touch()  # a new mtime must not change the zip
    b = pack_submission(sub, tmp_path / "b.zip")
    assert hashlib.sha256(a.read_bytes()).digest() == hashlib.sha256(b.read_bytes()).digest()
    infos = zipfile.ZipFile(a).infolist()
    assert [i.filename for i in infos] == sorted(i.filename for i in infos)
    assert all("/" not in i.filename and i.date_time == (1980, 1, 1, 0, 0, 0) for i in infos)
    with pytest.raises(Exception, match="does not exist"):
        pack_submission(sub, tmp_path / "c.zip", names=["nope.nii.gz"])


def test_validate_submission_command_exit_status(submission, tmp_path, capsys):
    sub, es = submission
    dataset = tmp_path / "d.json"
    dataset.write_text(json.dumps({"test": [e.model_dump(exclude_none=True) for e in es]}))
    assert main(["validate-submission", "--dataset", str(dataset), "--pred-dir", str(sub)]) == 0
    assert "OK, 3 scans" in capsys.readouterr().out
    (sub / es[2].name).unlink()
    zip_path = pack_submission(sub, tmp_path / "s.zip")
    assert (
        main(["validate-submission", "--dataset", str(dataset), "--split", "test", "--zip", str(zip_path)])
        == 1
    )
    out = capsys.readouterr().out
    assert f"missing: {es[2].name}" in out and "1 missing" in out
