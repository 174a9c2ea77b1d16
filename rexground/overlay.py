"""A picture a person can check a prediction with: axial, coronal and sagittal CT slices through the mask,
lung window, each finding outlined and tinted in its own colour, pixels at true physical aspect ratio.

Display follows the radiological convention: patient right on the image's left, anterior at the top of the
axial view, superior at the top of the coronal and sagittal views (canonical arrays run inferior->superior
along axis 0, so those two views are flipped vertically).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from rexground.io import atomic_path

# Lung window (level -600, width 1500): lesions, vessels and pleura all visible.
WINDOW = (-1350.0, 150.0)
COLOURS = ((255, 60, 60), (60, 200, 255), (255, 210, 0), (120, 255, 120), (255, 120, 255), (255, 150, 60))
PANEL_PX = 360  # panel height; widths follow the physical aspect ratio
HEADER_LINE_PX = 16


def _centre_voxel(masks: np.ndarray) -> tuple[int, int, int]:
    """A voxel of the first non-empty mask's largest part, near its centre of mass (the centroid of a curved
    part may lie outside it); the volume's centre when every mask is empty."""
    for mask in masks:
        if mask.any():
            labels, _ = ndimage.label(mask > 0)
            sizes = np.bincount(labels.ravel())[1:]
            part = labels == (int(np.argmax(sizes)) + 1)
            com = np.asarray(ndimage.center_of_mass(part))
            idx = np.argwhere(part)
            return tuple(int(v) for v in idx[np.argmin(((idx - com) ** 2).sum(axis=1))])  # type: ignore[return-value]
    return tuple(s // 2 for s in masks.shape[1:])  # type: ignore[return-value]


def _grey(hu: np.ndarray) -> np.ndarray:
    lo, hi = WINDOW
    return (np.clip((hu.astype(np.float32) - lo) / (hi - lo), 0.0, 1.0) * 255).astype(np.uint8)


def _panel(
    hu2d: np.ndarray, masks2d: np.ndarray, row_mm: float, col_mm: float, label: str, font
) -> Image.Image:
    """One view: grey CT, each mask tinted and outlined, resized to physical aspect at PANEL_PX height."""
    rgb = np.repeat(_grey(hu2d)[..., None], 3, axis=2).astype(np.float32)
    for f, mask in enumerate(masks2d):
        m = mask > 0
        if not m.any():
            continue
        colour = np.asarray(COLOURS[f % len(COLOURS)], dtype=np.float32)
        rgb[m] = 0.6 * rgb[m] + 0.4 * colour
        edge = m & ~ndimage.binary_erosion(m)
        rgb[edge] = colour
    image = Image.fromarray(rgb.clip(0, 255).astype(np.uint8), "RGB")
    height_mm = hu2d.shape[0] * row_mm
    width_mm = hu2d.shape[1] * col_mm
    width_px = max(1, round(PANEL_PX * width_mm / height_mm))
    image = image.resize((width_px, PANEL_PX), Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(image)
    draw.rectangle(draw.textbbox((4, 4), label, font=font), fill=(0, 0, 0))  # readable on bone and air alike
    draw.text((4, 4), label, fill=(255, 255, 255), font=font)
    return image


def _font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:  # pillow's bundled scalable font (needs FreeType, which pillow's wheels carry)
        return ImageFont.load_default(size=13)
    except (TypeError, OSError, ImportError):
        return ImageFont.load_default()


def render_overlay(
    hu_zyx: np.ndarray,
    masks_fzyx: np.ndarray,
    spacing_zyx: Sequence[float],
    findings: Sequence[str] = (),
    centre_zyx: tuple[int, int, int] | None = None,
) -> Image.Image:
    """The three views through ``centre_zyx`` (default: inside the first finding's largest part), with a
    header naming each finding in its colour."""
    masks = np.asarray(masks_fzyx)
    if masks.ndim == 3:
        masks = masks[None]
    if masks.shape[1:] != hu_zyx.shape:
        raise ValueError(f"mask shape {masks.shape[1:]} differs from CT shape {hu_zyx.shape}")
    z, y, x = centre_zyx if centre_zyx is not None else _centre_voxel(masks)
    sz, sy, sx = (float(s) for s in spacing_zyx)
    font = _font()
    panels = [
        _panel(hu_zyx[z], masks[:, z], sy, sx, f"axial z={z}", font),
        _panel(hu_zyx[::-1, y], masks[:, ::-1, y], sz, sx, f"coronal y={y}", font),
        _panel(hu_zyx[::-1, :, x], masks[:, ::-1, :, x], sz, sy, f"sagittal x={x}", font),
    ]
    labels = list(findings) or [f"mask {f}" for f in range(len(masks))]
    header = len(labels) * HEADER_LINE_PX + 6
    canvas = Image.new("RGB", (sum(p.width for p in panels) + 2 * (len(panels) - 1), PANEL_PX + header))
    draw = ImageDraw.Draw(canvas)
    for f, text in enumerate(labels):
        voxels = int(np.count_nonzero(masks[f])) if f < len(masks) else 0
        line = f"{f}: {text} ({voxels} voxels)"
        draw.text((4, 3 + f * HEADER_LINE_PX), line, fill=COLOURS[f % len(COLOURS)], font=font)
    left = 0
    for panel in panels:
        canvas.paste(panel, (left, header))
        left += panel.width + 2
    return canvas


def write_overlay(
    path: str | Path,
    hu_zyx: np.ndarray,
    masks_fzyx: np.ndarray,
    spacing_zyx: Sequence[float],
    findings: Sequence[str] = (),
) -> Path:
    """Render and write the overlay PNG atomically."""
    image = render_overlay(hu_zyx, masks_fzyx, spacing_zyx, findings)
    path = Path(path)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG", optimize=True)
    return path
