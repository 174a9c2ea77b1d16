"""Vocabularies of chest-CT report language: spelling normalisation, finding terms and their categories.

Patterns here run on text already passed through ``normalise`` (lower case, hyphens and slashes as spaces,
British spellings and lobe abbreviations expanded), so each pattern is written once in one spelling.
"""

from __future__ import annotations

import re
import unicodedata

# --- normalisation -----------------------------------------------------------------------------------------

_SPELLING: tuple[tuple[str, str], ...] = (
    (r"oedema", "edema"),
    (r"haemorrhag", "hemorrhag"),
    (r"haemothora", "hemothora"),
    (r"haemat", "hemat"),
    (r"haem", "hem"),
    (r"oesophag", "esophag"),
    (r"tumour", "tumor"),
    (r"centimetre", "centimeter"),
    (r"millimetre", "millimeter"),
    (r"fibre", "fiber"),
    (r"grey", "gray"),
    (r"\bcentre", "center"),
    (r"\bhoney comb", "honeycomb"),
    (r"\bsub pleural", "subpleural"),
    (r"\blocalis", "localiz"),
    (r"\bcharacteris", "characteriz"),
    (r"\borganis", "organiz"),
    (r"\bvisualis", "visualiz"),
    (r"\brecognis", "recogniz"),
    (r"opacificat", "opacificat"),
    (r"groundglass", "ground glass"),
    (r"\bbasilar\b", "basal"),
    (r"\bbibasilar\b", "bibasal"),
    (r"\bmicro nodul", "micronodul"),
    (r"\bsub centimet", "subcentimet"),
    (r"\bnon specific", "nonspecific"),
    (r"\bnon calcified", "noncalcified"),
)

# Lobe abbreviations read as the words they stand for (after lower-casing).
_ABBREVIATIONS: tuple[tuple[str, str], ...] = (
    (r"\brul\b", "right upper lobe"),
    (r"\brml\b", "right middle lobe"),
    (r"\brll\b", "right lower lobe"),
    (r"\blul\b", "left upper lobe"),
    (r"\blll\b", "left lower lobe"),
    (r"\bggos?\b", "ground glass opacity"),
    (r"\bggn\b", "ground glass nodule"),
    (r"\bptx\b", "pneumothorax"),
)


def normalise(text: str) -> str:
    """Lower case, one spelling, hyphens/slashes as spaces, units split from numbers, single spaces.

    Character offsets are not preserved; the parser works on this string only.
    """
    s = unicodedata.normalize("NFKC", text)
    s = s.replace("×", " x ").replace("–", "-").replace("—", "-").replace("\u2212", "-")
    s = s.lower()
    # numbers: "6x5mm" -> "6 x 5 mm"; decimal commas "1,2 cm" -> "1.2 cm"
    s = re.sub(r"(\d),(\d)(?=\s*(?:mm|cm)\b)", r"\1.\2", s)
    s = re.sub(r"(\d)\s*[x*]\s*(?=\d)", r"\1 x ", s)
    s = re.sub(r"(\d)(mm|cm|millimet\w*|centimet\w*)\b", r"\1 \2", s)
    # a hyphenated prefix joins its word ("sub-pleural", "peri-hilar", "bi-basilar", "non-calcified")
    s = re.sub(
        r"\b(sub|peri|para|centri|juxta|intra|inter|infra|supra|non|micro|bi|pan|multi|mid|honey)-(?=[a-z])",
        r"\1",
        s,
    )
    # ranges "2-3" keep their hyphen; every other hyphen or slash between word characters becomes a space
    s = re.sub(r"(?<=[a-z])\s*[-/]\s*(?=[a-z])", " ", s)
    s = re.sub(r"(?<=[a-z])-(?=\d)|(?<=\d)-(?=[a-z])", " ", s)
    for pattern, repl in _SPELLING:
        s = re.sub(pattern, repl, s)
    for pattern, repl in _ABBREVIATIONS:
        s = re.sub(pattern, repl, s)
    s = re.sub(r"\s+", " ", s).strip()
    return s


