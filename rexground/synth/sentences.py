"""Report-like finding sentences for phantom findings, varied the way real reports vary: location by side,
lobe (spelled out, by lung, or abbreviated), segment (several spellings) or zone; size in mm or cm;
multiplicity words; category synonyms. Every fact a sentence states is true of the drawn masks."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from rexground.synth.findings import Drawn, Location

LOBE_FULL = {
    "RUL": "right upper lobe",
    "RML": "right middle lobe",
    "RLL": "right lower lobe",
    "LUL": "left upper lobe",
    "lingula": "lingula",
    "LLL": "left lower lobe",
}
LOBE_OF_LUNG = {
    "RUL": "upper lobe of the right lung",
    "RML": "middle lobe of the right lung",
    "RLL": "lower lobe of the right lung",
    "LUL": "upper lobe of the left lung",
    "lingula": "lingula of the left lung",
    "LLL": "lower lobe of the left lung",
}
SEGMENT_SPELLINGS = {
    "lateral basal": ("lateral basal", "laterobasal"),
    "posterior basal": ("posterior basal", "posterobasal"),
    "anterior basal": ("anterior basal", "anterobasal"),
    "medial basal": ("medial basal", "mediobasal"),
    "anteromedial basal": ("anteromedial basal", "anteromedial basal"),
}


def _pick(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


def _lobe_name(lobe: str, rng: np.random.Generator) -> str:
    r = rng.random()
    if lobe == "lingula":
        return _pick(
            rng,
            [
                "lingula",
                "lingula",
                "lingular segment of the left upper lobe",
                "lingula of the left upper lobe",
            ],
        )
    if r < 0.6:
        return LOBE_FULL[lobe]
    if r < 0.8:
        return LOBE_OF_LUNG[lobe]
    if lobe == "RML" and r < 0.9:
        return "middle lobe"
    return lobe


def _segment_phrase(lobe: str, seg: str, rng: np.random.Generator) -> str:
    spelled = _pick(rng, SEGMENT_SPELLINGS.get(seg, (seg,)))
    if lobe == "lingula":
        return _pick(
            rng,
            [
                f"{seg} lingular segment of the left upper lobe",
                f"{seg} segment of the lingula",
                f"{seg} lingular segment",
            ],
        )
    r = rng.random()
    if r < 0.45:
        return f"{spelled} segment of the {_lobe_name(lobe, rng)}"
    if r < 0.7:
        return f"{LOBE_FULL[lobe]} {spelled} segment"
    if r < 0.85:
        return f"{spelled} segment of the {lobe}"
    return f"{lobe} {spelled} segment"


def location_phrase(loc: Location, rng: np.random.Generator) -> str:
    """A prepositional phrase that covers exactly the location's lobes (and zone)."""
    names = loc.names
    sub = "subpleural " if "subpleural" in loc.zones and loc.kind in ("lobe", "segment") else ""
    if loc.kind == "segment" and loc.segment:
        return f"in the {sub}{_segment_phrase(loc.segment[0], loc.segment[1], rng)}"
    if loc.kind == "lobe":
        if sub:
            return _pick(
                rng,
                [
                    f"in the subpleural region of the {_lobe_name(names[0], rng)}",
                    f"in the peripheral {_lobe_name(names[0], rng)}",
                ],
            )
        if "dependent" in loc.zones:
            return _pick(
                rng,
                [
                    f"in the dependent portion of the {_lobe_name(names[0], rng)}",
                    f"in the posterior {_lobe_name(names[0], rng)}",
                ],
            )
        if "central" in loc.zones:
            return _pick(
                rng,
                [
                    f"in the perihilar region of the {_lobe_name(names[0], rng)}",
                    f"centrally in the {_lobe_name(names[0], rng)}",
                ],
            )
        return f"in the {_lobe_name(names[0], rng)}"
    if loc.kind == "lobes":
        pair = tuple(names)
        if pair == ("RLL", "LLL"):
            return _pick(
                rng,
                [
                    "in both lower lobes",
                    "in the lower lobes of both lungs",
                    "in the bilateral lower lobes",
                    "in the lower lobes bilaterally",
                ],
            )
        if pair == ("RUL", "LUL"):
            return _pick(
                rng,
                ["in both upper lobes", "in the upper lobes of both lungs", "in the bilateral upper lobes"],
            )
        if pair == ("RML", "lingula"):
            return _pick(
                rng,
                [
                    "in the right middle lobe and lingula",
                    "in the middle lobe and the lingula",
                    "in the RML and lingula",
                ],
            )
        if pair == ("RML", "RLL"):
            return _pick(
                rng,
                [
                    "in the right middle and lower lobes",
                    "in the middle and lower lobes of the right lung",
                    "in the RML and RLL",
                ],
            )
        if pair == ("LUL", "LLL"):
            return _pick(
                rng,
                [
                    "in the left upper and lower lobes",
                    "in the upper and lower lobes of the left lung",
                    "in the LUL and LLL",
                ],
            )
        return "in the " + " and ".join(LOBE_FULL[n] for n in pair)
    if loc.kind == "side":
        side = loc.side
        return _pick(
            rng,
            [
                f"in the {side} lung",
                f"in the {side} lung",
                f"in the {side} lung parenchyma",
                f"on the {side}",
            ],
        )
    if loc.kind == "bilateral":
        return _pick(
            rng,
            [
                "in both lungs",
                "in both lungs",
                "bilaterally",
                "in both lung parenchyma",
                "in the lung parenchyma bilaterally",
            ],
        )
    if loc.kind == "apical":
        if len(names) == 2:
            return _pick(
                rng,
                [
                    "at both lung apices",
                    "at the apices of both lungs",
                    "in both apical regions",
                    "at both apices",
                ],
            )
        side = loc.side
        return _pick(rng, [f"at the {side} lung apex", f"in the {side} apical region", f"at the {side} apex"])
    if loc.kind == "basal":
        if len(names) == 2:
            return _pick(
                rng,
                [
                    "at both lung bases",
                    "at the lung bases bilaterally",
                    "in the bibasilar regions",
                    "in the basal segments of both lower lobes",
                    "in the bases of both lungs",
                    "in the basal lower lobes bilaterally",
                ],
            )
        lobe = names[0]
        side = loc.side
        return _pick(
            rng,
            [
                f"at the {side} lung base",
                f"in the basal segments of the {LOBE_FULL[lobe]}",
                f"in the {side} lower lobe base",
            ],
        )
    raise ValueError(f"no phrase for location kind {loc.kind!r}")


