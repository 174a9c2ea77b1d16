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
from rexground.overlay import COLOURS, PANEL_PX, _centre_voxel, render_overlay


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
    header = 2 * 16 + 6
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
    red = _red_pixels(image)[16 + 6 :]  # below the header
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
