"""rexground: ground free-text chest-CT findings as 3D masks (ReXGrounding, MICCAI 2026)."""

__version__ = "0.1.0"
