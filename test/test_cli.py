"""The `rexground` command: every registered subcommand exists and answers --help; errors are clean."""

import subprocess
import sys

import pytest

from rexground.cli import COMMANDS, main


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_registered_command_has_help(name, capsys):
    with pytest.raises(SystemExit) as exc:
        main([name, "--help"])
    assert exc.value.code == 0
    assert f"rexground {name}" in capsys.readouterr().out


def test_unknown_command_is_refused(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["no-such-command"])
    assert exc.value.code == 2


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "predict-case" in capsys.readouterr().out


def test_inference_commands_do_not_import_torch():
    code = (
        "import sys; from rexground.cli import main, COMMANDS; import importlib;"
        "[importlib.import_module(COMMANDS[c][0]) for c in ('predict-case','predict','evaluate','parse','show',"
        "'validate-submission','synth','bench')];"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_bench_runs_the_named_script():
    out = subprocess.run(
        [sys.executable, "-m", "rexground.cli", "bench", "text", "--help"], capture_output=True, text=True
    )
    assert out.returncode == 0 and "bench_text.py" in out.stdout
