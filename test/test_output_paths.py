"""Every output path is checked before any work: a folder where a file is wanted, an extension no writer
takes, a place nothing can be written give one line naming the path and what to do, from every command,
before it reads an input (the inputs below do not even exist) or loads a model."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

import pytest

from rexground.cli import main
from rexground.output_paths import MASK_SUFFIXES, OutputPathError, output_file, output_folder

# /sys refuses new files even to root (CI runs as root, so permission bits cannot make a folder unwritable)
UNWRITABLE = Path("/sys/rexground-no-such-folder")
HAS_TORCH = importlib.util.find_spec("torch") is not None


def _file_commands(tmp: Path) -> dict[str, tuple[Callable[[str], list[str]], str]]:
    """command -> (argv for an output path, a good file name for that output)."""
    ct, absent = str(tmp / "absent-ct.nii.gz"), str(tmp / "absent")
    return {
        "predict-case --out": (lambda p: ["predict-case", "--ct", ct, "--finding", "Nodule", "--out", p], "m.nii.gz"),
        "predict-case --png": (
            lambda p: ["predict-case", "--ct", ct, "--finding", "Nodule", "--out", str(tmp / "m.nii.gz"), "--png", p],
            "o.png",
        ),
        "predict-case --json": (
            lambda p: ["predict-case", "--ct", ct, "--finding", "Nodule", "--out", str(tmp / "m.nii.gz"), "--json", p],
            "r.json",
        ),
        "predict --zip": (
            lambda p: ["predict", "--dataset", absent, "--ct-root", absent, "--out", str(tmp / "sub"), "--zip", p],
            "s.zip",
        ),
        "show --out": (lambda p: ["show", "--ct", ct, "--mask", ct, "--out", p], "o.png"),
        "evaluate --out": (
            lambda p: ["evaluate", "--gt-dir", absent, "--pred-dir", absent, "--dataset", absent, "--out", p],
            "metrics.json",
        ),
    }  # fmt: skip


def _folder_commands(tmp: Path) -> dict[str, Callable[[str], list[str]]]:
    absent = str(tmp / "absent")
    commands = {
        "predict --out": lambda p: ["predict", "--dataset", absent, "--ct-root", absent, "--out", p],
        "synth --out": lambda p: ["synth", "--out", p, "--cases", "1"],
    }
    if HAS_TORCH:  # export and train need torch before anything else (their first check)
        commands["export --out"] = lambda p: ["export", "--run", absent, "--out", p]
        commands["train --out"] = lambda p: ["train", "--config", absent, "--data", absent, "--out", p]
    return commands


FILE_COMMANDS = sorted(_file_commands(Path("/x")))
FOLDER_COMMANDS = sorted(_folder_commands(Path("/x")))


def _refused(argv: list[str], capsys, path: str, hint: str) -> None:
    assert main(argv) == 1
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert path in lines[0] and hint in lines[0], lines[0]
    assert "engine" not in captured.out + captured.err  # nothing ran


@pytest.mark.parametrize("command", FILE_COMMANDS)
def test_a_folder_where_a_file_is_wanted_is_refused_first(command, tmp_path, capsys):
    argv, _ = _file_commands(tmp_path)[command]
    folder = tmp_path / "a-folder"
    folder.mkdir()
    _refused(argv(str(folder)), capsys, str(folder), f"is a folder; give a file name, e.g. {folder}/")


@pytest.mark.parametrize("command", FILE_COMMANDS)
def test_an_unknown_extension_is_refused_first(command, tmp_path, capsys):
    argv, _ = _file_commands(tmp_path)[command]
    wrong = tmp_path / "out.txt"
    _refused(argv(str(wrong)), capsys, str(wrong), ".txt is not a format it writes; use ")
    assert not wrong.exists()


@pytest.mark.parametrize("command", FILE_COMMANDS)
def test_an_unwritable_place_for_a_file_is_refused_first(command, tmp_path, capsys):
    argv, good = _file_commands(tmp_path)[command]
    target = UNWRITABLE / good
    _refused(argv(str(target)), capsys, str(target), "cannot write in /sys")


@pytest.mark.parametrize("command", FOLDER_COMMANDS)
def test_a_file_where_a_folder_is_wanted_is_refused_first(command, tmp_path, capsys):
    argv = _folder_commands(tmp_path)[command]
    file = tmp_path / "a-file"
    file.write_text("x")
    _refused(argv(str(file)), capsys, str(file), "is a file; give a folder")


@pytest.mark.parametrize("command", FOLDER_COMMANDS)
def test_an_unwritable_folder_is_refused_first(command, tmp_path, capsys):
    argv = _folder_commands(tmp_path)[command]
    _refused(argv(str(UNWRITABLE)), capsys, str(UNWRITABLE), "cannot write in /sys")


def test_the_helper_accepts_good_paths_without_creating_anything(tmp_path):
    deep = tmp_path / "a" / "b" / "mask.NII.GZ"
    assert output_file(deep, MASK_SUFFIXES) == deep
    assert output_folder(tmp_path / "new" / "run") == tmp_path / "new" / "run"
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no folder made, no probe file left behind
    with pytest.raises(OutputPathError, match=r"has no extension; use \.nii\.gz, \.nii, \.mha or \.nrrd"):
        output_file(tmp_path / "mask", MASK_SUFFIXES)
    with pytest.raises(OutputPathError, match="is a file, so no folder can be made there"):
        (tmp_path / "f").write_text("x")
        output_file(tmp_path / "f" / "mask.nii.gz", MASK_SUFFIXES)
