"""Export a training run to the model package (the thin entry of the design card's ``export/`` step).

    python export/export_model.py --run runs/real --out model/ --text-encoder /tmp/text_encoder --force

The same as ``rexground export`` (``rexground.export.cli``); see ``export/README.md`` and
``rexground export --help``.
"""

from __future__ import annotations

import sys

from rexground.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["export", *sys.argv[1:]]))
