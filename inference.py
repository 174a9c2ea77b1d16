"""The algorithm container's entrypoint (Grand Challenge conventions): ground finding sentences in one chest CT.

Inputs (read-only):
    /input/images/chest-ct/<uuid>.mha    the CT (.mha, .nii.gz or .nrrd; exactly one file)
    /input/finding.json                  a JSON string (one finding) or a list of strings (several findings)
    /input/inputs.json                   optional: the platform's socket list; when present it names the
                                         folder of the CT and the value (or file) of the finding
    /opt/ml/model/                       optional model package (model.tar.gz extracted); hash-checked. Without
                                         it the bundled default, the zero-shot engine, runs.
Outputs (the only places written, besides /tmp):
    /output/images/finding-segmentation/output.mha
        uint8 0/1 with the CT's geometry (size, spacing, origin, direction copied). A string finding gives a
        3D mask; a list of F findings gives one image with F components per voxel, component f = finding f
        (read back in raw order it is (F, ni, nj, nk), the challenge's submission layout).
    /output/results.json    per finding: parsed query, engine, voxel count, volume, timing (CaseRecord)

Exit status 0 on success; 1 with one line naming the file and the problem on bad input (missing or corrupt
CT, empty or non-string finding, broken model package). Paths can be moved with the environment variables
GC_INPUT_PATH, GC_OUTPUT_PATH and GC_MODEL_PATH (tests run ``run()`` in-process that way).
"""

from __future__ import annotations

import json
import logging
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, RootModel, StrictStr, ValidationError

from rexground.engines.select import choose_engine
from rexground.errors import FindingTextError, InputFileError, RexgroundError
from rexground.io import image_suffix
from rexground.predictor import CasePrediction, Predictor, validate_findings

INPUT_PATH = Path(os.environ.get("GC_INPUT_PATH", "/input"))
OUTPUT_PATH = Path(os.environ.get("GC_OUTPUT_PATH", "/output"))
MODEL_PATH = Path(os.environ.get("GC_MODEL_PATH", "/opt/ml/model"))
RESOURCES_PATH = Path(__file__).resolve().parent / "resources"
CT_SOCKET = "chest-ct"
FINDING_SOCKET = "finding"
MASK_SOCKET = "finding-segmentation"
RESULTS_FILE = "results.json"
CT_SUFFIXES = (".mha", ".nii.gz", ".nii", ".nrrd")

log = logging.getLogger("inference")


class SocketInterface(BaseModel):
    """The part of a platform socket we use (the platform sends more fields; they are ignored)."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    slug: str
    relative_path: str


class SocketValue(BaseModel):
    """One entry of ``/input/inputs.json``: a socket and its value (JSON sockets) or file (images)."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    interface: SocketInterface
    value: Any = None


class InputsDocument(RootModel[tuple[SocketValue, ...]]):
    model_config = ConfigDict(frozen=True)


class FindingSocket(RootModel[StrictStr | tuple[StrictStr, ...]]):
    """``finding.json``: one sentence, or a list of sentences of the same scan."""

    model_config = ConfigDict(frozen=True)


def _read_json(path: Path) -> Any:

    if not path.is_file():
        raise InputFileError(path, "does not exist")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputFileError(path, f"is not valid JSON: {exc}") from exc


def load_inputs(input_path: Path) -> tuple[Path, Any, Path]:
    """(CT folder, the finding socket's raw JSON value, where that value came from)."""

    ct_dir = input_path / "images" / CT_SOCKET
    finding_file = input_path / f"{FINDING_SOCKET}.json"
    inputs_file = input_path / "inputs.json"
    if inputs_file.is_file():
        try:
            sockets = {
                s.interface.slug: s for s in InputsDocument.model_validate(_read_json(inputs_file)).root
            }
        except ValidationError as exc:
            raise InputFileError(inputs_file, f"is not a list of socket values: {_first_error(exc)}") from exc
        if CT_SOCKET in sockets:
            ct_dir = input_path / sockets[CT_SOCKET].interface.relative_path
        if FINDING_SOCKET in sockets:
            socket = sockets[FINDING_SOCKET]
            if socket.value is not None:
                return ct_dir, socket.value, inputs_file
            finding_file = input_path / socket.interface.relative_path
    return ct_dir, _read_json(finding_file), finding_file


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "value"
    return f"{where}: {err['msg']}"


def parse_findings(value: Any, source: Path) -> list[str]:
    """The finding sentences of the socket's value: one string, or a list of strings (several findings
    give one output component each; one finding, alone or in a list, a 3D mask)."""

    try:
        findings = FindingSocket.model_validate(value).root
    except ValidationError as exc:
        raise FindingTextError(
            f"{source}: the finding must be a JSON string or a list of strings, got {json.dumps(value)[:200]}"
        ) from exc
    return validate_findings([findings] if isinstance(findings, str) else list(findings), str(source))


def find_ct(ct_dir: Path) -> Path:

    if not ct_dir.is_dir():
        raise InputFileError(ct_dir, "does not exist (the CT must be in this folder)")
    images = sorted(p for p in ct_dir.iterdir() if p.is_file() and image_suffix(p) in CT_SUFFIXES)
    if len(images) != 1:
        found = ", ".join(p.name for p in sorted(ct_dir.iterdir())) or "nothing"
        raise InputFileError(ct_dir, f"must hold exactly one CT ({', '.join(CT_SUFFIXES)}); found {found}")
    return images[0]


def write_outputs(output_path: Path, case: CasePrediction) -> Path:
    """The mask socket's ``output.mha`` (one finding: a 3D mask; several: one component per finding) and
    ``results.json``, both world-readable."""
    mask_path = output_path / "images" / MASK_SOCKET / "output.mha"
    results_path = output_path / RESULTS_FILE
    case.write(mask_path, several="vector", results_path=results_path)
    # Whoever collects /output is often another uid: make the outputs world-readable whatever the umask.
    for path in (mask_path, results_path):
        path.chmod(0o644)
    return mask_path


def run() -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)

    start = time.perf_counter()
    try:
        ct_dir, value, source = load_inputs(INPUT_PATH)
        findings = parse_findings(value, source)
        ct_path = find_ct(ct_dir)
        choice = choose_engine(
            "auto", device="auto", default_model_dir=MODEL_PATH, bundled_model_dir=RESOURCES_PATH / "model"
        )
        case = Predictor(choice.engine, choice.reason).predict_file(ct_path, findings)
        mask_path = write_outputs(OUTPUT_PATH, case)
    except RexgroundError as exc:
        print(f"inference.py: error: {exc}", file=sys.stderr)
        return 1
    for f in case.record.findings:
        log.info(
            "[%d] %d voxels (%.2f ml) in %.1f s: %s", f.channel, f.voxels, f.volume_ml, f.seconds, f.text
        )
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # kB on Linux
    log.info("wrote %s and %s in %.1f s; peak memory %.2f GB", mask_path, OUTPUT_PATH / RESULTS_FILE,
             time.perf_counter() - start, peak_gb)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(run())
