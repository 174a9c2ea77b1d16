"""Configuration of the grounding network and of a training run, read from TOML or JSON.

Torch-free on purpose: the export step and the model manifest read ``NetConfig`` and ``InputSpec`` without
importing torch. Every model is frozen pydantic with ``extra="forbid"``, so a typo in a config file is an
error that names the file and the field, not a silently ignored setting.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from rexground.errors import InputFileError
from rexground.infer.conditions import TEXT_EMBEDDING_DIM
from rexground.infer.package import IntensityNormalisation


def _default_query_dim() -> int:
    """Width of the parsed-structure feature vector, owned by the text package."""
    from rexground.text.features import QUERY_FEATURE_DIM

    return int(QUERY_FEATURE_DIM)


class NetConfig(BaseModel):
    """Architecture of :class:`rexground.train.network.GroundingNet` (a residual 3D U-Net with FiLM and a
    mask-embedding head). ``strides[s]`` is the downsampling into stage ``s`` (stage 0 keeps full size)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    in_channels: int = Field(1, ge=1, description="CT channel + anatomy prior channels")
    features: tuple[int, ...] = (32, 64, 128, 256, 320)
    strides: tuple[tuple[int, int, int], ...] = ((1, 1, 1), (2, 2, 2), (2, 2, 2), (2, 2, 2), (2, 2, 2))
    encoder_blocks: tuple[int, ...] = (1, 2, 3, 3, 3)
    decoder_blocks: int = Field(1, ge=1)
    text_dim: int = TEXT_EMBEDDING_DIM
    query_dim: int = Field(default_factory=_default_query_dim)
    cond_dim: int = Field(256, ge=8)
    embed_dim: int = Field(32, ge=4, description="width of the per-voxel mask embedding")
    cond_level: int = Field(
        2, ge=1, description="finest level of the per-finding branch (1/2**level resolution)"
    )
    deep_supervision: int = Field(
        2, ge=0, description="extra low-resolution where-map heads used in training"
    )
    anatomy_gate_maps: int = Field(
        0,
        ge=0,
        description="per-finding maps the text mixes from the anatomy input channels (0 = off); see "
        "rexground.train.network",
    )
    negative_slope: float = 0.01

    @model_validator(mode="after")
    def _check_lengths(self) -> NetConfig:
        n = len(self.features)
        if n < 2:
            raise ValueError("features needs at least two stages")
        if len(self.strides) != n or len(self.encoder_blocks) != n:
            raise ValueError(
                f"features ({n}), strides ({len(self.strides)}) and encoder_blocks "
                f"({len(self.encoder_blocks)}) must have one entry per stage"
            )
        if tuple(self.strides[0]) != (1, 1, 1):
            raise ValueError("strides[0] must be (1, 1, 1): stage 0 runs at full patch resolution")
        if self.cond_level > n - 1:
            raise ValueError(f"cond_level must be at most {n - 1} for {n} stages")
        if self.anatomy_gate_maps and self.in_channels < 2:
            raise ValueError("anatomy_gate_maps needs anatomy input channels (in_channels >= 2)")
        if self.deep_supervision > n - self.cond_level:
            raise ValueError(
                f"deep_supervision must be at most {n - self.cond_level} (the conditioned levels)"
            )
        return self

    @property
    def total_stride(self) -> tuple[int, int, int]:
        out = [1, 1, 1]
        for s in self.strides:
            out = [o * k for o, k in zip(out, s, strict=True)]
        return tuple(out)  # type: ignore[return-value]

    @classmethod
    def tiny(cls, **overrides) -> NetConfig:
        """A few thousand parameters' worth of network for tests and CPU smoke runs."""
        base = dict(
            features=(8, 16, 24, 32),
            strides=((1, 1, 1), (2, 2, 2), (2, 2, 2), (2, 2, 2)),
            encoder_blocks=(1, 1, 1, 1),
            cond_dim=32,
            embed_dim=8,
            deep_supervision=2,
        )
        base.update(overrides)
        return cls(**base)

    @classmethod
    def real(cls, **overrides) -> NetConfig:
        """The GPU model (about 48M parameters), nnU-Net ResEnc-like widths and depths."""
        return cls(**overrides)


