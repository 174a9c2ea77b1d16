"""The model package refuses anything it cannot vouch for, and says which file is at fault."""

from __future__ import annotations

import json

import pytest
from toy_network import write_toy_package

from rexground.errors import ModelPackageError
from rexground.infer.package import (
    FORMAT_VERSION,
    MANIFEST_NAME,
    Manifest,
    Parity,
    hash_files,
    is_model_package,
    load_package,
    read_manifest,
    write_manifest,
)


@pytest.fixture
def package_dir(tmp_path):
    root = tmp_path / "model"
    write_toy_package(root)
    return root


def _edit_manifest(root, **changes):
    raw = json.loads((root / MANIFEST_NAME).read_text())
    raw.update(changes)
    (root / MANIFEST_NAME).write_text(json.dumps(raw))


def test_valid_package_loads_with_absolute_graph_paths(package_dir):
    pkg = load_package(package_dir)
    enc, dec = pkg.graph_paths("fp32")
    assert enc.is_file() and dec.is_file() and enc.is_absolute()
    assert pkg.manifest.patch_size == (8, 8, 8)
    assert pkg.variants_usable() == ["fp32"]
    assert is_model_package(package_dir)


def test_changed_file_is_refused_naming_the_file(package_dir):
    path = package_dir / "decoder.fp32.onnx"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelPackageError, match=r"decoder\.fp32\.onnx.*sha256"):
        load_package(package_dir)
    # Without hash checking the same package loads (used only by tools that re-hash themselves).
    assert load_package(package_dir, verify_hashes=False).manifest.engine == "network"


def test_missing_file_is_refused_naming_the_file(package_dir):
    (package_dir / "encoder.fp32.onnx").unlink()
    with pytest.raises(ModelPackageError, match=r"encoder\.fp32\.onnx.*missing"):
        load_package(package_dir)


def test_unlisted_graph_is_refused(package_dir):
    raw = json.loads((package_dir / MANIFEST_NAME).read_text())
    del raw["files"]["encoder.fp32.onnx"]
    (package_dir / MANIFEST_NAME).write_text(json.dumps(raw))
    with pytest.raises(ModelPackageError, match=r"files does not list \['encoder\.fp32\.onnx'\]"):
        load_package(package_dir)


@pytest.mark.parametrize("version", [FORMAT_VERSION + 1, 0, None, "1"])
def test_wrong_format_version_is_refused(package_dir, version):
    _edit_manifest(package_dir, format_version=version)
    with pytest.raises(ModelPackageError, match="format_version"):
        load_package(package_dir)


def test_version_1_packages_are_read_with_their_step_renamed(package_dir):
    raw = json.loads((package_dir / MANIFEST_NAME).read_text())
    raw["format_version"] = 1
    del raw["tile_step"]
    raw["step_fraction"] = 0.25  # version 1's name for the same setting
    (package_dir / MANIFEST_NAME).write_text(json.dumps(raw))
    manifest = load_package(package_dir).manifest
    assert manifest.format_version == FORMAT_VERSION and manifest.tile_step == 0.25


def test_a_newer_format_is_refused_with_what_to_do(package_dir):
    _edit_manifest(package_dir, format_version=FORMAT_VERSION + 1, tile_step=0.5, something_new=1)
    with pytest.raises(ModelPackageError, match=r"format_version 3 is not supported .* re-export"):
        load_package(package_dir)


def test_bad_field_is_named(package_dir):
    _edit_manifest(package_dir, threshold=1.5)
    with pytest.raises(ModelPackageError, match=r"manifest\.json: invalid manifest: threshold"):
        load_package(package_dir)
    _edit_manifest(package_dir, threshold=0.5, surprise=1)
    with pytest.raises(ModelPackageError, match="surprise"):
        load_package(package_dir)


def test_not_json_and_not_a_folder(tmp_path, package_dir):
    (package_dir / MANIFEST_NAME).write_text("{not json")
    with pytest.raises(ModelPackageError, match="not readable JSON"):
        read_manifest(package_dir)
    with pytest.raises(ModelPackageError, match="does not exist"):
        load_package(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelPackageError, match=r"manifest\.json: missing"):
        load_package(tmp_path / "empty")
    assert not is_model_package(tmp_path / "empty")


def test_path_escaping_the_package_is_refused(package_dir):
    raw = json.loads((package_dir / MANIFEST_NAME).read_text())
    raw["files"]["../outside.onnx"] = "0" * 64
    (package_dir / MANIFEST_NAME).write_text(json.dumps(raw))
    with pytest.raises(ModelPackageError, match="inside the package"):
        load_package(package_dir)


def test_manifest_is_frozen_and_round_trips(package_dir):
    m = read_manifest(package_dir)
    with pytest.raises(Exception):  # noqa: B017 - pydantic raises ValidationError on assignment
        m.threshold = 0.3  # type: ignore[misc]
    again = Manifest.model_validate_json((package_dir / MANIFEST_NAME).read_text())
    assert again == m


def test_write_manifest_is_atomic_and_leaves_no_temporaries(package_dir):
    m = read_manifest(package_dir)
    parity = Parity(
        max_abs_logit_diff=1e-6, tiles_compared=4, scans_compared=1, findings_compared=2,
        mismatched_mask_voxels=0, masks_identical=True, passed=True,
    )  # fmt: skip
    write_manifest(package_dir, m.model_copy(update={"parity": {"fp32": parity}}))
    assert sorted(p.name for p in package_dir.iterdir()) == [
        "decoder.fp32.onnx",
        "encoder.fp32.onnx",
        MANIFEST_NAME,
    ]
    assert load_package(package_dir).manifest.parity["fp32"].passed


def test_parity_for_unknown_variant_is_refused(package_dir):
    raw = json.loads((package_dir / MANIFEST_NAME).read_text())
    raw["parity"] = {
        "fp16": dict(max_abs_logit_diff=0.0, tiles_compared=1, scans_compared=0, findings_compared=0,
                     mismatched_mask_voxels=0, masks_identical=True, passed=True)
    }  # fmt: skip
    (package_dir / MANIFEST_NAME).write_text(json.dumps(raw))
    with pytest.raises(ModelPackageError, match="unknown variants"):
        load_package(package_dir)


def test_hash_files_skips_the_manifest_and_uses_posix_paths(package_dir):
    (package_dir / "text_encoder").mkdir()
    (package_dir / "text_encoder" / "tokenizer.json").write_text("{}")
    hashes = hash_files(package_dir)
    assert MANIFEST_NAME not in hashes
    assert "text_encoder/tokenizer.json" in hashes
    assert list(hashes) == sorted(hashes)


def test_readme_and_gitignore_are_not_part_of_the_package(package_dir):
    (package_dir / "README.md").write_text("# model\n")
    (package_dir / ".gitignore").write_text("*\n")
    assert "README.md" not in hash_files(package_dir) and ".gitignore" not in hash_files(package_dir)
    (package_dir / "README.md").write_text("# edited\n")  # editing the docs never breaks the package
    assert load_package(package_dir).manifest.files.keys() == {"encoder.fp32.onnx", "decoder.fp32.onnx"}
