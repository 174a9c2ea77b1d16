"""The overlay picture: three views through the mask, at physical aspect, in radiological orientation;
``rexground show`` reads any mask layout the project writes."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image

from rexground.cli import main
from rexground.commands.show import masks_on_ct
from rexground.errors import InputFileError
from rexground.io import read_ct, write_channels, write_mask
from rexground.overlay import (
    COLOURS,
    HEADER_LINE_PX,
    HEADER_NOTES,
    PANEL_PX,
    WINDOW_NOTE,
    _centre_voxel,
    _scale_bar_mm,
    legend_lines,
    letters_for,
    render_overlay,
    view_letters,
)


def _header_px(n_masks: int) -> int:
    return (HEADER_NOTES + n_masks) * HEADER_LINE_PX + 6


def _ct(shape=(30, 40, 50)):
    hu = np.full(shape, -850, dtype=np.int16)
    return hu


def _red_pixels(image: Image.Image) -> np.ndarray:
    a = np.asarray(image).astype(int)
    r, g, b = COLOURS[0]
    return (np.abs(a[..., 0] - r) < 2) & (np.abs(a[..., 1] - g) < 2) & (np.abs(a[..., 2] - b) < 2)


def test_centre_voxel_lies_inside_the_largest_part_even_when_curved():
    masks = np.zeros((1, 20, 20, 20), np.uint8)
    yy, xx = np.mgrid[:20, :20]
    ring = (np.hypot(yy - 10, xx - 10) > 6) & (np.hypot(yy - 10, xx - 10) < 8)
    masks[0, 8:12][:, ring] = 1  # a ring: its centroid is in the hole
    masks[0, 0, 0, 0] = 1  # a smaller part elsewhere
    z, y, x = _centre_voxel(masks)
    assert masks[0, z, y, x] == 1 and z in range(8, 12)


def test_empty_masks_show_the_volume_centre():
    assert _centre_voxel(np.zeros((2, 10, 12, 14), np.uint8)) == (5, 6, 7)


def test_panels_keep_physical_aspect_and_the_header_lists_findings():
    hu = _ct()
    mask = np.zeros_like(hu, dtype=np.uint8)
    mask[10:14, 10:20, 30:40] = 1
    image = render_overlay(hu, mask, spacing_zyx=(2.5, 0.8, 0.8), findings=["a", "b"])
    header = _header_px(1)
    assert image.height == PANEL_PX + header
    axial_w = round(PANEL_PX * (50 * 0.8) / (40 * 0.8))
    coronal_w = round(PANEL_PX * (50 * 0.8) / (30 * 2.5))
    sagittal_w = round(PANEL_PX * (40 * 0.8) / (30 * 2.5))
    assert image.width == axial_w + coronal_w + sagittal_w + 4


def test_orientation_is_radiological():
    """A lesion at the patient's left (high x), superior (high z), anterior (low y) must appear on the image's
    right in axial and coronal views, at the top in coronal and sagittal, on the left in sagittal."""
    hu = _ct((30, 40, 40))
    mask = np.zeros_like(hu, dtype=np.uint8)
    mask[22:28, 4:10, 30:36] = 1
    image = render_overlay(hu, mask, spacing_zyx=(1.0, 1.0, 1.0))
    red = _red_pixels(image)[_header_px(1) :]  # below the header
    w = PANEL_PX * 40 // 40  # axial: 40 x 40 mm
    wc = round(PANEL_PX * 40 / 30)  # coronal and sagittal: 40 mm wide, 30 mm high
    axial, coronal, sagittal = red[:, :w], red[:, w + 2 : w + 2 + wc], red[:, w + 4 + wc :]
    for view in (axial, coronal, sagittal):
        assert view.any()
    ys, xs = np.nonzero(axial)
    assert xs.mean() > w / 2 and ys.mean() < PANEL_PX / 2  # patient left on the right, anterior on top
    ys, xs = np.nonzero(coronal)
    assert xs.mean() > wc / 2 and ys.mean() < PANEL_PX / 2  # left on the right, superior on top
    ys, xs = np.nonzero(sagittal)
    assert xs.mean() < wc / 2 and ys.mean() < PANEL_PX / 2  # anterior on the left, superior on top


def test_mask_must_match_the_ct():
    with pytest.raises(ValueError, match="differs"):
        render_overlay(_ct(), np.zeros((1, 3, 3, 3), np.uint8), (1, 1, 1))


@pytest.fixture
def ct_path(tmp_path):
    raw = np.full((24, 20, 10), -800, np.int16)
    raw[5:10, 5:10, 3:6] = 80
    image = sitk.GetImageFromArray(raw.transpose())
    image.SetSpacing((0.9, 0.9, 3.0))
    image.SetDirection((-1, 0, 0, 0, 1, 0, 0, 0, 1))
    path = tmp_path / "ct.mha"
    sitk.WriteImage(image, str(path))
    return path


def _show(ct_path, mask, out, *extra) -> int:
    return main(["show", "--ct", str(ct_path), "--mask", str(mask), "--out", str(out), *extra])


def test_show_reads_a_3d_mask_and_a_channel_file(tmp_path, ct_path, capsys):
    ct = read_ct(ct_path)
    masks = np.stack([ct.hu > 0, ct.hu > 50]).astype(np.uint8)
    write_mask(tmp_path / "one.nii.gz", masks[0], ct.geometry)
    write_channels(tmp_path / "two.nii.gz", masks, ct.geometry)
    assert _show(ct_path, tmp_path / "one.nii.gz", tmp_path / "a.png") == 0
    assert (
        _show(ct_path, tmp_path / "two.nii.gz", tmp_path / "b.png", "--channel", "1", "--finding", "second")
        == 0
    )
    a, b = Image.open(tmp_path / "a.png"), Image.open(tmp_path / "b.png")
    assert a.size == b.size  # one header line each
    assert _red_pixels(a).any() and _red_pixels(b).any()
    assert "overlay written" in capsys.readouterr().out


def test_show_refuses_a_mask_of_another_grid(tmp_path, ct_path):
    other = sitk.GetImageFromArray(np.zeros((5, 6, 7), np.uint8))
    sitk.WriteImage(other, str(tmp_path / "other.mha"))

    with pytest.raises(InputFileError, match="fits neither"):
        masks_on_ct(tmp_path / "other.mha", read_ct(ct_path))
    assert _show(ct_path, tmp_path / "other.mha", tmp_path / "x.png") == 1


# --- orientation letters, window, scale bar, legend ---------------------------------------------------------
def test_letters_name_the_world_direction_and_add_a_second_letter_when_oblique():
    assert [letters_for(v) for v in ((1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1))] == [
        "L", "R", "P", "A", "S", "I",
    ]  # fmt: skip
    c, s = np.cos(np.radians(30)), np.sin(np.radians(30))
    assert letters_for((c, s, 0)) == "LP" and letters_for((-s, 0, -c)) == "IR"
    assert letters_for((np.cos(np.radians(5)), np.sin(np.radians(5)), 0)) == "L"  # a small tilt: one letter


def test_canonical_views_read_radiologically():
    letters = view_letters()
    assert (letters["axial"].left, letters["axial"].right, letters["axial"].top, letters["axial"].bottom) == (
        "R", "L", "A", "P",
    )  # fmt: skip
    assert (letters["coronal"].left, letters["coronal"].top, letters["coronal"].bottom) == ("R", "S", "I")
    assert (letters["sagittal"].left, letters["sagittal"].right, letters["sagittal"].top) == ("A", "P", "S")


def _oriented_ct(tmp_path, direction, marker_world_axis: int):
    """A CT whose voxel farthest towards +world axis ``marker_world_axis`` (LPS) carries a bright marker."""
    raw = np.full((30, 32, 28), -850, np.int16)
    image = sitk.GetImageFromArray(raw.transpose())
    image.SetSpacing((1.0, 1.0, 1.0))
    image.SetDirection(direction)
    # the index with the largest world coordinate along the axis: from the direction matrix itself
    d = np.asarray(direction, dtype=float).reshape(3, 3)
    column = int(np.argmax(np.abs(d[marker_world_axis])))
    end = raw.shape[column] - 1 if d[marker_world_axis, column] > 0 else 0
    index = [s // 2 for s in raw.shape]
    index[column] = end
    lo = [max(0, i - 2) for i in index]
    raw[lo[0] : lo[0] + 4, lo[1] : lo[1] + 4, lo[2] : lo[2] + 4] = 400
    image = sitk.GetImageFromArray(raw.transpose())
    image.SetSpacing((1.0, 1.0, 1.0))
    image.SetDirection(direction)
    path = tmp_path / "oriented.mha"
    sitk.WriteImage(image, str(path))
    return read_ct(path)


@pytest.mark.parametrize(
    "direction",
    [
        (1, 0, 0, 0, 1, 0, 0, 0, 1),
        (0, -1, 0, 0, 0, -1, -1, 0, 0),  # permuted and flipped: i -> inferior, j -> right, k -> anterior
        (-1, 0, 0, 0, 0, 1, 0, -1, 0),  # i -> right, j -> superior, k -> anterior (a coronal acquisition)
    ],
)
def test_the_letter_on_the_markers_side_is_the_markers_side_for_any_direction(tmp_path, direction):
    """A marker at the patient's far left shows on the axial view's side that the letters call L, whatever
    the direction matrix (the letters come from it, the pixels from the canonical reorientation)."""
    ct = _oriented_ct(tmp_path, direction, marker_world_axis=0)
    mask = (ct.hu > 200).astype(np.uint8)
    image = render_overlay(ct.hu, mask, ct.spacing_zyx, geometry=ct.geometry)
    letters = view_letters(ct.geometry)["axial"]
    _, ny, nx = ct.shape
    width = round(PANEL_PX * nx * ct.spacing_zyx[2] / (ny * ct.spacing_zyx[1]))
    red = _red_pixels(image)[_header_px(1) :, :width]  # the axial panel
    xs = np.nonzero(red)[1]
    marker_side = "right" if xs.mean() > width / 2 else "left"
    assert getattr(letters, marker_side) == "L"
    assert {letters.left, letters.right} == {"L", "R"}


def test_an_oblique_scan_gets_two_letters_per_edge():
    from rexground.geometry import Geometry

    c, s = np.cos(np.radians(30)), np.sin(np.radians(30))
    geometry = Geometry((10, 10, 10), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), (c, -s, 0, s, c, 0, 0, 0, 1))
    axial = view_letters(geometry)["axial"]
    assert (axial.left, axial.right) == ("RA", "LP")  # the x axis is turned 30 degrees towards posterior


def test_the_scale_bar_is_a_round_length_drawn_to_scale():
    assert [_scale_bar_mm(w) for w in (30, 100, 250, 400, 1000)] == [10, 20, 50, 100, 200]
    hu = np.full((20, 100, 100), -1000, np.int16)  # black in the lung window; the bar is white
    image = np.asarray(render_overlay(hu, np.zeros_like(hu, np.uint8), (2.0, 2.0, 2.0)))
    axial = image[_header_px(1) :, :PANEL_PX]
    row = PANEL_PX - 10  # the bar's top row (see overlay._panel)
    white = np.flatnonzero((axial[row, : PANEL_PX // 3] == 255).all(axis=1))  # left of the bottom letter
    bar_mm = _scale_bar_mm(200.0)  # the axial view is 200 mm wide
    assert bar_mm == 50 and white.size == round(bar_mm * PANEL_PX / 200.0) + 1


def test_the_legend_names_the_window_each_channel_and_its_finding():
    masks = np.zeros((2, 4, 5, 6), np.uint8)
    masks[0, :2] = 1
    lines = legend_lines(masks, (2.0, 1.0, 1.0), ["Nodule in the RUL", "Effusion"], channels=[3, 5])
    assert lines[0].startswith(WINDOW_NOTE)
    assert lines[1] == "channel 3: Nodule in the RUL (60 voxels, 0.12 mL)"
    assert lines[2] == "channel 5: Effusion (0 voxels, 0.00 mL)"


def test_show_names_the_channel_it_shows_with_its_number_in_the_file(tmp_path, ct_path, capsys):
    """`show --channel 1` on a label file: the legend says channel 1 (it said "0: ... channel 1")."""
    ct = read_ct(ct_path)
    masks = np.stack([ct.hu > 0, ct.hu > 50, ct.hu > 0]).astype(np.uint8)
    write_channels(tmp_path / "label.nii.gz", masks, ct.geometry)
    assert _show(ct_path, tmp_path / "label.nii.gz", tmp_path / "c.png", "--channel", "1") == 0
    out = capsys.readouterr().out
    assert "channel 1: label.nii.gz (no --finding text)" in out and "channel 0" not in out
    three = ["first", "second", "third"]
    assert _show(ct_path, tmp_path / "label.nii.gz", tmp_path / "d.png", "--channel", "2",
                 *(a for t in three for a in ("--finding", t))) == 0  # fmt: skip
    assert "channel 2: third" in capsys.readouterr().out
    assert (
        _show(ct_path, tmp_path / "label.nii.gz", tmp_path / "e.png", "--finding", "a", "--finding", "b") == 1
    )
    assert "--finding given 2 times" in capsys.readouterr().err