# --- finding terms -------------------------------------------------------------------------------------------
# (pattern, category, strength). Strength 4: a named pattern that outranks its parts ("crazy paving"); 3: a specific finding noun ("nodule", "ground glass", "scarring");
# 2: a modifier that leans towards a category ("nodular", "band like"); 1: a generic word ("opacity").
# The decisive term is the strongest; among equals the earliest, which is the head of a report finding
# ("consolidation with ground glass halo" is a consolidation; "ground glass with septal thickening" is GGO).
# A match lying inside a longer match is dropped, so "centrilobular nodules" is not also a "nodule".

W = r"(?:[a-z]+ )"  # one word and its space, for "up to n words between" gaps

# fmt: off
CATEGORY_TERMS: tuple[tuple[str, str, int], ...] = (
    # 1a bronchial wall thickening
    (r"(?:peri)?bronch(?:ial|iolar)? (?:wall |interstitial )?thicken\w*", "1a", 3),
    (r"thicken\w* (?:of the )?(?:peri)?bronch\w* ?(?:walls?)?", "1a", 3),
    (r"peribronchial cuffing", "1a", 3),
    (r"bronchial wall (?:thickness|prominence)", "1a", 3),
    (r"bronchitis", "1a", 2),
    # 1b bronchiectasis
    (r"bronchi(?:ol)?ectas\w*|bronchi(?:ol)?ectat\w*", "1b", 3),
    # 1c emphysema
    (r"emphysema\w*", "1c", 3),
    (r"bullae|bulla|bullous|blebs?", "1c", 3),
    (r"hyperinflat\w*|hyperlucen\w*", "1c", 2),
    # 1d septal thickening
    (r"(?:(?:interlobular|interlobar|intralobular|smooth|nodular|irregular) )?septal (?:thickening|lines?)", "1d", 3),
    (r"thicken\w* (?:of the )?(?:interlobular )?septa\w*", "1d", 3),
    (r"reticulation|reticular (?:pattern|opacit\w+|changes?|densit\w+|markings?|thickening)", "1d", 3),
    (r"reticulonodular|reticular", "1d", 2),
    (r"kerley", "1d", 3),
    (r"interstitial thickening", "1d", 3),
    # 1e micronodules
    (r"micronodul\w*", "1e", 3),
    (r"(?:centrilobular|centriacinar|perilymphatic|miliary|acinar) " + W + r"{0,2}(?:nodul\w*|infiltrat\w*)", "1e", 3),
    (r"tree in bud(?: (?:nodul\w*|opacit\w*|pattern|appearance|densit\w*|changes?))?", "1e", 3),
    (r"miliary", "1e", 3),
    (r"(?:innumerable|numerous|countless|myriad|profuse) " + W + r"{0,3}nodul\w*", "1e", 3),
    (r"bronchiolitis", "1e", 2),
    # 1f other diffuse
    (r"mosaic (?:attenuation|perfusion|pattern|oligemia)", "1f", 3),
    (r"air trapping", "1f", 3),
    (r"interstitial (?:lung )?(?:disease|changes?|pattern|fibrosis|abnormalit\w+|involvement|markings?|prominence|edema|pneumonia)", "1f", 3),
    (r"(?:pulmonary|lung|diffuse) fibrosis", "1f", 3),
    (r"pulmonary edema", "1f", 3),
    (r"lymphangit\w*", "1f", 3),
    (r"fibrosis|interstitial", "1f", 2),
    # 2a linear opacities
    (r"(?:linear|plate ?like|plate|discoid|band ?like|band|subsegmental|lamellar|strand ?like|platelike|bandlike|striate?) " + W + r"?atelecta\w*", "2a", 3),
    (r"atelecta\w* (?:bands?|strands?|lines?|stripes?)", "2a", 3),
    (r"fibrotic (?:changes?|sequelae|areas?|densit\w+|opacit\w+)|sequela\w*|cicatri\w*", "2a", 2),
    (r"scar\b|scars\b|scarr\w*", "2a", 3),
    (r"fibro ?atelecta\w*", "2a", 3),
    (r"(?:fibrotic|fibrous|parenchymal|fibroatelectatic|pleuroparenchymal) (?:bands?|strands?|stripes?)", "2a", 3),
    (r"linear (?:opacit\w+|densit\w+|shadows?|changes?|stranding|lesions?|areas?|infiltrat\w+|bands?)", "2a", 3),
    (r"fibrotic strands?|strand\w*", "2a", 3),
    (r"bands?|band ?like|bandlike|linear|streaky|stripe\w*", "2a", 2),
    # 2b atelectasis / consolidation
    (r"atelecta\w*", "2b", 3),
    (r"air ?space (?:disease|opacit\w+|consolidation|densit\w+)", "2b", 3),
    (r"consolidat\w*", "2b", 3),
    (r"air bronchograms?", "2b", 3),
    (r"collapse[ds]?", "2b", 3),
    (r"pneumonia|bronchopneumonia", "2b", 3),
    (r"pneumonic|infectious|inflammatory", "2b", 2),
    (r"infiltrat\w*|opacit\w*|opacification|densit(?:y|ies)|infiltrates?", "2b", 1),
    # 2c ground glass
    (r"ground glass", "2c", 3),
    (r"crazy paving", "2c", 4),  # names the whole pattern (ground glass + septal lines): it decides
    (r"hazy|haziness", "2c", 2),
    (r"increased (?:\w+ )?attenuation", "2c", 1),
    # 2d nodule / mass
    (r"nodul(?:e|es)\b|nodulus", "2d", 3),
    (r"mass\b|masses\b", "2d", 3),
    (r"granulomas?|granulomata|hamartomas?|tumors?|neoplasms?|carcinoma\w*|malignan\w*|metasta\w*", "2d", 3),
    (r"lymph nodes?", "2d", 2),
    (r"nodular|nodularit\w*|spiculated|solid|subsolid|soft tissue (?:densit\w+|lesions?|opacit\w+)", "2d", 2),
    (r"lesions?", "2d", 1),
    # 2e pleural effusion / thickening
    (r"(?:pleural|pleura) (?:effusions?|fluid|thickening|thickened|plaques?|calcificat\w*|calcified|nodularity|reaction)", "2e", 3),
    (r"(?:calcified|calcific|thickened) pleura\w*", "2e", 3),
    (r"calcificat\w* (?:[a-z]+ ){0,5}pleura\b", "2e", 3),  # "calcification in the lower lobe pleura"
    (r"effusions?", "2e", 3),
    (r"hydrothora\w*|hemothora\w*|empyema|fibrothora\w*|pleural plaques?", "2e", 3),
    (r"pleural|pleura", "2e", 1),
    # 2f honeycombing
    (r"honeycomb\w*(?: (?:cysts?|pattern|changes?|appearance|lung))?", "2f", 3),
    # 2g pneumothorax
    (r"(?:hydro)?pneumothora\w*", "2g", 3),
    # 2h other focal
    (r"cysts?\b", "2h", 3),
    (r"cystic", "2h", 2),
    (r"cavit\w*", "2h", 3),
    (r"architectural distortion", "2h", 3),
    (r"bronchocele|mucoid impaction|mucus plug\w*|mucous plug\w*|impacted bronch\w*", "2h", 3),
    (r"abscess\w*|pneumatocele\w*|infarct\w*|hematoma|contusion", "2h", 3),
    (r"pericardial effusion", "2h", 3),
    (r"calcificat\w*|lucenc\w*", "2h", 2),
)
# fmt: on

