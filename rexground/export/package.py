"""``rexground export``: a training run -> a complete, parity-checked model package (torch, export time only).

Writes the ONNX graphs (``rexground.export.graphs``), copies the sentence encoder folder
(``rexground.export.text_encoder`` writes one), fills the manifest (``rexground.infer.package``: the network
contract the engine reads), checks parity (``rexground.export.parity``) and publishes the folder atomically.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from torch import nn

from rexground.errors import RexgroundError
from rexground.export import ExportError
from rexground.export.graphs import export_fp32, fp16_pair
from rexground.export.parity import ParityScan, check_parity, phantom_scans, synth_scans, with_anatomy
from rexground.infer.conditions import TextConditioner
from rexground.infer.package import (
    CT_CHANNEL,
    FORMAT_VERSION,
    UNPACKAGED_FILES,
    IntensityNormalisation,
    Manifest,
    TextEncoderFiles,
    hash_files,
    load_package,
    write_manifest,
)
from rexground.infer.sliding_window import Shape3


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
    """The user's default sentence encoder folder (``rexground.text.encoder.default_encoder_dir()``), when it
    holds an exported encoder."""
    from rexground.text.encoder import default_encoder_dir

    folder = default_encoder_dir()
    return folder if folder.is_dir() else None


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
            tile_step=config.tile_step,
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