def _size(mm: float, rng: np.random.Generator) -> str:
    if mm >= 10 and rng.random() < 0.4:
        return f"{mm / 10:.1f} cm"
    if rng.random() < 0.2 and mm < 10 and mm != round(mm):
        return f"{mm:.1f} mm"
    return f"{round(mm):d} mm"


def _count_word(n: int, rng: np.random.Generator) -> str:
    if n == 2:
        return _pick(rng, ["Two", "Two", "A couple of"])
    if n == 3:
        return _pick(rng, ["Three", "A few", "Several"])
    return _pick(rng, ["Multiple", "Several", "Scattered", "A few"])


def location_adjective(loc: Location, rng: np.random.Generator) -> str | None:
    """The location as a modifier in front of the finding ("Right lower lobe", "RLL superior segment"), for
    a single lobe or segment; None otherwise."""
    if loc.zones or loc.kind not in ("lobe", "segment"):
        return None
    lobe = loc.names[0]
    full = rng.random() < 0.7
    base = "Lingular" if lobe == "lingula" else (LOBE_FULL[lobe].capitalize() if full else lobe)
    if loc.kind == "segment" and loc.segment:
        if lobe == "lingula":
            return f"{loc.segment[1].capitalize()} lingular segment"
        return f"{base} {_pick(rng, SEGMENT_SPELLINGS.get(loc.segment[1], (loc.segment[1],)))} segment"
    return base


def _sentence(
    subject: str, where: str, rng: np.random.Generator, tail: str = "", loc: Location | None = None
) -> str:
    adjective = location_adjective(loc, rng) if loc is not None and rng.random() < 0.2 else None
    if (
        adjective
        and subject[:1].isalpha()
        and not subject.startswith(
            (
                "Areas",
                "Area",
                "Two",
                "Three",
                "Several",
                "A ",
                "Numerous",
                "Scattered",
                "Multiple",
                "Mild",
                "Minimal",
            )
        )
    ):
        first = subject.split(" ", 1)[0]
        lowered = subject if first.isupper() else subject[0].lower() + subject[1:]
        text = f"{adjective} {lowered}{tail}"
    else:
        text = f"{subject} {where}{tail}"
    return text[0].upper() + text[1:]