class InputSpec(BaseModel):
    """What the network sees: the contract that training, export and onnxruntime inference share."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    patch_size_zyx: tuple[int, int, int] = (128, 160, 160)
    spacing_zyx: tuple[float, float, float] = (1.5, 1.0, 1.0)  # mm
    # HU -> network input, the inference path's own model (rexground.infer.preprocess.normalise applies it):
    # padding clipped first, then the window, then (x - mean) / std.
    intensity: IntensityNormalisation = IntensityNormalisation()
    anatomy_channels: tuple[str, ...] = ()  # names from rexground.anatomy, in channel order
    text_encoder: str = Field(
        "minilm",
        description="'minilm' (rexground.text.encoder.SentenceEncoder) or 'hashing-test' (test-only)",
    )

    @property
    def in_channels(self) -> int:
        return 1 + len(self.anatomy_channels)


class DataConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    train_split: str = "train"
    val_split: str = "val"
    max_train_cases: int | None = None
    max_val_cases: int | None = 20
    positives_per_patch: int = Field(2, ge=0)
    negatives_per_patch: int = Field(1, ge=0)
    foreground_fraction: float = Field(0.75, ge=0.0, le=1.0)  # patches centred on a finding
    partial_label_cap: int = Field(3, ge=1, description="instances drawn per training finding")
    partial_ignore: Literal["components", "none"] = "components"
    intensity_augment: bool = True
    # Share of patches scaled and rotated in the axial plane (rexground.train.augment; never mirrored).
    spatial_augment: float = Field(0.0, ge=0.0, le=1.0)
    augment_scale: tuple[float, float] = (0.85, 1.15)
    augment_rotation_deg: float = Field(15.0, ge=0.0, le=45.0)
    num_workers: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _scale_range(self) -> DataConfig:
        lo, hi = self.augment_scale
        if not 0.5 <= lo <= hi <= 2.0:
            raise ValueError(f"augment_scale {self.augment_scale}: need 0.5 <= low <= high <= 2.0")
        return self

    @property
    def prompts_per_patch(self) -> int:
        return self.positives_per_patch + self.negatives_per_patch


class OptimConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    optimizer: Literal["sgd", "adamw"] = "sgd"
    lr: float = 1e-2
    encoder_lr_scale: float = 1.0  # fine-tuning recipes use 0.1 (encoder 1e-5, decoder 1e-4)
    momentum: float = 0.99
    weight_decay: float = 3e-5
    warmup_steps: int = Field(500, ge=0)
    poly_exponent: float = 0.9
    grad_clip: float = 12.0


class LossConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    bce_weight: float = 1.0
    dice_weight: float = 0.5  # Dice only on prompts whose target is non-empty
    pos_weight: float = 1.0
    ignore_weight: float = 0.0  # BCE weight of voxels marked "maybe an unlabelled instance"


class TrainConfig(BaseModel):
    """One training run: network, input contract, data sampling, optimisation, schedule."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    net: NetConfig
    input: InputSpec = InputSpec()
    data: DataConfig = DataConfig()
    optim: OptimConfig = OptimConfig()
    loss: LossConfig = LossConfig()
    seed: int = 0
    batch_size: int = Field(2, ge=1, description="patches per step per process")
    steps: int = Field(250_000, ge=1)
    val_every: int = Field(5000, ge=1)
    checkpoint_every: int = Field(1000, ge=1)
    log_every: int = Field(50, ge=1)
    amp: Literal["auto", "off", "bf16", "fp16"] = "auto"
    threshold: float = Field(0.5, gt=0.0, lt=1.0)
    # Sliding-window step as a fraction of the patch (0.5: half-patch steps), for validation and, through
    # the exported manifest, the network engine's default (``--tile-step`` overrides it at run time).
    tile_step: float = Field(0.5, gt=0.0, le=1.0)

    @model_validator(mode="before")
    @classmethod
    def _legacy_overlap(cls, raw):
        # Configs and checkpoints written before the step had one name gave the overlap instead.
        if isinstance(raw, dict) and "val_overlap" in raw:
            raw = dict(raw)
            overlap = raw.pop("val_overlap")
            if "tile_step" in raw:
                raise ValueError("give tile_step only (val_overlap is its old, inverted form)")
            raw["tile_step"] = round(1.0 - float(overlap), 6)
        return raw

    @model_validator(mode="after")
    def _check_consistency(self) -> TrainConfig:
        if self.net.in_channels != self.input.in_channels:
            raise ValueError(
                f"net.in_channels ({self.net.in_channels}) must equal 1 + len(input.anatomy_channels) "
                f"({self.input.in_channels})"
            )
        total = self.net.total_stride
        for p, s in zip(self.input.patch_size_zyx, total, strict=True):
            if p % s:
                raise ValueError(
                    f"patch size {self.input.patch_size_zyx} must be divisible by the stride {total}"
                )
        if self.data.prompts_per_patch < 1:
            raise ValueError("data needs at least one prompt per patch")
        return self


def load_config(path: str | Path) -> TrainConfig:
    """Read a TrainConfig from TOML (``.toml``) or JSON; the error names the file and the field."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise InputFileError(path, f"cannot read config: {exc.strerror or exc}") from exc
    try:
        raw = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise InputFileError(
            path, f"not valid {'TOML' if path.suffix == '.toml' else 'JSON'}: {exc}"
        ) from exc
    return parse_config(raw, source=path)


def parse_config(raw: dict, source: str | Path = "<config>") -> TrainConfig:
    raw = dict(raw)
    net = dict(raw.get("net", {}))
    preset = net.pop("preset", None)
    if preset is not None:
        if preset not in ("tiny", "real"):
            raise InputFileError(source, f"net.preset must be 'tiny' or 'real', got {preset!r}")
        try:
            raw["net"] = (NetConfig.tiny if preset == "tiny" else NetConfig.real)(**net).model_dump()
        except ValidationError as exc:
            raise InputFileError(source, _describe(exc, prefix="net")) from exc
    try:
        return TrainConfig.model_validate(raw)
    except ValidationError as exc:
        raise InputFileError(source, _describe(exc)) from exc


def _describe(exc: ValidationError, prefix: str = "") -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in ((prefix,) if prefix else ()) + tuple(err["loc"]))
        parts.append(f"{loc or '<root>'}: {err['msg']}")
    return "; ".join(parts)
