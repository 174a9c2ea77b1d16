"""The README's facts a newcomer relies on are true: where phantom CTs and test masks go, the finding
length limit, the complete ``--help``, and that following the README leaves no untracked output behind."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from rexground.cli import main
from rexground.predictor import MAX_FINDING_CHARS

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def test_the_phantom_layout_is_as_the_readme_says(tmp_path):
    from rexground.synth import write_dataset

    assert "data/phantoms/ct_rate" in README and "test_ground_truth/" in README
    write_dataset(tmp_path / "phantoms", 3, seed=4)  # one train, one val, one test scan
    assert list((tmp_path / "phantoms" / "ct_rate").rglob("*.nii.gz"))
    assert len(list((tmp_path / "phantoms" / "test_ground_truth").iterdir())) == 1
    assert len(list((tmp_path / "phantoms" / "segmentations").iterdir())) == 2


def test_the_finding_limit_is_the_readmes():
    assert MAX_FINDING_CHARS == 2000 and "at most 2,000" in README


def test_the_top_level_help_is_complete(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    description = out.split("\n\n")[1].strip()
    assert description.endswith(".") and "\n" not in description
    assert "first steps:" in out and "rexground COMMAND --help" in out
    assert out.rstrip().endswith(".")


@pytest.mark.skipif(shutil.which("git") is None or not (REPO / ".git").exists(), reason="not a git checkout")
def test_the_readmes_output_folders_are_ignored_by_git():
    """Every --out / --zip / --png / --json / --html path of the README's commands."""
    outputs = set(re.findall(r"--(?:out|zip|png|json|html) ([\w./-]+)", README))
    outputs = {
        o for o in outputs if not o.isupper() and not o.startswith(("/", "$"))
    }  # placeholders, container
    assert {"data/phantoms", "runs/tiny", "submission/", "metrics.json", "report.html"} <= outputs
    # a path inside each: git decides "folder/" patterns by what is on disk, and a fresh clone has no out/ yet
    probes = {f"{o.rstrip('/')}/inside": o for o in outputs}
    done = subprocess.run(["git", "check-ignore", "--no-index", *sorted(probes)], cwd=REPO,
                          capture_output=True, text=True)  # fmt: skip
    ignored = {probes[p] for p in done.stdout.split()}
    assert outputs - ignored == set()
