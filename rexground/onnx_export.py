"""Export a trained GroundingNet to an ONNX model package, and prove it computes what torch computes.

torch is imported here and only here (besides ``rexground/train``): this is the ``export/`` step of the
design. The network is split where the text enters: ``encode_image`` becomes the encoder graph (run once
per tile) and ``decode`` the decoder graph (run once per finding per tile on the encoder's skip tensors).
Both have a fixed patch shape and a dynamic batch. An fp16 variant is made from the fp32 graphs with every
normalisation layer kept in fp32 (fp16 variance of a 3D feature map overflows or loses the mean); casts
sit at the boundaries, and graph inputs and outputs stay fp32 so both variants share one calling code.

Parity, written into the manifest for each variant: (1) the largest absolute logit difference against
torch on tiles cut from phantom scans and on random tiles; (2) the whole inference path (crop, resample,
sliding window, back onto the CT grid, threshold) run twice on phantom scans, once with torch eager as the
tile backend and once with onnxruntime, counting voxels whose thresholded mask differs.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from rexground.errors import RexgroundError
from rexground.infer.onnx_session import Conditions, CpuOrtBackend, make_session
from rexground.infer.preprocess import prepare, to_crop_grid
from rexground.infer.scan import run_network
from rexground.infer.sliding_window import HostAccumulator, Shape3
from rexground.model_package import (
    CT_CHANNEL,
    FORMAT_VERSION,
    UNPACKAGED_FILES,
    GraphPair,
    IntensityNormalisation,
    Manifest,
    ModelPackage,
    Parity,
    TextEncoderFiles,
    hash_files,
    load_package,
    write_manifest,
)

log = logging.getLogger(__name__)

OPSET = 17
IMAGE_INPUT = "image"
TEXT_INPUT = "text_embedding"
QUERY_INPUT = "query_features"
LOGITS_OUTPUT = "logits"
# Normalisation ops whose statistics must be computed in fp32 in the fp16 variant.
KEEP_FP32_OPS = ("InstanceNormalization", "BatchNormalization", "LayerNormalization", "GroupNormalization")
# Parity gates: (max abs logit difference, largest fraction of mask voxels allowed to differ).
PARITY_TOLERANCE = {"fp32": (1e-3, 1e-3), "fp16": (0.25, 0.02)}


class ExportError(RexgroundError):
    """The run cannot be exported, or the exported graphs disagree with torch beyond tolerance."""


# ---- torch side -------------------------------------------------------------------------------------


class _EncoderGraph(nn.Module):
    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.net.encode_image(image)


class _DecoderGraph(nn.Module):
    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        return self.net.decode(*args)


class TorchTileBackend:
    """torch eager as a sliding-window backend: the parity reference and the benchmark's baseline."""

    device = "cpu"

    def __init__(self, net: nn.Module):
        self.net = net.eval()
        self.acc = HostAccumulator()
        self._text: torch.Tensor | None = None
        self._query: torch.Tensor | None = None

    def set_conditions(self, conditions: Conditions) -> None:
        self._text = torch.from_numpy(conditions.text_embedding)
        self._query = torch.from_numpy(conditions.query_features)

    def start(self, volume_shape: Shape3, n_findings: int, importance: np.ndarray) -> None:
        self.acc.start(volume_shape, n_findings, importance)

    @torch.inference_mode()
    def encode(self, tiles: np.ndarray) -> tuple[torch.Tensor, ...]:
        return self.net.encode_image(torch.from_numpy(np.ascontiguousarray(tiles, dtype=np.float32)))

    @torch.inference_mode()
    def decode(self, features: tuple[torch.Tensor, ...], finding: int) -> np.ndarray:
        assert self._text is not None and self._query is not None, "set_conditions() first"
        b = features[0].shape[0]
        text = self._text[finding : finding + 1].expand(b, -1)
        query = self._query[finding : finding + 1].expand(b, -1)
        return self.net.decode(*features, text, query).numpy()

    def decode_accumulate(self, features, finding: int, starts: Sequence[Shape3]) -> None:
        self.acc.add(finding, self.decode(features, finding), starts)

    def finish(self) -> np.ndarray:
        return self.acc.finish()


