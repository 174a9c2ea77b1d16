"""``rexground evaluate --html``: one self-contained page with the summary, the per-category table, the
Dice plots and overlays of the worst findings; a slow test renders it in a real headless browser."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile

import numpy as np
import pytest
from PIL import Image

from rexground.cli import main
from rexground.metrics.aggregate import aggregate
from rexground.metrics.html_report import (
    DIFFUSE_COLOUR,
    FOCAL_COLOUR,
    dice_histogram_svg,
    dice_per_category_svg,
    render_html_report,
)
from rexground.metrics.results import CaseResult, FindingResult


def _finding(index: int, category: str, dice: float) -> FindingResult:
    return FindingResult(index=index, key=str(index), category=category, dice=dice, hit=dice >= 0.1,
                         gt_voxels=100, pred_voxels=80, n_pred_instances=1, n_gt_instances=1,
                         tp=int(dice >= 0.2), fp=0, fn=int(dice < 0.2))  # fmt: skip


def _results() -> list[CaseResult]:
    return [
        CaseResult(name="a.nii.gz", findings=(_finding(0, "2d", 0.8), _finding(1, "1a", 0.05))),
        CaseResult(name="b.nii.gz", findings=(_finding(0, "2d", 0.4), _finding(1, "1e", 0.62))),
        CaseResult(name="c.nii.gz", status="error", error="c.nii.gz: not a mask"),
    ]


def _external_references(page: str) -> list[str]:
    """Every src/href that would make the browser fetch something."""
    refs = re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)["']""", page)
    return [r for r in refs if not r.startswith(("data:", "#"))] + re.findall(r"url\((?!data:)[^)]*\)", page)


def test_the_page_holds_the_tables_and_both_figures_and_nothing_external():
    results = _results()
    page = render_html_report(aggregate(results), results, settings={"split": "val"},
                              sentences={("a.nii.gz", "1"): "Emphysema & <bullae>"})  # fmt: skip
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert _external_references(page) == []
    assert "<script" not in page
    assert "2 case(s) and 4 finding(s) scored" in page and "1 case(s) with errors" in page
    assert "c.nii.gz: not a mask" in page  # errors are listed, first
    assert page.index("Errors") < page.index("Summary")
    assert "Emphysema &amp; &lt;bullae&gt;" in page  # sentences are escaped
    assert page.count("<svg") == 2 and "--ct-dir" in page  # no CTs given: the overlays say how to get them


def test_the_category_plot_has_one_bar_per_category_in_its_kind_colour():
    results = _results()
    svg = dice_per_category_svg(aggregate(results).per_category)
    bars = re.findall(r'<rect [^>]*width="([\d.]+)"[^>]*fill="(#\w+)"', svg)
    assert [colour for _, colour in bars] == [DIFFUSE_COLOUR, DIFFUSE_COLOUR, FOCAL_COLOUR]  # 1a, 1e, 2d
    widths = [float(w) for w, _ in bars]
    assert widths[2] == pytest.approx(0.6 * 520, abs=0.1)  # 2d: mean of 0.8 and 0.4


def test_the_histogram_counts_every_finding_once():
    findings = [f for c in _results() for f in c.findings]
    svg = dice_histogram_svg(findings, bins=10)
    counts = [int(n) for n in re.findall(r"<title>\w+: (\d+) finding", svg)]
    assert sum(counts) == len(findings) == 4


def test_nothing_scored_gives_no_metrics():
    results = [CaseResult(name="x.nii.gz", status="error", error="x.nii.gz: unreadable")]
    page = render_html_report(aggregate(results), results)
    assert "No finding was scored" in page and "<svg" not in page and "leaderboard" not in page


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    """Four phantoms, the zero-shot engine's predictions, and `rexground evaluate --html` with the CTs."""
    from rexground.synth import write_dataset

    root = tmp_path_factory.mktemp("report")
    dataset = write_dataset(root, 4, seed=2)
    assert main(["predict", "--dataset", str(dataset), "--split", "val", "--ct-root", str(root / "ct_rate"),
                 "--out", str(root / "sub"), "--engine", "rules", "--no-progress"]) == 0  # fmt: skip
    report = root / "report.html"
    rc = main(["evaluate", "--gt-dir", str(root / "segmentations"), "--pred-dir", str(root / "sub"),
               "--dataset", str(dataset), "--split", "val", "--ct-dir", str(root / "ct_rate"),
               "--out", str(root / "metrics.json"), "--html", str(report), "--quiet"])  # fmt: skip
    assert rc == 0
    return report


def test_evaluate_html_shows_the_worst_findings_with_their_sentences(evaluated):
    page = evaluated.read_text()
    assert _external_references(page) == []
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert images, "no overlay of the worst findings"
    import base64
    import io

    overlay = Image.open(io.BytesIO(base64.b64decode(images[0])))
    assert overlay.format == "PNG" and overlay.width > 300
    assert re.search(r"&ldquo;[^&]+&rdquo;", page)  # the finding's sentence, quoted


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.slow
def test_the_report_renders_in_a_headless_browser(evaluated, tmp_path):
    """Debian's chromium opens the page: no console message, and the screenshot shows the plots (their bar
    colours) and an overlay (the prediction's red and the ground truth's blue)."""
    browser = _chromium()
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing in CI (.ci/run installs it)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    shot = tmp_path / "shot.png"
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", "--hide-scrollbars",
             "--window-size=1280,3200", f"--screenshot={shot}", evaluated.as_uri()],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert console == []
    pixels = np.asarray(Image.open(shot).convert("RGB")).reshape(-1, 3)
    assert len(np.unique(pixels, axis=0)) > 200  # not blank

    def present(colour: str | tuple[int, int, int]) -> bool:
        rgb = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)] if isinstance(colour, str) else colour)
        return bool((np.abs(pixels.astype(int) - rgb).max(axis=1) <= 3).sum() > 50)

    from rexground.overlay import COLOURS

    assert present(DIFFUSE_COLOUR) or present(FOCAL_COLOUR)  # the SVG bars were drawn
    assert present(COLOURS[0]) and present(COLOURS[1])  # the embedded overlay was decoded and shown
