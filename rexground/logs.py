"""Log lines that do not break progress bars: the CLI's log records go through ``tqdm.write``, which clears
an active bar, prints the line above it and redraws the bar (a plain stderr handler would print into the
middle of the bar's line)."""

from __future__ import annotations

import logging
import sys

from tqdm import tqdm


class TqdmLoggingHandler(logging.Handler):
    """A logging handler that writes each record with ``tqdm.write`` to stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # logging must never raise into the caller
            self.handleError(record)


def setup_cli_logging(level: int = logging.INFO) -> None:
    """Route the root logger's records through :class:`TqdmLoggingHandler` (once; message text only)."""
    root = logging.getLogger()
    if not any(isinstance(h, TqdmLoggingHandler) for h in root.handlers):
        handler = TqdmLoggingHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        root.addHandler(handler)
    root.setLevel(level)