COMPILED_CATEGORY_TERMS: tuple[tuple[re.Pattern[str], str, int], ...] = tuple(
    (re.compile(r"\b(?:" + p + r")"), cat, strength) for p, cat, strength in CATEGORY_TERMS
)

# Negation cues scope over the finding terms after them within one clause ("no pneumothorax",
# "without evidence of effusion"); "nodule without calcification" stays a positive nodule.
NEGATION = re.compile(
    r"\b(?:no|not|without|absence of|absent|negative for|free of|resolved|resolution of|no longer|"
    r"ruled out|clear of|neither|nor|never|nor any|excluded)\b"
)
NEGATION_AFTER = re.compile(
    r"^[^,;.:]{0,40}?\b(?:(?:has|have) )?(?:resolved|disappeared|regressed completely|no longer (?:seen|visible|present|"
    r"observed|evident)|(?:is|are|was|were) not (?:seen|identified|present|observed|detected|visualized|evident))\b"
)
# "no significant change in the nodule", "without interval growth": the cue negates a change, not the finding
NEGATED_CHANGE = re.compile(
    r"^\s*(?:(?:significant|interval|appreciable|substantial|notable|definite|further|new)\s+)*"
    r"(?:change|growth|increase|progression|enlargement|difference|regression)"
)
CLAUSE_BREAK = re.compile(r"[;,.:()]|\bbut\b|\bwith\b|\bhowever\b|\bwhich\b")
UNCERTAINTY = re.compile(
    r"\b(?:possibl[ey]|probabl[ey]|likely|unlikely|suspicious|suspected|suspect|suspicion|questionabl[ey]|"
    r"equivocal|cannot be (?:excluded|ruled out)|can ?not be (?:excluded|ruled out)|not excluded|"
    r"may|might|could|differential|versus|vs|difficult to (?:distinguish|differentiate)|"
    r"indistinguishable|presumed|presumably|suggestive|suggests?|concerning for|query|doubtful|"
    r"uncertain|either)\b|\?"
)

