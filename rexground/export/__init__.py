"""The export step (torch, export time only): a trained checkpoint -> an ONNX model package.

``package`` assembles and publishes the package (``rexground export``, CLI in ``cli``), ``graphs`` turns the
network into its two ONNX graphs and their fp16 variant, ``parity`` proves they compute what torch
computes, ``text_encoder`` exports a Hugging Face sentence encoder to the ONNX folder a package ships.
Importing this package itself needs no torch (so the CLI layer can name ``ExportError``); its modules do.
The inference path never imports it.
"""

from __future__ import annotations

from rexground.errors import RexgroundError


class ExportError(RexgroundError):
    """The run cannot be exported, or the exported graphs disagree with torch beyond tolerance."""