def describe(cat: str, loc: Location, drawn: Drawn, rng: np.random.Generator) -> str:
    """The finding sentence for what was drawn."""
    where = location_phrase(loc, rng)

    def say(subject: str, tail: str = "") -> str:
        return _sentence(subject, where, rng, tail, loc)

    n = len(drawn.instances)
    sizes = sorted(drawn.sizes_mm, reverse=True)
    v = drawn.variant
    if cat == "2d":
        if v == "mass":
            a = sizes[0]
            b = round(a * rng.uniform(0.7, 0.95))
            size = f"{a / 10:.1f} x {b / 10:.1f} cm" if rng.random() < 0.5 else f"{round(a)} x {b} mm"
            return say(_pick(rng, ["Mass", "Soft tissue mass", "Pulmonary mass"]), f", measuring {size}")
        adj = (
            "calcified "
            if v == "calcified"
            else _pick(rng, ["", "", "indeterminate ", "nonspecific ", "solid ", "noncalcified "])
        )
        if n == 1:
            s = _size(sizes[0], rng)
            forms = [
                (f"{s} {adj}nodule", ""),
                (f"{adj}nodule measuring {s}", ""),
                (f"{adj}pulmonary nodule", f", {s}"),
                (f"{adj}nodule", f", measuring {s}" + _pick(rng, ["", ", unchanged", ", stable"])),
            ]
            if sizes[0] < 10:
                forms.append((f"subcentimeter {adj}nodule", ""))
            subject, tail = _pick(rng, forms)
            return say(subject, tail)
        if n == 2 and rng.random() < 0.5:
            return say(f"Two {adj}nodules", f", measuring {round(sizes[1])} mm and {round(sizes[0])} mm")
        word = _count_word(n, rng)
        small = "subcentimeter " if sizes[0] < 10 and rng.random() < 0.5 else ""
        tail = _pick(
            rng, [f", largest {_size(sizes[0], rng)}", f", measuring up to {_size(sizes[0], rng)}", ""]
        )
        return say(f"{word} {small}{adj}{_pick(rng, ['nodules', 'pulmonary nodules'])}", tail)
    if cat == "2c":
        if v == "crazy paving":
            return say(
                _pick(
                    rng,
                    [
                        "Crazy paving pattern",
                        "Crazy-paving opacities",
                        "Ground-glass opacities with superimposed septal thickening (crazy paving)",
                    ],
                ),
            )
        if v == "nodular":
            if n == 1:
                return say("Nodular ground-glass opacity", f", {_size(sizes[0], rng)}")
            return say(_pick(rng, ["Nodular ground-glass opacities", "Nodular ground glass opacities"]))
        if n == 1:
            return say(
                _pick(
                    rng,
                    [
                        "Ground-glass opacity",
                        "Patchy ground-glass opacity",
                        "Focal ground-glass opacity",
                        "Area of ground-glass density",
                    ],
                ),
            )
        return say(
            _pick(
                rng,
                [
                    "Patchy ground-glass opacities",
                    "Areas of ground-glass opacity",
                    "Ground-glass opacities",
                    "Ground glass densities",
                ],
            ),
        )
    if cat == "2b":
        if v == "atelectasis":
            return say(
                _pick(
                    rng,
                    [
                        "Atelectasis",
                        "Passive atelectasis",
                        "Compressive atelectatic changes",
                        "Atelectatic changes",
                        "Dependent atelectasis",
                    ],
                ),
            )
        if drawn.facts.get("air_bronchograms") and rng.random() < 0.6:
            return say(
                _pick(
                    rng,
                    [
                        "Consolidation with air bronchograms",
                        "Areas of pneumonic consolidation with air bronchograms",
                    ],
                ),
            )
        return say(
            _pick(
                rng,
                [
                    "Consolidation",
                    "Areas of consolidation" if n > 1 else "Area of consolidation",
                    "Focal consolidative density",
                    "Parenchymal consolidation",
                ],
            ),
        )
    if cat == "2a":
        if v == "scarring":
            return say(
                _pick(
                    rng,
                    [
                        "Linear scarring",
                        "Pleuroparenchymal scarring",
                        "Fibrotic scarring",
                        "Parenchymal scarring",
                    ],
                ),
            )
        if v == "band":
            return say(
                _pick(
                    rng,
                    [
                        "Band-like opacity" if n == 1 else "Band-like opacities",
                        "Fibrotic bands",
                        "Linear opacities",
                    ],
                ),
            )
        return say(
            _pick(
                rng,
                [
                    "Linear atelectasis",
                    "Subsegmental atelectasis",
                    "Platelike atelectasis",
                    "Linear subsegmental atelectasis",
                ],
            ),
        )
    if cat in ("2e", "2g"):
        side = loc.side
        depth = sizes[0] if sizes else 0
        if cat == "2e" and drawn.variant == "thickening":
            if side == "bilateral":
                return _pick(rng, ["Bilateral pleural thickening", "Pleural thickening on both sides"])
            return _pick(
                rng,
                [
                    f"{side.capitalize()} pleural thickening",
                    f"Focal pleural thickening on the {side}",
                    f"Pleural thickening in the {side} hemithorax",
                    f"{side.capitalize()}-sided pleural thickening, {round(depth)} mm",
                ],
            )
        if cat == "2e":
            amount = (
                "Minimal"
                if depth < 18
                else ("Small" if depth < 30 else ("Moderate" if depth < 45 else "Large"))
            )
            if side == "bilateral":
                return _pick(
                    rng,
                    [
                        f"{amount} bilateral pleural effusion",
                        "Bilateral pleural effusions",
                        f"{amount} pleural effusion on both sides",
                    ],
                )
            return _pick(
                rng,
                [
                    f"{side.capitalize()} pleural effusion measuring up to {round(depth)} mm in depth",
                    f"{amount} {side} pleural effusion",
                    f"{amount} {side}-sided pleural effusion",
                    f"Pleural effusion on the {side}, {round(depth)} mm thick",
                ],
            )
        amount = "Small" if depth < 20 else "Moderate"
        return _pick(
            rng,
            [
                f"{amount} {side} pneumothorax",
                f"{side.capitalize()}-sided pneumothorax measuring {round(depth)} mm",
                f"Pneumothorax in the {side} hemithorax",
                f"{amount} {side} anterior pneumothorax",
            ],
        )
    if cat == "2f":
        return say(
            _pick(
                rng, ["Honeycombing", "Subpleural honeycombing", "Honeycomb changes", "Honeycombing pattern"]
            ),
        )
    if cat == "2h":
        if v == "cavity":
            return say(
                _pick(rng, ["Cavitary lesion", "Thick-walled cavity", "Cavitating lesion"]),
                f", measuring {_size(sizes[0], rng)}",
            )
        if n == 1:
            return say(
                _pick(
                    rng,
                    [
                        "Air cyst",
                        "Thin-walled air cyst",
                        f"{_size(sizes[0], rng)} thin-walled cyst",
                        "Parenchymal air cyst",
                    ],
                ),
            )
        return say(_pick(rng, ["Air cysts", "Thin-walled air cysts", "Two air cysts"]))
    if cat == "1a":
        return say(
            _pick(
                rng,
                [
                    "Bronchial wall thickening",
                    "Peribronchial thickening",
                    "Thickening of the bronchial walls",
                    "Mild bronchial wall thickening",
                ],
            ),
        )
    if cat == "1b":
        return say(
            _pick(
                rng,
                [
                    "Bronchiectasis",
                    "Cylindrical bronchiectasis",
                    "Bronchiectatic changes",
                    "Mild bronchiectasis",
                    "Dilated bronchi (bronchiectasis)",
                ],
            ),
        )
    if cat == "1c":
        if v == "paraseptal":
            return say(
                _pick(
                    rng,
                    [
                        "Paraseptal emphysema",
                        "Minimal paraseptal emphysema",
                        "Paraseptal emphysematous changes",
                    ],
                ),
            )
        if v == "bullous":
            return say(_pick(rng, ["Bullous emphysema", "Emphysematous bullae", "Bullae"]))
        return say(
            _pick(
                rng,
                [
                    "Centrilobular emphysema",
                    "Emphysematous changes",
                    "Mild centrilobular emphysematous changes",
                    "Centrilobular emphysema",
                ],
            ),
        )
    if cat == "1d":
        return say(
            _pick(
                rng,
                [
                    "Interlobular septal thickening",
                    "Smooth interlobular septal thickening",
                    "Reticular opacities",
                    "Septal thickening",
                    "Subpleural reticulation",
                ],
            ),
        )
    if cat == "1e":
        if v == "tree-in-bud":
            return say(
                _pick(rng, ["Tree-in-bud opacities", "Tree-in-bud pattern", "Tree-in-bud nodularity"]),
            )
        if v == "calcified":
            return say(
                _pick(
                    rng,
                    [
                        "Calcified micronodules",
                        "Numerous calcified micronodules",
                        "Scattered calcified micronodules",
                    ],
                ),
            )
        return say(
            _pick(
                rng,
                [
                    "Centrilobular nodules",
                    "Centrilobular micronodules",
                    "Centriacinar nodular opacities",
                    "Centrilobular nodular opacities",
                ],
            ),
        )
    if cat == "1f":
        return say(
            _pick(
                rng,
                [
                    "Mosaic attenuation",
                    "Mosaic attenuation pattern",
                    "Heterogeneous lung attenuation in a mosaic pattern",
                ],
            ),
        )
    raise ValueError(f"no sentence for category {cat!r}")
