"""A picture a person can check a prediction with: axial, coronal and sagittal CT slices through the mask,
lung window, each finding outlined and tinted in its own colour, pixels at true physical aspect ratio.

Display follows the radiological convention: patient right on the image's left, anterior at the top of the
axial view, superior at the top of the coronal and sagittal views (canonical arrays run inferior->superior
along axis 0, so those two views are flipped vertically). So that nobody has to know that convention, every
view carries its orientation letters at its four edges, derived from the CT's direction matrix (an oblique
scan gets two letters, e.g. "LA"), a scale bar in mm, and the header names the window, and each channel
shown with its finding text, voxel count and volume.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from rexground.geometry import Geometry
from rexground.io import atomic_path

# Lung window (level -600, width 1500): lesions, vessels and pleura all visible.
WINDOW = (-1350.0, 150.0)
WINDOW_NOTE = "lung window: level -600 HU, width 1500 HU"
COLOURS = ((255, 60, 60), (60, 200, 255), (255, 210, 0), (120, 255, 120), (255, 120, 255), (255, 150, 60))
PANEL_PX = 360  # panel height; widths follow the physical aspect ratio
HEADER_LINE_PX = 16
HEADER_NOTES = 1  # lines above the findings: window and convention
SCALE_BAR_MM = (10, 20, 50, 100, 200)
# LPS world axes: +x towards the patient's Left, +y Posterior, +z Superior; the letter of each end.
_POSITIVE_LETTERS = ("L", "P", "S")
_NEGATIVE_LETTERS = ("R", "A", "I")
_SECOND_LETTER_COSINE = 0.25  # an axis tilted by more than ~15 degrees towards another gets its letter too


@dataclass(frozen=True)
class ViewLetters:
    """Orientation letters at a view's left, right, top and bottom edges."""

    left: str
    right: str
    top: str
    bottom: str


def letters_for(direction_lps: Sequence[float]) -> str:
    """The orientation letters of a world direction (LPS), strongest component first: (1, 0, 0) -> "L",
    (0, -1, 0) -> "A", a 30-degree tilt of x towards posterior -> "LP"."""
    v = np.asarray(direction_lps, dtype=float)
    v = v / max(np.linalg.norm(v), 1e-12)
    order = np.argsort(-np.abs(v))
    letters = []
    for rank, axis in enumerate(order):
        if rank > 0 and abs(v[axis]) < _SECOND_LETTER_COSINE:
            break
        letters.append(_POSITIVE_LETTERS[axis] if v[axis] > 0 else _NEGATIVE_LETTERS[axis])
    return "".join(letters[:2])


def canonical_axis_directions(geometry: Geometry | None) -> np.ndarray:
    """(3, 3): row c is the LPS world direction in which canonical index c increases for this CT (from its
    direction matrix and the raw -> canonical permutation and flips); without a geometry, the canonical
    convention itself (z superior, y posterior, x left)."""
    if geometry is None:
        return np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    d = geometry.direction_matrix
    o = geometry.orientation
    return np.stack([(-1.0 if o.flip[c] else 1.0) * d[:, o.raw_axis_for_canonical[c]] for c in range(3)])


def view_letters(geometry: Geometry | None = None) -> dict[str, ViewLetters]:
    """The letters at the edges of the three views as :func:`render_overlay` draws them: axial shows
    (row = y, column = x), coronal (row = -z, column = x), sagittal (row = -z, column = y)."""
    z, y, x = canonical_axis_directions(geometry)

    def view(col: np.ndarray, row: np.ndarray) -> ViewLetters:
        return ViewLetters(letters_for(-col), letters_for(col), letters_for(-row), letters_for(row))

    return {"axial": view(x, y), "coronal": view(x, -z), "sagittal": view(y, -z)}


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


def _boxed_text(
    draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, font, anchor: str = "la"
) -> None:
    """White text on a black box: readable on bone and air alike."""
    box = draw.textbbox(xy, text, font=font, anchor=anchor)
    draw.rectangle((box[0] - 2, box[1] - 1, box[2] + 2, box[3] + 1), fill=(0, 0, 0))
    draw.text(xy, text, fill=(255, 255, 255), font=font, anchor=anchor)


def _scale_bar_mm(width_mm: float) -> int:
    """The longest round length that fits in a quarter of the view (10 mm at least)."""
    fitting = [mm for mm in SCALE_BAR_MM if mm <= width_mm / 4]
    return fitting[-1] if fitting else SCALE_BAR_MM[0]


