"""The model package: a folder with ``manifest.json``, the ONNX graphs and the sentence encoder files.

The package is the network contract written down (the role nnU-Net's plans file has): what training,
the export and the network engine must agree on.

The same folder is what ``model.tar.gz`` holds and what a container finds mounted at ``/opt/ml/model``.
The manifest says how to run the network (patch size, spacing, intensity normalisation, input channels,
threshold) and pins every file by sha256, so a package that was copied half-way, edited or mixed with
another run's files is refused with an error that names the file. No torch here: the container loads it.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from rexground.errors import ModelPackageError

# 2: the sliding-window step is ``tile_step`` (1 called it ``step_fraction``, same meaning; 1 is still read).
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
MANIFEST_NAME = "manifest.json"
# Files a package folder may hold that are not part of the package (not hashed, kept across re-exports):
# the repository's ``model/`` folder documents itself and keeps the large files out of git.
UNPACKAGED_FILES = ("README.md", ".gitignore")
# Channel 0 of the network input is always the normalised CT; further channels are anatomy priors.
CT_CHANNEL = "ct"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class IntensityNormalisation(_Frozen):
    """HU -> network input: padding (< ``padding_below``) becomes ``padding_below`` first, then clip to
    [clip_min, clip_max], then (x - mean) / std. Padding is clipped before any statistic is applied."""

    padding_below: float = -1024.0
    clip_min: float = -1024.0
    clip_max: float = 1024.0
    mean: float = -500.0
    std: float = 500.0

    @model_validator(mode="after")
    def _check(self) -> IntensityNormalisation:
        if self.clip_max <= self.clip_min:
            raise ValueError(f"clip_max {self.clip_max} must exceed clip_min {self.clip_min}")
        if self.std <= 0:
            raise ValueError(f"std must be positive, got {self.std}")
        return self


class GraphPair(_Frozen):
    """The two graphs of one precision variant: image encoder (once per tile) and text-conditioned decoder
    (once per finding per tile), with their tensor names in call order."""

    encoder: str
    decoder: str
    encoder_input: str = "image"
    encoder_outputs: tuple[str, ...]  # the skip tensors, fed to the decoder in this order
    decoder_text_input: str = "text_embedding"
    decoder_query_input: str = "query_features"
    decoder_output: str = "logits"


class TextEncoderFiles(_Frozen):
    """The sentence encoder, in a sub-folder of the package (as ``rexground.export.text_encoder`` writes it)."""

    directory: str = "text_encoder"
    onnx: str = "text_encoder.onnx"
    tokenizer: str = "tokenizer.json"
    config: str = "text_encoder.json"
    embedding_dim: int = Field(gt=0)

    def relative_files(self) -> tuple[str, str, str]:
        return tuple(f"{self.directory}/{name}" for name in (self.onnx, self.tokenizer, self.config))  # type: ignore[return-value]


class Parity(_Frozen):
    """Export-time agreement between an ONNX variant and the torch network it came from."""

    max_abs_logit_diff: float = Field(ge=0)  # over random and phantom tiles
    tiles_compared: int = Field(ge=0)
    scans_compared: int = Field(ge=0)  # phantom scans run end to end through the sliding window
    findings_compared: int = Field(ge=0)
    mismatched_mask_voxels: int = Field(ge=0)  # thresholded masks, torch vs ONNX, summed over findings
    masks_identical: bool
    passed: bool  # within the tolerance the exporter applies to this variant


class Manifest(_Frozen):
    """Everything needed to run a packaged network, and the hash of every file in the package."""

    format_version: int
    engine: Literal["network"] = "network"
    name: str = "rexground-network"
    created_utc: str
    patch_size: tuple[int, int, int]  # canonical (z, y, x) voxels at target_spacing
    target_spacing: tuple[float, float, float]  # canonical (z, y, x) mm
    normalisation: IntensityNormalisation
    crop: Literal["body", "none"] = "body"
    input_channels: tuple[str, ...] = (CT_CHANNEL,)
    threshold: float = Field(0.5, gt=0.0, lt=1.0)  # on sigmoid(logit)
    tile_step: float = Field(0.5, gt=0.0, le=1.0)  # sliding-window step / patch; the run-time default
    text_embedding_dim: int = Field(gt=0)
    # "sentence-encoder": the ONNX encoder in ``text_encoder``; "hashing-test": the test-only hashing
    # embedder of ``rexground.infer.conditions`` (no files; packages of smoke-test runs only).
    text_embedder: Literal["sentence-encoder", "hashing-test"] = "sentence-encoder"
    text_encoder: TextEncoderFiles | None
    query_feature_dim: int = Field(ge=0)
    query_feature_version: int = Field(ge=0)  # rexground.text.features.QUERY_FEATURE_VERSION at training
    graphs: dict[str, GraphPair]  # precision variant ("fp32", "fp16") -> graphs
    files: dict[str, str]  # package-relative POSIX path -> sha256 hex, every file but the manifest
    parity: dict[str, Parity] = {}
    source: dict[str, str] = {}  # run dir, checkpoint, config digest: provenance only

    @field_validator("patch_size", "target_spacing")
    @classmethod
    def _positive(cls, v: tuple, info: ValidationInfo) -> tuple:
        if min(v) <= 0:
            raise ValueError(f"{info.field_name.replace('_', ' ')} must be positive, got {v}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Manifest:
        if not self.input_channels or self.input_channels[0] != CT_CHANNEL:
            raise ValueError(f"input_channels must start with {CT_CHANNEL!r}, got {self.input_channels}")
        if "fp32" not in self.graphs:
            raise ValueError("graphs must contain the 'fp32' variant")
        listed = set(self.files)
        needed = {g for pair in self.graphs.values() for g in (pair.encoder, pair.decoder)}
        if (self.text_embedder == "sentence-encoder") != (self.text_encoder is not None):
            raise ValueError(
                "text_encoder files are required for, and only for, text_embedder 'sentence-encoder'"
            )
        if self.text_encoder is not None:
            needed |= set(self.text_encoder.relative_files())
            if self.text_encoder.embedding_dim != self.text_embedding_dim:
                raise ValueError(
                    f"text_encoder.embedding_dim {self.text_encoder.embedding_dim} != "
                    f"text_embedding_dim {self.text_embedding_dim}"
                )
        missing = sorted(needed - listed)
        if missing:
            raise ValueError(f"files does not list {missing}")
        for rel in listed:
            p = Path(rel)
            if p.is_absolute() or ".." in p.parts or rel == MANIFEST_NAME:
                raise ValueError(f"files entry {rel!r} must be a relative path inside the package")
        unknown_parity = sorted(set(self.parity) - set(self.graphs))
        if unknown_parity:
            raise ValueError(f"parity given for unknown variants {unknown_parity}")
        return self


@dataclass(frozen=True)
class ModelPackage:
    """A loaded, hash-checked package: its folder and manifest, with absolute paths to its files."""

    root: Path
    manifest: Manifest

    def path(self, relative: str) -> Path:
        return self.root / relative

    def graph_paths(self, variant: str) -> tuple[Path, Path]:
        try:
            pair = self.manifest.graphs[variant]
        except KeyError:
            raise ModelPackageError(
                f"{self.root / MANIFEST_NAME}: no graphs for variant {variant!r} "
                f"(has {sorted(self.manifest.graphs)})"
            ) from None
        return self.path(pair.encoder), self.path(pair.decoder)

    @property
    def text_encoder_dir(self) -> Path | None:
        te = self.manifest.text_encoder
        return None if te is None else self.root / te.directory

    def variants_usable(self) -> list[str]:
        """Variants whose export-time parity passed (fp32 always first: it is the reference)."""
        out = ["fp32"]
        for name, parity in self.manifest.parity.items():
            if name != "fp32" and name in self.manifest.graphs and parity.passed:
                out.append(name)
        return out


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def hash_files(root: Path, relative_paths: list[str] | None = None) -> dict[str, str]:
    """sha256 of the given files (default: every file under ``root`` but the manifest and
    ``UNPACKAGED_FILES``), sorted by path."""
    root = Path(root)
    if relative_paths is None:
        skip = {MANIFEST_NAME, *UNPACKAGED_FILES}
        relative_paths = [
            p.relative_to(root).as_posix()
            for p in root.rglob("*")
            if p.is_file() and p.relative_to(root).as_posix() not in skip
        ]
    return {rel: sha256_file(root / rel) for rel in sorted(relative_paths)}


def write_manifest(root: Path, manifest: Manifest) -> Path:
    """Write ``root/manifest.json`` atomically (temporary file in the same folder, then rename)."""
    root = Path(root)
    final = root / MANIFEST_NAME
    text = json.dumps(manifest.model_dump(mode="json"), indent=2, sort_keys=False) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=".manifest.", suffix=".tmp", dir=root)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return final


def read_manifest(root: Path) -> Manifest:
    """Parse and validate ``manifest.json`` (no hash check); errors name the file and the field."""
    path = Path(root) / MANIFEST_NAME
    if not Path(root).is_dir():
        raise ModelPackageError(f"{root}: model package folder does not exist")
    if not path.is_file():
        raise ModelPackageError(f"{path}: missing (not a model package folder?)")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelPackageError(f"{path}: not readable JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise ModelPackageError(f"{path}: expected a JSON object, got {type(raw).__name__}")
    # The version is checked before the schema: a newer format may have fields this code does not know.
    version = raw.get("format_version")
    if version not in READABLE_VERSIONS:
        raise ModelPackageError(
            f"{path}: format_version {version!r} is not supported (this rexground reads "
            f"{', '.join(map(str, READABLE_VERSIONS))}): re-export the package with this rexground"
        )
    if version == 1:  # read as version 2: only the step's name changed
        raw = {**raw, "format_version": FORMAT_VERSION}
        if "step_fraction" in raw:
            raw["tile_step"] = raw.pop("step_fraction")
    try:
        return Manifest.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors()
        )
        raise ModelPackageError(f"{path}: invalid manifest: {problems}") from None


def load_package(root: str | Path, *, verify_hashes: bool = True) -> ModelPackage:
    """Load a package folder, refusing a wrong version, a missing file or a file whose sha256 differs."""
    root = Path(root).resolve()
    manifest = read_manifest(root)
    if verify_hashes:
        for rel, expected in manifest.files.items():
            path = root / rel
            if not path.is_file():
                raise ModelPackageError(f"{path}: listed in {MANIFEST_NAME} but missing")
            actual = sha256_file(path)
            if actual != expected:
                raise ModelPackageError(
                    f"{path}: sha256 {actual[:16]}... does not match {MANIFEST_NAME} ({expected[:16]}...): "
                    "the file was changed or belongs to another package"
                )
    return ModelPackage(root=root, manifest=manifest)


def is_model_package(root: str | Path) -> bool:
    """Cheap test (no hashing) used by ``--engine auto`` to decide whether a folder holds a package."""
    return (Path(root) / MANIFEST_NAME).is_file()