# --- multiplicity --------------------------------------------------------------------------------------------
DIFFUSE_CUES = re.compile(
    r"\b(?:diffuse|diffusely|innumerable|numerous|countless|myriad|widespread|miliary|throughout|"
    r"all (?:segments|lobes|zones|lung fields)|extensive|panlobular|profuse)\b"
)
FEW_CUES = re.compile(
    r"\b(?:a few|few|two|three|couple|a couple of|pair of|both of)\b|"
    r"\b[23]\s*(?:-|to|or)\s*[34]\b(?!\s*(?:mm|cm|x\b|\.\d))|\b[23]\s+(?!mm|cm|x\b|mil|cent)(?=[a-z])"
)
MULTIPLE_CUES = re.compile(
    r"\b(?:multiple|several|scattered|many|various|multifocal|multilobar|some|areas of|foci of|"
    r"largest|numbers? of|four|five|six|seven|eight|nine|ten|[4-9]|\d\d+)\b(?!\s*(?:\.\d|mm|cm|x\b))"
)
SINGLE_CUES = re.compile(
    r"\b(?:a|an)\b(?! few| couple| number| pair)|\b(?:one|single|solitary|isolated|focus of|area of)\b"
)

# --- size ----------------------------------------------------------------------------------------------------
NUM = r"(\d+(?:\.\d+)?)"
UNIT = r"(mm|cm|millimeters?|centimeters?)\b"
SIZE_DIMS = re.compile(NUM + r"(?:\s*(?:mm|cm))?(?:\s*(?:x|by)\s*" + NUM + r"(?:\s*(?:mm|cm))?)?"
                       r"(?:\s*(?:x|by)\s*" + NUM + r")?\s*" + UNIT)  # fmt: skip
SIZE_RANGE = re.compile(NUM + r"\s*(?:-|to)\s*" + NUM + r"\s*" + UNIT)
UPPER_BOUND_CUE = re.compile(
    r"(?:<|≤|less than|smaller than|under|below|not exceeding|at most|maximum of)\s*$"
)
FOCAL_CUE = re.compile(r"\b(?:focal|localized|isolated|solitary|single)\b")
SUBCENTIMETER = re.compile(r"\bsubcentimet\w*|\bsub cm\b|\bmillimetric\b|\bsubmillimet\w*")
