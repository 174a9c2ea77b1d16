"""The inference path (io, text, anatomy, engines, infer, postprocess, predictor, the CLI's predict commands,
the container's ``inference.py``) never imports torch, ``rexground.train`` or ``rexground.export``.

Checked in a fresh interpreter in which those packages cannot be imported at all (a meta-path finder
refuses them), so a lazy import deep in a call fails as loudly as a module-level one: first every module
of the path is imported, then (slow) a real prediction runs through the network engine with an ONNX
package exported beforehand, by ``rexground predict-case`` and by ``inference.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]

# Prepended to every child script: torch, rexground.train and rexground.export raise ImportError.
REFUSE = textwrap.dedent(
    """
    import importlib.abc
    import sys

    BLOCKED = ("torch", "rexground.train", "rexground.export")


    class RefuseTraining(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if any(name == b or name.startswith(b + ".") for b in BLOCKED):
                raise ImportError(f"{name} must not be imported on the inference path")
            return None


    sys.meta_path.insert(0, RefuseTraining())
    """
)

IMPORT_ALL = textwrap.dedent(
    """
    import importlib
    import importlib.util
    import pkgutil

    PACKAGES = ("rexground.infer", "rexground.engines", "rexground.text", "rexground.anatomy")
    MODULES = (
        "rexground.io", "rexground.geometry", "rexground.postprocess", "rexground.predictor",
        "rexground.categories", "rexground.components", "rexground.errors", "rexground.cli",
        "rexground.commands.predict_case", "rexground.commands.predict",
    )
    names = list(MODULES)
    for package in PACKAGES:
        names.append(package)
        module = importlib.import_module(package)
        names += [m.name for m in pkgutil.walk_packages(module.__path__, package + ".")]
    for name in names:
        importlib.import_module(name)
    spec = importlib.util.spec_from_file_location("inference_entrypoint", sys.argv[1])
    sys.modules[spec.name] = importlib.util.module_from_spec(spec)  # pydantic models look their module up
    spec.loader.exec_module(sys.modules[spec.name])
    loaded = sorted(m for m in sys.modules if m.split(".")[0] == "torch" or m.startswith("rexground.train"))
    assert not loaded, loaded
    print(len(names))
    """
)


def run_child(body: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", REFUSE + body, *args], capture_output=True, text=True, cwd=REPO, timeout=600
    )


def test_the_blocker_really_blocks():
    done = run_child("import rexground.train.config\n")
    assert done.returncode != 0 and "must not be imported on the inference path" in done.stderr


def test_every_module_of_the_inference_path_imports_without_torch_or_training():
    done = run_child(IMPORT_ALL, str(REPO / "inference.py"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert int(done.stdout.split()[-1]) > 40  # the walk found the packages' modules


PREDICT = textwrap.dedent(
    """
    import importlib.util
    import json
    import os
    from pathlib import Path

    from rexground.cli import main

    ct, model, out, findings = sys.argv[1], sys.argv[2], Path(sys.argv[3]), sys.argv[4:]
    args = ["predict-case", "--ct", ct, "--out", str(out / "mask.nii.gz"), "--json", str(out / "r.json"),
            "--engine", "network", "--model", model, "--device", "cpu", "--tile-step", "0.75"]
    for text in findings:
        args += ["--finding", text]
    assert main(args) == 0

    # the container's entrypoint, with the package mounted where Grand Challenge mounts it
    (out / "input" / "images" / "chest-ct").mkdir(parents=True)
    os.symlink(ct, out / "input" / "images" / "chest-ct" / "ct.nii.gz")
    (out / "input" / "finding.json").write_text(json.dumps(findings))
    os.environ.update(GC_INPUT_PATH=str(out / "input"), GC_OUTPUT_PATH=str(out / "output"),
                      GC_MODEL_PATH=model)
    spec = importlib.util.spec_from_file_location("inference_entrypoint", Path.cwd() / "inference.py")
    module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.run() == 0
    loaded = sorted(m for m in sys.modules if m.split(".")[0] == "torch" or m.startswith("rexground.train"))
    assert not loaded, loaded
    """
)


@pytest.mark.slow
def test_a_network_prediction_runs_with_torch_and_training_unimportable(tmp_path):
    """An anatomy-channel package (so rexground.infer.channels and rexground.anatomy run too) exported
    here with torch, then used by a child that cannot import torch."""
    pytest.importorskip("torch")
    import torch

    from rexground.export.package import export_network
    from rexground.io import read_mask_raw
    from rexground.synth import generate_case
    from rexground.train.config import InputSpec, NetConfig, TrainConfig
    from rexground.train.network import GroundingNet

    config = TrainConfig(
        net=NetConfig.tiny(in_channels=3, anatomy_gate_maps=2),
        input=InputSpec(
            patch_size_zyx=(16, 32, 32),
            spacing_zyx=(4.0, 4.0, 4.0),
            text_encoder="hashing-test",
            anatomy_channels=("lung_right", "coord_height"),
        ),
    )
    torch.manual_seed(0)
    model = tmp_path / "model"
    export_network(GroundingNet(config.net).eval(), config, model, allow_test_embedder=True, fp16=False)
    case = generate_case(4, "small")
    ct = tmp_path / "ct.nii.gz"
    import SimpleITK as sitk

    sitk.WriteImage(case.to_image(), str(ct))
    findings = [f.text for f in case.findings]
    done = run_child(PREDICT, str(ct), str(model), str(tmp_path), *findings)
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads((tmp_path / "r.json").read_text())
    assert record["engine"] == "network" and len(record["findings"]) == len(findings)
    assert all(f["info"]["tile_step"] == 0.75 for f in record["findings"])  # the run-time override
    mask = read_mask_raw(tmp_path / "mask.nii.gz")
    assert mask.sum() > 0
    container = read_mask_raw(tmp_path / "output" / "images" / "finding-segmentation" / "output.mha")
    results = json.loads((tmp_path / "output" / "results.json").read_text())
    assert results["engine"] == "network" and all(f["info"]["tile_step"] == 0.5 for f in results["findings"])
    assert container.shape[-3:] == np.asarray(read_mask_raw(ct)).shape
