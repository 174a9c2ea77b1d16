"""Phantom chest CTs with exact ground truth, so every stage can be tested end to end without the gated data.

API::

    from rexground.synth import generate_case, write_dataset, PhantomCase, PhantomFinding

    case = generate_case(seed, size="small")      # deterministic per (seed, size); size "small" or "real"
    case.hu            # int16 canonical (z, y, x) HU; scanner padding (-2048/-3024/-8192) outside the
                       # circular field of view in some cases (case.padding_value, else None)
    case.spacing_zyx   # mm, canonical order
    case.direction     # 3x3, columns = raw index axes in LPS (identity, flipped or permuted per case)
    case.origin        # LPS mm of raw index (0, 0, 0)
    case.geometry      # rexground.geometry.Geometry of the file; case.to_raw(canonical) -> raw order
    case.to_image()    # SimpleITK image: raw order with that geometry (what write_dataset saves)
    case.findings      # list of PhantomFinding: text, category, mask_labels (uint8 canonical, entity values
                       # 1..n, exhaustive), side ("right"/"left"/"bilateral"), lobes (tuple of lobe names the
                       # sentence allows; .lobe when it is one), segment, zones, pleural, .partial(rng)
    case.lobes         # uint8 canonical: 1 RUL, 2 RML, 3 RLL, 4 LUL, 5 lingula, 6 LLL (0 outside the lungs;
                       # pleural effusion / pneumothorax are outside the lungs)
    case.segments      # uint8 canonical segment labels (rexground.synth.anatomy.SEGMENTS, 1-based)
    case.airway        # bool canonical: lumen of the trachea and bronchi
    case.distractors   # lesions painted but described by no finding: category, lobes, bool mask

    write_dataset(out_dir, n_cases, seed, size="small") -> Path   # dataset.json; layout in writer.py

``generate_case(seed, size, categories=[...])`` forces the findings' categories (codes such as "2d"). Every
finding has a distractor of its category elsewhere in most cases (painted, not in its mask), so only the
sentence's location separates them. A small case (~96 x 96 x 90 voxels at ~3.7 mm) takes about 0.3 s of CPU;
a real one (512 or 768 matrix, 0.6-0.98 mm in-plane, 0.75-1.5 mm slices, 240-520 slices) 10-25 s of CPU and
1.7-3.3 GB of memory.
"""

from rexground.synth.case import PhantomCase, PhantomFinding, generate_case
from rexground.synth.writer import write_dataset

__all__ = ["PhantomCase", "PhantomFinding", "generate_case", "write_dataset"]