def _panel(
    hu2d: np.ndarray,
    masks2d: np.ndarray,
    row_mm: float,
    col_mm: float,
    label: str,
    letters: ViewLetters,
    font,
) -> Image.Image:
    """One view: grey CT, each mask tinted and outlined, resized to physical aspect at PANEL_PX height, with
    its name, orientation letters at the four edges and a scale bar."""
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
    _boxed_text(draw, (4, 4), label, font)
    w, h = image.width, image.height
    _boxed_text(draw, (w / 2, 4), letters.top, font, anchor="ma")
    _boxed_text(draw, (w / 2, h - 4), letters.bottom, font, anchor="md")
    _boxed_text(draw, (4, h / 2), letters.left, font, anchor="lm")
    _boxed_text(draw, (w - 4, h / 2), letters.right, font, anchor="rm")
    bar_mm = _scale_bar_mm(width_mm)
    bar_px = round(
        bar_mm * PANEL_PX / height_mm
    )  # the panel's pixels are square: PANEL_PX / height_mm per mm
    x0, y0 = 6, h - 10
    draw.rectangle((x0 - 2, y0 - 16, x0 + bar_px + 2, y0 + 4), fill=(0, 0, 0))
    draw.rectangle((x0, y0, x0 + bar_px, y0 + 2), fill=(255, 255, 255))
    draw.text((x0, y0 - 2), f"{bar_mm} mm", fill=(255, 255, 255), font=font, anchor="ld")
    return image


def _font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:  # pillow's bundled scalable font (needs FreeType, which pillow's wheels carry)
        return ImageFont.load_default(size=13)
    except (TypeError, OSError, ImportError):
        return ImageFont.load_default()


def legend_lines(
    masks_fzyx: np.ndarray,
    spacing_zyx: Sequence[float],
    findings: Sequence[str] = (),
    channels: Sequence[int | str] | None = None,
) -> list[str]:
    """The header's lines: the window and display convention, then per mask its channel number in the file
    (or a name given instead of the number), finding text, voxel count and volume (in the mask's colour)."""
    masks = np.asarray(masks_fzyx)
    masks = masks[None] if masks.ndim == 3 else masks
    channels = list(channels) if channels is not None else list(range(len(masks)))
    if len(channels) != len(masks):
        raise ValueError(f"{len(channels)} channel numbers for {len(masks)} masks")
    texts = (list(findings) + [""] * len(masks))[: len(masks)]
    voxel_ml = float(np.prod([float(s) for s in spacing_zyx])) / 1000.0
    lines = [f"{WINDOW_NOTE}; radiological view (patient right on the image's left); letters: R/L, A/P, S/I"]
    for mask, channel, text in zip(masks, channels, texts, strict=True):
        voxels = int(np.count_nonzero(mask))
        name = channel if isinstance(channel, str) else f"channel {channel}"
        lines.append(f"{name}: {text or '(no finding text)'} ({voxels} voxels, {voxels * voxel_ml:.2f} mL)")
    return lines


def render_overlay(
    hu_zyx: np.ndarray,
    masks_fzyx: np.ndarray,
    spacing_zyx: Sequence[float],
    findings: Sequence[str] = (),
    centre_zyx: tuple[int, int, int] | None = None,
    *,
    geometry: Geometry | None = None,
    channels: Sequence[int | str] | None = None,
) -> Image.Image:
    """The three views through ``centre_zyx`` (default: inside the first finding's largest part), with a
    header naming the window and each mask in its colour: its channel number in the file (``channels``,
    default 0, 1, ...), its finding text, voxels and volume. ``geometry`` (the CT's) gives the orientation
    letters; without it the canonical convention is assumed."""
    masks = np.asarray(masks_fzyx)
    if masks.ndim == 3:
        masks = masks[None]
    if masks.shape[1:] != hu_zyx.shape:
        raise ValueError(f"mask shape {masks.shape[1:]} differs from CT shape {hu_zyx.shape}")
    z, y, x = centre_zyx if centre_zyx is not None else _centre_voxel(masks)
    sz, sy, sx = (float(s) for s in spacing_zyx)
    font = _font()
    letters = view_letters(geometry)
    panels = [
        _panel(hu_zyx[z], masks[:, z], sy, sx, f"axial z={z}", letters["axial"], font),
        _panel(hu_zyx[::-1, y], masks[:, ::-1, y], sz, sx, f"coronal y={y}", letters["coronal"], font),
        _panel(
            hu_zyx[::-1, :, x], masks[:, ::-1, :, x], sz, sy, f"sagittal x={x}", letters["sagittal"], font
        ),
    ]
    lines = legend_lines(masks, spacing_zyx, findings, channels)
    header = len(lines) * HEADER_LINE_PX + 6
    canvas = Image.new("RGB", (sum(p.width for p in panels) + 2 * (len(panels) - 1), PANEL_PX + header))
    draw = ImageDraw.Draw(canvas)
    for i, line in enumerate(lines):
        f = i - HEADER_NOTES
        colour = (200, 200, 200) if f < 0 else COLOURS[f % len(COLOURS)]
        draw.text((4, 3 + i * HEADER_LINE_PX), line, fill=colour, font=font)
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
    *,
    geometry: Geometry | None = None,
    channels: Sequence[int] | None = None,
) -> Path:
    """Render and write the overlay PNG atomically (see :func:`render_overlay`)."""
    image = render_overlay(hu_zyx, masks_fzyx, spacing_zyx, findings, geometry=geometry, channels=channels)
    path = Path(path)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG", optimize=True)
    return path
