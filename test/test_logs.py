"""Log lines cooperate with progress bars: ``predict``'s "engine: ..." line is written above its bar (the
bar cleared first, then redrawn), not into the middle of the bar's line."""

from __future__ import annotations

import logging
import re
import sys

from test_predict_case import BrightEngine

from rexground.cli import main
from rexground.engines import select
from rexground.logs import TqdmLoggingHandler


def test_a_log_line_during_a_bar_starts_on_a_cleared_line(capsys):
    from tqdm import tqdm

    log = logging.getLogger("rexground.test-logs")
    log.propagate = False
    log.setLevel(logging.INFO)
    handler = TqdmLoggingHandler()
    log.addHandler(handler)
    try:
        bar = tqdm(total=3, file=sys.stderr, mininterval=0)
        bar.update(1)
        log.info("engine: rules")
        bar.update(2)
        bar.close()
    finally:
        log.removeHandler(handler)
    err = capsys.readouterr().err
    assert re.search(r"\r +\rengine: rules\n", err), repr(err)  # the bar's line cleared, the message, newline
    assert not re.search(r"\]engine", err)


def test_predict_logs_the_engine_above_its_progress_bar(tmp_path, monkeypatch, capsys):
    from rexground.synth import write_dataset

    monkeypatch.setattr(select, "_rules", BrightEngine)
    dataset = write_dataset(tmp_path / "ph", 4, seed=7)
    argv = ["predict", "--dataset", str(dataset), "--split", "val", "--ct-root", str(tmp_path / "ph" / "ct_rate"),
            "--out", str(tmp_path / "sub"), "--engine", "rules"]  # fmt: skip
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "predict:" in err and "engine: rules" in err  # the bar and the line, both on stderr
    assert re.search(r"scan/s\]\r +\rengine: rules", err), repr(err[-600:])  # the bar cleared first
    assert not re.search(r"\]engine", err)