def export_fp32(
    net: nn.Module, out_dir: Path, *, patch_size: Shape3, in_channels: int, text_dim: int, query_dim: int
) -> GraphPair:
    """Write ``encoder.fp32.onnx`` and ``decoder.fp32.onnx`` (fixed patch shape, dynamic batch)."""
    net = net.eval().cpu()
    image = torch.zeros(2, in_channels, *patch_size)
    with torch.inference_mode():
        feats = net.encode_image(image)
    skip_names = tuple(f"skip{i}" for i in range(len(feats)))
    enc_name, dec_name = "encoder.fp32.onnx", "decoder.fp32.onnx"
    batch = {0: "batch"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notes
        torch.onnx.export(
            _EncoderGraph(net), (image,), str(out_dir / enc_name), input_names=[IMAGE_INPUT],
            output_names=list(skip_names), opset_version=OPSET, dynamo=False, do_constant_folding=True,
            dynamic_axes={IMAGE_INPUT: batch, **{n: batch for n in skip_names}},
        )  # fmt: skip
        feats = tuple(f.clone() for f in feats)
        dec_args = (*feats, torch.zeros(2, text_dim), torch.zeros(2, query_dim))
        dec_inputs = [*skip_names, TEXT_INPUT, QUERY_INPUT]
        torch.onnx.export(
            _DecoderGraph(net), dec_args, str(out_dir / dec_name), input_names=dec_inputs,
            output_names=[LOGITS_OUTPUT], opset_version=OPSET, dynamo=False, do_constant_folding=True,
            dynamic_axes={**{n: batch for n in dec_inputs}, LOGITS_OUTPUT: batch},
        )  # fmt: skip
    for name in (enc_name, dec_name):
        onnx.checker.check_model(str(out_dir / name))
    return GraphPair(
        encoder=enc_name, decoder=dec_name, encoder_input=IMAGE_INPUT, encoder_outputs=skip_names,
        decoder_text_input=TEXT_INPUT, decoder_query_input=QUERY_INPUT, decoder_output=LOGITS_OUTPUT,
    )  # fmt: skip


def convert_fp16(src: Path, dst: Path) -> None:
    """fp32 graph -> fp16 graph with normalisation ops and graph I/O kept in fp32 (onnxconverter-common)."""
    try:
        from onnxconverter_common import float16
    except ImportError as exc:  # an export-time extra, never needed at inference
        raise ExportError(
            "the fp16 variant needs onnxconverter-common: pip install onnxconverter-common"
        ) from exc
    model = _separate_consumed_outputs(_fold_identity_initializers(onnx.load(str(src))))
    block = sorted(set(float16.DEFAULT_OP_BLOCK_LIST) | set(KEEP_FP32_OPS))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "values truncated to fp16" notes for tiny weights
        half = float16.convert_float_to_float16(model, keep_io_types=True, op_block_list=block)
    onnx.checker.check_model(half)
    onnx.save(half, str(dst))


def _fold_identity_initializers(model: onnx.ModelProto) -> onnx.ModelProto:
    """Replace ``Identity(initializer)`` nodes (the TorchScript exporter's way of sharing a weight) by a copy
    of the initializer under the output's name: the fp16 converter would retype the weight but not the
    Identity's output, and onnxruntime then refuses the graph."""
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    outputs = {o.name for o in graph.output}
    keep = []
    for node in graph.node:
        if node.op_type == "Identity" and node.input[0] in inits and node.output[0] not in outputs:
            copy = onnx.TensorProto()
            copy.CopyFrom(inits[node.input[0]])
            copy.name = node.output[0]
            graph.initializer.append(copy)
            inits[copy.name] = copy
        else:
            keep.append(node)
    del graph.node[:]
    graph.node.extend(keep)
    del graph.value_info[:]  # stale types; onnxruntime re-infers them
    return model


def _separate_consumed_outputs(model: onnx.ModelProto) -> onnx.ModelProto:
    """A graph output that other nodes also read (the encoder's skips feed the next stage) gets an inner
    name plus a final Identity: with ``keep_io_types`` the converter casts outputs back to fp32 in place,
    and the inner readers would otherwise be handed the fp32 tensor."""
    graph = model.graph
    outputs = {o.name for o in graph.output}
    consumed = {i for n in graph.node for i in n.input} & outputs
    if not consumed:
        return model
    inner = {name: f"{name}__inner" for name in consumed}
    for node in graph.node:
        for k, name in enumerate(node.output):
            if name in inner:
                node.output[k] = inner[name]
        for k, name in enumerate(node.input):
            if name in inner:
                node.input[k] = inner[name]
    for name, inner_name in inner.items():
        graph.node.append(onnx.helper.make_node("Identity", [inner_name], [name], name=f"{name}__output"))
    return model


def fp16_pair(fp32: GraphPair, out_dir: Path) -> GraphPair:
    enc, dec = "encoder.fp16.onnx", "decoder.fp16.onnx"
    convert_fp16(out_dir / fp32.encoder, out_dir / enc)
    convert_fp16(out_dir / fp32.decoder, out_dir / dec)
    return fp32.model_copy(update={"encoder": enc, "decoder": dec})


# ---- phantoms for the parity check ------------------------------------------------------------------


@dataclass
class ParityScan:
    """A canonical CT (HU, padding included) and finding sentences to run end to end."""

    hu: np.ndarray
    spacing_zyx: tuple[float, float, float]
    findings: list[str]
    anatomy: dict[str, np.ndarray] | None = None  # the prior masks a model with anatomy channels reads


def with_anatomy(scan: ParityScan, channels: Sequence[str]) -> ParityScan:
    """The scan with the named anatomy prior masks computed from its CT, as inference computes them."""
    from rexground.anatomy import compute_anatomy_from_array
    from rexground.train.anatomy_channels import masks_from_anatomy

    anatomy = compute_anatomy_from_array(scan.hu, scan.spacing_zyx)
    return ParityScan(scan.hu, scan.spacing_zyx, scan.findings, masks_from_anatomy(anatomy, channels))


def synth_scans(n: int, seed: int = 0) -> list[ParityScan]:
    """Phantoms of ``rexground.synth`` (anatomy, all finding categories, their own report sentences)."""
    from rexground.synth import generate_case

    scans = []
    for i in range(n):
        case = generate_case(seed + i, "small")
        scans.append(ParityScan(case.hu, tuple(case.spacing_zyx), [f.text for f in case.findings]))  # type: ignore[arg-type]
    return scans


def phantom_scans(n: int, patch_mm: Sequence[float], seed: int = 0) -> list[ParityScan]:
    """Small chest-like phantoms: air with -2048 padding outside a round field of view, a body of soft tissue,
    two lungs, a nodule, a ground-glass patch and dependent fluid; about 1.5 patches wide per axis so the
    sliding window overlaps, pads and meets borders. Enough to compare two implementations of one network."""
    rng = np.random.default_rng(seed)
    scans = []
    for i in range(n):
        spacing = (2.5, 1.6 + 0.2 * i, 1.6 + 0.2 * i)
        shape = tuple(max(8, int(1.5 * p / s)) for p, s in zip(patch_mm, spacing, strict=True))
        z, y, x = np.meshgrid(*[np.linspace(-1, 1, s, dtype=np.float32) for s in shape], indexing="ij")
        hu = np.full(shape, -1000.0, np.float32)
        body = (y / 0.8) ** 2 + (x / 0.9) ** 2 < 1
        hu[body] = 40.0
        right = ((x + 0.4) / 0.33) ** 2 + (y / 0.6) ** 2 + (z / 0.95) ** 2 < 1
        left = ((x - 0.4) / 0.33) ** 2 + (y / 0.6) ** 2 + (z / 0.95) ** 2 < 1
        hu[right | left] = -850.0
        nodule = (x + 0.4 - 0.1 * i) ** 2 + (y + 0.1) ** 2 + (z - 0.3) ** 2 < 0.12**2
        hu[nodule] = 30.0
        ggo = ((x - 0.45) ** 2 + (y - 0.1) ** 2 + (z + 0.4) ** 2 < 0.2**2) & left
        hu[ggo] = -550.0
        fluid = left & (y > 0.4)
        hu[fluid] = 10.0
        hu += rng.normal(0, 25, shape).astype(np.float32)
        hu[(y**2 + x**2) > 1.0] = -2048.0  # scanner padding outside the reconstruction circle
        findings = [
            "Solid nodule in the right upper lobe measuring 8 mm.",
            "Patchy ground-glass opacity in the left lower lobe.",
            "Small left pleural effusion.",
        ]
        scans.append(ParityScan(np.round(hu).astype(np.int16), spacing, findings))  # type: ignore[arg-type]
    return scans


# ---- parity ------------------------------------------------------------------------------------------


def tile_parity(
    torch_backend: TorchTileBackend, ort_backend: CpuOrtBackend, tiles: np.ndarray, conditions: Conditions,
    batch_size: int = 2,
) -> float:  # fmt: skip
    """Largest |logit_torch - logit_onnx| over the tiles and every finding of ``conditions``."""
    torch_backend.set_conditions(conditions)
    ort_backend.set_conditions(conditions)
    worst = 0.0
    for i in range(0, len(tiles), batch_size):
        batch = np.ascontiguousarray(tiles[i : i + batch_size])
        t_feats = torch_backend.encode(batch)
        o_feats = ort_backend.encode(batch)
        for f in range(conditions.n_findings):
            a = torch_backend.decode(t_feats, f)
            b = ort_backend.decode(o_feats, f).astype(np.float32)
            worst = max(worst, float(np.abs(a - b).max()))
    return worst


def scan_masks(scan_logits, threshold_logit: float) -> list[np.ndarray]:
    """Thresholded masks on the CT crop's grid, one per finding (before component filtering)."""
    return [
        to_crop_grid(scan_logits.logits[f], scan_logits.prepared) >= threshold_logit
        for f in range(len(scan_logits.logits))
    ]


def check_parity(
    net: nn.Module,
    package: ModelPackage,
    variant: str,
    scans: Sequence[ParityScan],
    conditioner,
    *,
    n_random_tiles: int = 4,
    batch_size: int = 2,
    seed: int = 0,
) -> Parity:
    """Compare ``variant``'s graphs with torch on tiles and on whole phantom scans (CPU provider)."""
    m = package.manifest
    enc_path, dec_path = package.graph_paths(variant)
    ort_backend = CpuOrtBackend(
        make_session(enc_path, "cpu"), make_session(dec_path, "cpu"), m.graphs[variant]
    )
    torch_backend = TorchTileBackend(net)
    rng = np.random.default_rng(seed)
    threshold_logit = float(np.log(m.threshold / (1 - m.threshold)))
    worst = 0.0
    tiles_compared = 0
    mismatched = 0
    union = 0
    findings = 0
    for scan in scans:
        cond = conditioner.conditions(scan.findings)
        results = []
        for backend in (torch_backend, ort_backend):
            results.append(
                run_network(
                    scan.hu, scan.spacing_zyx, m, backend, cond, anatomy=scan.anatomy, batch_size=batch_size
                )
            )
        for a, b in zip(
            scan_masks(results[0], threshold_logit), scan_masks(results[1], threshold_logit), strict=True
        ):
            mismatched += int(np.count_nonzero(a != b))
            union += int(np.count_nonzero(a | b))
            findings += 1
        worst = max(worst, float(np.abs(results[0].logits - results[1].logits).max()))
        # Tiles cut from the scan's network input: real intensities, the encoder's usual range.
        with_priors = scan.anatomy is not None or len(m.input_channels) == 1
        prepared = prepare(
            scan.hu, scan.spacing_zyx, target_spacing=m.target_spacing, norm=m.normalisation, crop=m.crop,
            channels=m.input_channels if with_priors else m.input_channels[:1], anatomy=scan.anatomy,
        )  # fmt: skip
        image = prepared.image
        if not with_priors:  # zero prior channels are a valid input for a tile-level comparison
            image = np.concatenate(
                [image, np.zeros((len(m.input_channels) - 1, *image.shape[1:]), np.float32)]
            )
        tiles = []
        for _ in range(2):
            start = [
                int(rng.integers(0, max(1, s - p + 1)))
                for s, p in zip(image.shape[1:], m.patch_size, strict=True)
            ]
            tile = np.zeros((image.shape[0], *m.patch_size), np.float32)
            src = image[
                :,
                start[0] : start[0] + m.patch_size[0],
                start[1] : start[1] + m.patch_size[1],
                start[2] : start[2] + m.patch_size[2],
            ]
            tile[:, : src.shape[1], : src.shape[2], : src.shape[3]] = src
            tiles.append(tile)
        worst = max(worst, tile_parity(torch_backend, ort_backend, np.stack(tiles), cond, batch_size))
        tiles_compared += len(tiles)
    if n_random_tiles:
        random_tiles = rng.normal(size=(n_random_tiles, len(m.input_channels), *m.patch_size)).astype(
            np.float32
        )
        cond = Conditions(
            rng.normal(size=(2, m.text_embedding_dim)).astype(np.float32) / np.sqrt(m.text_embedding_dim),
            rng.random((2, m.query_feature_dim)).astype(np.float32),
        )
        worst = max(worst, tile_parity(torch_backend, ort_backend, random_tiles, cond, batch_size))
        tiles_compared += n_random_tiles
    max_diff, max_fraction = PARITY_TOLERANCE.get(variant, PARITY_TOLERANCE["fp16"])
    passed = worst <= max_diff and mismatched <= max_fraction * max(union, 1)
    return Parity(
        max_abs_logit_diff=worst, tiles_compared=tiles_compared, scans_compared=len(scans),
        findings_compared=findings, mismatched_mask_voxels=mismatched, masks_identical=mismatched == 0,
        passed=passed,
    )  # fmt: skip


# ---- the package --------------------------------------------------------------------------------------


def _copy_text_encoder(src: Path, dst: Path) -> TextEncoderFiles:
    """Copy a sentence encoder folder (``export/text_encoder.py``'s output) into the package, checked."""
    from rexground.text.encoder import SPEC_FILE, SentenceEncoder, load_spec

    try:
        SentenceEncoder(src, verify=True)  # refuses a damaged or incomplete folder, naming the file
        spec = load_spec(src)
    except RexgroundError as exc:
        raise ExportError(f"{src}: not a usable sentence encoder folder: {exc}") from exc
    dst.mkdir(parents=True)
    for name in sorted({SPEC_FILE, spec.onnx_file, spec.tokenizer_file, *spec.sha256}):
        shutil.copy2(src / name, dst / name)
    return TextEncoderFiles(
        directory=dst.name, onnx=spec.onnx_file, tokenizer=spec.tokenizer_file, config=SPEC_FILE,
        embedding_dim=spec.dim,
    )  # fmt: skip


def _default_text_encoder_dir() -> Path | None:
    try:
        from rexground.text import encoder as text_encoder
    except ImportError:
        return None
    for attr in ("default_model_dir", "DEFAULT_MODEL_DIR"):
        value = getattr(text_encoder, attr, None)
        if value is not None:
            path = Path(value() if callable(value) else value)
            return path if path.is_dir() else None
    return None


def export_network(
    net: nn.Module,
    config,
    out_dir: str | Path,
    *,
    text_encoder_dir: str | Path | None = None,
    allow_test_embedder: bool = False,
    fp16: bool = True,
    parity_scans: Sequence[ParityScan] | None = None,
    n_parity_scans: int = 1,
    parity_phantoms: str = "builtin",
    force: bool = False,
    source: dict[str, str] | None = None,
) -> Manifest:
    """Write a complete, parity-checked model package for ``net`` trained with ``config`` (a TrainConfig).

    The package is assembled in a temporary sibling folder and renamed into place at the end, so an
    interrupted export never leaves a half-written package at ``out_dir``.
    """
    from rexground.infer.conditions import TextConditioner
    from rexground.text.features import QUERY_FEATURE_DIM, QUERY_FEATURE_VERSION

    out_dir = Path(out_dir)
    if out_dir.exists() and any(p.name not in UNPACKAGED_FILES for p in out_dir.iterdir()) and not force:
        raise ExportError(f"{out_dir}: exists and is not empty (use --force to replace it)")
    if parity_phantoms not in ("synth", "builtin"):
        raise ExportError(f"parity_phantoms must be 'synth' or 'builtin', got {parity_phantoms!r}")
    spec = config.input
    if config.net.query_dim != QUERY_FEATURE_DIM:
        raise ExportError(
            f"the network takes {config.net.query_dim} query features but rexground.text.features has "
            f"{QUERY_FEATURE_DIM}: it was trained with another feature layout"
        )
    if spec.text_encoder == "hashing-test":
        if not allow_test_embedder:
            raise ExportError(
                "this run was trained with the test-only 'hashing-test' text embedder; its package would not "
                "understand real sentences (pass --allow-test-embedder for a smoke-test package)"
            )
        text_embedder, te_src = "hashing-test", None
    else:
        text_embedder = "sentence-encoder"
        te_src = Path(text_encoder_dir) if text_encoder_dir else _default_text_encoder_dir()
        if te_src is None:
            raise ExportError(
                "no sentence encoder folder: pass --text-encoder DIR (see export/text_encoder.py)"
            )

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.export-", dir=out_dir.parent))
    try:
        patch: Shape3 = tuple(int(p) for p in spec.patch_size_zyx)  # type: ignore[assignment]
        graphs = {
            "fp32": export_fp32(
                net, work, patch_size=patch, in_channels=config.net.in_channels,
                text_dim=config.net.text_dim, query_dim=config.net.query_dim,
            )
        }  # fmt: skip
        if fp16:
            graphs["fp16"] = fp16_pair(graphs["fp32"], work)
        te_files = None
        if te_src is not None:
            te_files = _copy_text_encoder(te_src, work / "text_encoder")
            if te_files.embedding_dim != config.net.text_dim:
                raise ExportError(
                    f"{te_src}: the sentence encoder gives {te_files.embedding_dim} values, "
                    f"the network takes {config.net.text_dim}"
                )
        manifest = Manifest(
            format_version=FORMAT_VERSION,
            created_utc=datetime.now(UTC).isoformat(timespec="seconds"),
            patch_size=patch,
            target_spacing=tuple(float(s) for s in spec.spacing_zyx),  # type: ignore[arg-type]
            normalisation=IntensityNormalisation.model_validate(spec.intensity.model_dump()),
            crop="body",
            input_channels=(CT_CHANNEL, *spec.anatomy_channels),
            threshold=config.threshold,
            step_fraction=round(1.0 - config.val_overlap, 6),
            text_embedding_dim=config.net.text_dim,
            text_embedder=text_embedder,
            text_encoder=te_files,
            query_feature_dim=config.net.query_dim,
            query_feature_version=QUERY_FEATURE_VERSION,
            graphs=graphs,
            files=hash_files(work),
            source=dict(source or {}),
        )
        write_manifest(work, manifest)
        package = load_package(work)
        if parity_scans is not None:
            scans = list(parity_scans)
        elif parity_phantoms == "synth" or spec.anatomy_channels:
            # anatomy priors need a chest the anatomy module can read: rexground.synth phantoms, not blobs
            scans = synth_scans(n_parity_scans)
        else:
            scans = phantom_scans(
                n_parity_scans, [p * s for p, s in zip(patch, spec.spacing_zyx, strict=True)]
            )
        if spec.anatomy_channels:
            scans = [s if s.anatomy is not None else with_anatomy(s, spec.anatomy_channels) for s in scans]
        conditioner = TextConditioner(package)
        parity = {v: check_parity(net, package, v, scans, conditioner) for v in graphs}
        if not parity["fp32"].passed:
            raise ExportError(f"fp32 graphs disagree with torch: {parity['fp32'].model_dump()}")
        manifest = manifest.model_copy(update={"parity": parity})
        write_manifest(work, manifest)
        load_package(work)  # re-validate what we are about to publish
        if out_dir.exists():
            for name in UNPACKAGED_FILES:  # model/README.md and model/.gitignore outlive re-exports
                if (out_dir / name).is_file():
                    shutil.copy2(out_dir / name, work / name)
            shutil.rmtree(out_dir)
        work.rename(out_dir)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return manifest


def export_run(run_dir: str | Path, out_dir: str | Path, *, which: str = "best", **kwargs) -> Manifest:
    """``rexground export``: load a training run's checkpoint and export it (see ``export_network``)."""
    from rexground.train.checkpoint import load_network, resolve_checkpoint

    checkpoint = resolve_checkpoint(run_dir, which)
    net, config = load_network(checkpoint)
    source = {
        "run_dir": str(Path(run_dir).resolve()),
        "checkpoint": str(checkpoint.resolve()),
        "config": json.dumps(config.model_dump(mode="json"), sort_keys=True),
    }
    return export_network(net, config, out_dir, source=source, **kwargs)
