"""Pick the grounding engine for a run and say why: the learned network when a valid model package is given
(or mounted at ``/opt/ml/model``, as in the Grand Challenge container), else the zero-shot engine.

A package that is present but broken (bad hash, wrong version) is an error, never a silent fall-back to
zero-shot: a container that quietly ignored its uploaded weights would score far below what was meant.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from rexground.engines.base import Engine
from rexground.errors import ModelPackageError
from rexground.infer.package import MANIFEST_NAME, is_model_package

EngineKind = Literal["auto", "rules", "network"]
Device = Literal["auto", "cpu", "cuda"]
ENGINE_KINDS: tuple[str, ...] = ("auto", "rules", "network")
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")
TILE_STEP_HELP = (
    "network engine: sliding-window step as a fraction of the patch, in (0, 1] (default: the model "
    "package's, 0.5 for packages of rexground train; smaller is slower and smoother)"
)
# Where Grand Challenge extracts the uploaded model.tar.gz; overridable for tests and other hosts.
DEFAULT_MODEL_DIR = Path(os.environ.get("REXGROUND_MODEL_DIR", "/opt/ml/model"))

log = logging.getLogger("rexground.engines")


@dataclass(frozen=True)
class EngineChoice:
    """The engine a run uses, which kind it is, and the reason it was chosen (logged and put in results)."""

    engine: Engine
    kind: Literal["rules", "network"]
    reason: str
    model_dir: Path | None = None


def parse_tile_step(text: str) -> float:
    """``--tile-step``'s argparse type: a fraction of the patch in (0, 1]."""
    import argparse

    from rexground.infer.sliding_window import check_tile_step

    try:
        return check_tile_step(float(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _refuse_mispacked(mounted: Path) -> None:
    """Files at the mount point but no manifest: an upload packed wrongly (typically model.tar.gz holding the
    package folder instead of its contents). Running zero-shot then would hide it, so it is an error."""
    if not mounted.is_dir():
        return
    # The repository's model/ folder carries a README.md and a .gitignore before any export: not an upload.
    present = sorted(
        p.name for p in mounted.iterdir() if not p.name.startswith(".") and p.name != "README.md"
    )
    if not present:
        return
    nested = sorted(mounted.glob(f"*/{MANIFEST_NAME}"))
    hint = (
        f"; the manifest is at {nested[0]}: pack the package folder's contents at the root of model.tar.gz"
        if nested
        else ""
    )
    raise ModelPackageError(
        f"{mounted}: holds {', '.join(present[:5])}{' ...' if len(present) > 5 else ''} but no {MANIFEST_NAME}; "
        f"not a model package{hint}"
    )


def _network(model_dir: Path, device: str, tile_step: float | None) -> Engine:
    # Imported here: the zero-shot path must not pay for (or depend on) the network engine's imports.
    from rexground.engines.network import NetworkEngine

    # NetworkEngine loads the package with rexground.infer.package.load_package, which refuses a package whose
    # manifest, version or file hashes do not match (ModelPackageError naming the file); it computes the
    # anatomy prior channels a package asks for, and preloads the CUDA wheels' libraries before using CUDA.
    return NetworkEngine(model_dir, device, tile_step=tile_step)


def _rules() -> Engine:
    from rexground.engines.zero_shot import ZeroShotEngine

    return ZeroShotEngine()


def choose_engine(
    kind: str = "auto",
    model_dir: str | Path | None = None,
    device: str = "auto",
    default_model_dir: str | Path | None = None,
    bundled_model_dir: str | Path | None = None,
    tile_step: float | None = None,
) -> EngineChoice:
    """Build the engine for ``kind`` and explain the choice. Packages are looked for in this order: the
    one given (``model_dir``), the mounted one (``default_model_dir``, default ``/opt/ml/model``), one baked
    into the image (``bundled_model_dir``); with none, "auto" runs the zero-shot engine. ``tile_step``
    overrides a package's sliding-window step (the zero-shot engine has none)."""
    if kind not in ENGINE_KINDS:
        raise ValueError(f"engine kind must be one of {ENGINE_KINDS}, got {kind!r}")
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    mounted = Path(default_model_dir) if default_model_dir is not None else DEFAULT_MODEL_DIR
    given = Path(model_dir) if model_dir is not None else None

    if kind == "rules":
        choice = EngineChoice(_rules(), "rules", "zero-shot engine requested (--engine rules)")
    elif given is not None:
        if not given.is_dir():
            raise ModelPackageError(f"{given}: model package folder does not exist")
        choice = EngineChoice(
            _network(given, device, tile_step), "network", f"model package given: {given}", given
        )
    elif is_model_package(mounted):
        choice = EngineChoice(
            _network(mounted, device, tile_step), "network", f"model package found at {mounted}", mounted
        )
    elif bundled_model_dir is not None and is_model_package(Path(bundled_model_dir)):
        bundled = Path(bundled_model_dir)
        choice = EngineChoice(
            _network(bundled, device, tile_step), "network", f"bundled model package {bundled}", bundled
        )
    elif kind == "network":
        raise ModelPackageError(
            f"the network engine needs a model package: pass --model DIR, or mount one at {mounted} "
            f"(no {MANIFEST_NAME} there)"
        )
    else:
        _refuse_mispacked(mounted)
        where = f"{mounted} is empty" if mounted.is_dir() else f"nothing at {mounted}"
        choice = EngineChoice(_rules(), "rules", f"zero-shot engine: no model package given and {where}")
    log.info("engine: %s (%s)", choice.kind, choice.reason)
    return choice
