"""The zero-shot engine end to end (real parser, real anatomy) on phantoms with exact ground truth."""

from __future__ import annotations

import numpy as np
import pytest

from rexground.engines.zero_shot import ZeroShotEngine
from rexground.io import CTVolume
from rexground.text.query import CATEGORY_CODES

pytestmark = pytest.mark.slow


def _dice(a, b):
    a, b = a > 0, b > 0
    return 2 * (a & b).sum() / max(a.sum() + b.sum(), 1)


def test_every_category_on_small_phantoms_gives_valid_masks_and_some_overlap():
    from rexground.synth import generate_case

    dices, per_case = {}, []
    for seed in range(2000, 2000 + len(CATEGORY_CODES)):  # 14 consecutive seeds cover every category
        case = generate_case(seed, "small")
        ct = CTVolume(hu=case.hu, geometry=case.geometry)
        preds = ZeroShotEngine().predict(ct, [f.text for f in case.findings])
        case_d = []
        for f, p in zip(case.findings, preds, strict=True):
            assert "rule_error" not in p.info, p.info["rule_error"]
            assert p.mask.shape == ct.shape and p.mask.dtype == np.uint8 and p.mask.sum() >= 10
            d = _dice(p.mask, f.mask_labels)
            dices.setdefault(f.category, []).append(d)
            case_d.append(d)
        per_case.append(np.mean(case_d))
    # Coarse (3-4 mm) phantoms are hard for small findings; the focal density findings must still be found.
    for cat in ("2e", "2g"):
        if cat in dices:
            assert np.mean(dices[cat]) > 0.3, (cat, dices[cat])
    assert np.mean(per_case) > 0.12, per_case
