"""Dataset JSON forms, CT-RATE path resolution, mask loading and entry checks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from image_helpers import write_raw

from rexground.dataset import (
    DatasetEntry,
    check_entry,
    ct_rate_relative_paths,
    load_dataset,
    load_entry_masks,
    mask_path,
    read_ct_header,
    read_ct_spacing,
    resolve_ct,
    resolve_totalseg,
)
from rexground.errors import InputFileError

ENTRY = {
    "name": "train_1741_b_2.nii.gz",
    "findings": {"0": "Nodule in the RUL.", "1": "Emphysema.", "10": "Effusion.", "2": "Atelectasis."},
    "categories": {"0": "2d", "1": "1c", "10": "2e", "2": "2b"},
    "entity_counts": {"0": 1, "1": 1, "10": 1, "2": 1},
    "shape": [6, 5, 4],
    "pixels": {"0": 15},
    "protocol": "protocol1",
}




def dump(tmp_path: Path, content, name="dataset.json") -> Path:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def test_challenge_dataset_json_is_read_with_keys_in_channel_order(tmp_path):
    path = dump(tmp_path, {"train": [ENTRY], "valid": [], "test": [{"name": "valid_3_a_1.nii.gz",
                           "findings": {"0": "x"}, "categories": {"0": "2c"}}], "description": "ReXGroundingCT"})  # fmt: skip
    ds = load_dataset(path)
    entry = ds.split("train")[0]
    assert entry.finding_keys == ("0", "1", "2", "10")  # numeric, not lexical
    assert entry.category_list() == ["2d", "1c", "2b", "2e"] and entry.texts[3] == "Effusion."
    assert ds.split("val") == () and ds.entry("valid_3_a_1.nii.gz").n_findings == 1
    with pytest.raises(InputFileError, match=r"has no split .training."):
        ds.split("training")
    with pytest.raises(pydantic_error()):
        entry.name = "other"  # frozen


def pydantic_error():
    from pydantic import ValidationError

    return ValidationError


def test_evaluator_form_takes_the_name_from_seg_path(tmp_path):
    ds = load_dataset(dump(tmp_path, {"test": [{"seg_path": "segmentations/train_5_a_1.nii.gz"}]}))
    entry = ds.split("test")[0]
    assert entry.name == "train_5_a_1.nii.gz" and entry.findings == {} and entry.category_list() == []


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ({"meta": "x"}, "holds no split"),
        ({"val": [{"findings": {"0": "x"}}]}, r"field val\[0\]\.name: Field required"),
        ({"val": [{**ENTRY, "categories": {"0": "3x"}}]}, r"field val\[0\]\.categories.*'3x'"),
        ({"val": [{**ENTRY, "findings": {"first": "x"}}]}, r"field val\[0\]\.findings.*'first'"),
        ({"val": [{**ENTRY, "name": "a/b.nii.gz"}]}, "plain file name"),
        ({"val": [ENTRY, ENTRY]}, "more than once"),
    ],
)
def test_bad_dataset_files_name_the_file_and_field(tmp_path, content, message):
    path = dump(tmp_path, content)
    with pytest.raises(InputFileError, match=message) as info:
        load_dataset(path)
    assert info.value.path == path
    with pytest.raises(InputFileError, match="does not exist"):
        load_dataset(tmp_path / "absent.json")


def test_ct_rate_paths_try_the_own_split_folder_first_then_the_other():
    assert [str(p) for p in ct_rate_relative_paths("valid_12_b_3.nii.gz")] == [
        "valid_fixed/valid_12/valid_12_b/valid_12_b_3.nii.gz",
        "train_fixed/valid_12/valid_12_b/valid_12_b_3.nii.gz",
    ]
    assert ct_rate_relative_paths("scan.nii.gz") == []


def test_resolve_ct_finds_flat_tree_and_dataset_subfolder_layouts(tmp_path):
    ct = np.zeros((6, 5, 4), np.int16)
    in_other_split = write_raw(tmp_path / "r1" / "train_fixed/valid_7/valid_7_a/valid_7_a_1.nii.gz", ct)
    assert resolve_ct(tmp_path / "r1", "valid_7_a_1.nii.gz") == in_other_split
    below_dataset = write_raw(
        tmp_path / "r2" / "dataset/valid_fixed/valid_7/valid_7_a/valid_7_a_1.nii.gz", ct
    )
    assert resolve_ct(tmp_path / "r2", "valid_7_a_1.nii.gz") == below_dataset
    flat = write_raw(tmp_path / "r3" / "my_scan.mha", ct)
    assert resolve_ct(tmp_path / "r3", "my_scan.mha") == flat
    with pytest.raises(InputFileError, match=r"holds no CT named .valid_8_a_1\.nii\.gz.*tried"):
        resolve_ct(tmp_path / "r1", "valid_8_a_1.nii.gz")
    assert resolve_totalseg(tmp_path / "r1", "valid_7_a_1.nii.gz") == in_other_split
    assert resolve_totalseg(tmp_path / "r1", "valid_8_a_1.nii.gz") is None


def test_ct_header_gives_raw_order_size_and_spacing(tmp_path):
    path = write_raw(tmp_path / "ct.nii.gz", np.zeros((6, 5, 4), np.int16), spacing=(0.7, 0.6, 1.25))
    assert read_ct_header(path) == ((6, 5, 4), (pytest.approx(0.7), pytest.approx(0.6), 1.25))
    assert read_ct_spacing(path)[2] == 1.25
    (tmp_path / "bad.nii.gz").write_bytes(b"nope")
    with pytest.raises(InputFileError, match=r"bad\.nii\.gz.*cannot read the image header"):
        read_ct_header(tmp_path / "bad.nii.gz")


def test_entry_masks_load_in_raw_order_and_are_checked(tmp_path):
    entry = DatasetEntry.model_validate(ENTRY)
    masks = np.zeros((4, 6, 5, 4), np.uint8)
    for c in range(4):
        masks[c, c, 1:3, 1:3] = c + 1
    write_raw(tmp_path / "segmentations" / entry.name, masks)
    write_raw(
        tmp_path / "ct" / "train_fixed/train_1741/train_1741_b" / entry.name, np.zeros((6, 5, 4), np.int16)
    )
    loaded = load_entry_masks(tmp_path / "segmentations", entry, ct_root=tmp_path / "ct")
    assert np.array_equal(loaded, masks)
    assert check_entry(entry, masks) == []
    masks[2] = 0
    assert check_entry(entry, masks) == ["channel 2 is empty"]
    assert "3 channels but the entry has 4" in check_entry(entry, masks[:3])[0]
    assert "!= CT shape (6, 5, 5)" in check_entry(entry, masks, ct_size=(6, 5, 5))[0]
    write_raw(tmp_path / "segmentations" / entry.name, masks[:3])
    with pytest.raises(InputFileError, match="3 channels but the entry has 4"):
        load_entry_masks(tmp_path / "segmentations", entry)


def test_evaluator_seg_path_is_resolved_relative_to_the_dataset_root(tmp_path):
    entry = DatasetEntry.model_validate({"seg_path": "segmentations/train_5_a_1.nii.gz"})
    write_raw(tmp_path / "segmentations" / "train_5_a_1.nii.gz", np.zeros((1, 3, 3, 3), np.uint8))
    assert mask_path(tmp_path / "segmentations", entry).exists()
    # --gt-dir pointing at a sibling folder: the seg_path is tried relative to its parent
    assert mask_path(tmp_path / "other", entry) == tmp_path / "segmentations" / "train_5_a_1.nii.gz"
    assert mask_path(tmp_path / "x" / "y" / "z", entry) == tmp_path / "x" / "y" / "z" / "train_5_a_1.nii.gz"
