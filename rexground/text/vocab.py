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
    # translated reports (CT-RATE) and common misspellings
    (r"\bfrosted glass", "ground glass"),
    (r"\bcrayz pav", "crazy pav"),
    (r"\bateleketas", "atelectas"),
    (r"\batelect[ei]s[ie]s\b", "atelectasis"),
    (r"\batelectic\b", "atelectatic"),
    (r"\batten[iu]+ation", "attenuation"),
    (r"\bpneumonthora", "pneumothora"),
    (r"\bperibrochial", "peribronchial"),
    (r"\breticulo nodular|\breticula(?:ted|r) nodular", "reticulonodular"),
    (r"\b(?:centri|centra|centro) ?acinar\w*|\bcentracinar\w*", "centriacinar"),
    (r"\bcentralobular", "centrilobular"),
    # tree in bud, however translated: "budding tree", "bud tree", "branches with buds", "bud branch views"
    (
        r"\b(?:budding|budded|bud) (?:tree|branch\w*|landscapes?)(?: bud)?|\btree (?:with|of) buds|\bbranches with buds",
        "tree in bud",
    ),
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


def _rewrite_rules(rules: tuple[tuple[str, str], ...]) -> tuple[re.Pattern[str], tuple]:
    return re.compile("|".join(f"(?:{p})" for p, _ in rules)), tuple((re.compile(p), r) for p, r in rules)


_REWRITES = (_rewrite_rules(_SPELLING), _rewrite_rules(_ABBREVIATIONS))


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
    # one search decides whether any rule applies: most sentences need none, and forty passes cost more
    # than the rest of the parse (a rule can only match text an earlier rule wrote if that one matched)
    for any_rule, rules in _REWRITES:
        if any_rule.search(s):
            for pattern, repl in rules:
                s = pattern.sub(repl, s)
    s = re.sub(r"\s+", " ", s).strip()
    return s


# --- finding terms -------------------------------------------------------------------------------------------
# (pattern, category, strength). Strength 4: a named pattern that outranks its parts ("crazy paving"); 3: a specific finding noun ("nodule", "ground glass", "scarring");
# 2: a modifier that leans towards a category ("nodular", "band like"); 1: a generic word ("opacity").
# The decisive term is the strongest; among equals the earliest, which is the head of a report finding
# ("consolidation with ground glass halo" is a consolidation; "ground glass with septal thickening" is GGO).
# A match lying inside a longer match is dropped, so "centrilobular nodules" is not also a "nodule".
#
# What each code covers follows the dataset's own categorisation schema (ReXGroundingCT assigned the codes with
# an LLM prompt that lists them; its categorize.py is public): 1 "typically non-focal lung, airway or pleural
# abnormalities" (a bronchial wall thickening, b bronchiectasis, c emphysema incl. centrilobular, paraseptal
# and bullous, d septal thickening incl. interlobular and reticulation, e micronodules incl. centrilobular,
# tree-in-bud and perilymphatic, f other) and 2 "typically focal opacities" (a linear incl. subsegmental
# atelectasis, scarring and fibrosis, b atelectasis and consolidation, c ground glass, d nodules and masses,
# e pleural effusion or thickening, f honeycombing, g pneumothorax, h other). Each family below names the
# words of its definition and the ways CT reports (CT-RATE's translated reports among them) write them.

W = r"(?:[a-z]+ )"  # one word and its space, for "up to n words between" gaps
# "thickening", "thickened", "thickness increase", "thick": report language says all four
THICK = r"(?:thicken\w*|thickness(?:es)?(?: increase\w*)?|thick\b)"
_BRONCHUS = r"(?:bronch(?:us|i|ial|ioles?|iolar)\w*)"
_SHUT = r"(?:occlu\w*|obstruct\w*|obliterat\w*|narrow\w*|stenos\w*|stenotic|cut off)"  # of an airway

# fmt: off
CATEGORY_TERMS: tuple[tuple[str, str, int], ...] = (
    # 1a bronchial wall thickening: the wall of the airway, not the lumen
    (r"(?:peri)?bronch(?:ial|iolar)? (?:wall |sheath |interstitial |diffuse )?" + THICK, "1a", 3),
    (r"(?:increase\w* (?:in |of )?(?:the )?)?" + THICK
     + r" (?:of |in )?(?:the )?(?:peri)?bronch\w* ?(?:walls?|sheath)?", "1a", 3),
    (r"peribronchial cuffing|thick walled bronch\w*", "1a", 3),
    (r"bronchial wall (?:thickness|prominence)", "1a", 3),
    (r"bronchitis", "1a", 2),
    # 1b bronchiectasis: airways wider than normal, however it is worded
    (r"bronchi(?:ol)?ectas\w*|bronchi(?:ol)?ectat\w*", "1b", 3),
    (_BRONCHUS + r" (?:dilat\w*|ectasia|ectatic|enlargement\w*|widening)", "1b", 3),
    (r"(?:dilated|ectatic|widened|enlarged) " + _BRONCHUS, "1b", 3),
    (r"(?:dilat\w*|ectasia|enlargement\w*|widening) (?:of |in )?(?:the )?" + W + r"{0,4}" + _BRONCHUS, "1b", 2),
    # 1c emphysema, centrilobular, paraseptal, panlobular and bullous
    (r"emphysema\w*", "1c", 3),
    (r"bullae|bulla|bullous", "1c", 3),
    (r"paraseptal|panlobular|panacinar", "1c", 2),
    # 1d septal thickening and reticulation (the interstitium drawn as lines)
    (r"(?:(?:interlobular|interlobar|intralobular|smooth|nodular|irregular) )?(?:inter)?septal (?:" + THICK + r"|lines?)", "1d", 3),
    (THICK + r" (?:of |in )?(?:the )?(?:interlobular |interlobar )?(?:inter)?sept\w*", "1d", 3),
    (r"(?:interlobular|intralobular) sept\w*|interlobular (?:and interlobar )?" + THICK
     + r"|interlobar and interlobular " + THICK, "1d", 3),
    (r"reticulation|reticular (?:pattern|opacit\w+|changes?|densit\w+|markings?|thickening)|reticulated", "1d", 3),
    (r"reticulonodular|reticular", "1d", 2),
    (r"kerley", "1d", 3),
    (r"interstitial (?:thickening|signs?|prominence|markings?)", "1d", 3),
    # 1e micronodules: centrilobular, tree in bud (normalised from "budding tree", "branches with buds"),
    # perilymphatic, miliary
    (r"micronodul\w*", "1e", 3),
    (r"(?:centrilobular|centriacinar|perilymphatic|miliary|acinar) " + W + r"{0,3}(?:nodul\w*|infiltrat\w*)", "1e", 3),
    # ... and their opacities; "centrilobular ground glass opacities" keep their head noun, ground glass
    (r"(?:centrilobular|centriacinar|perilymphatic|acinar) (?:opacit\w*|densit\w*|pattern|distribution)", "1e", 3),
    (r"tree in bud(?: (?:nodul\w*|opacit\w*|pattern|appearances?|densit\w*|changes?|views?))?", "1e", 3),
    (r"miliary", "1e", 3),
    (r"(?:innumerable|numerous|countless|myriad|profuse) " + W + r"{0,3}nodul\w*", "1e", 3),
    (r"bronchiolitis", "1e", 2),
    # 1f other diffuse: attenuation and aeration patterns, interstitial disease, edema
    (r"mosaic(?: (?:attenuation|perfusion|pattern|oligemia|appearance))?", "1f", 3),
    (r"air trapping", "1f", 3),
    # hyperaeration leans to 1f; "increased aeration consistent with emphysema" stays emphysema
    (r"hyperaerat\w*|hyper aerat\w*|(?:increase\w*|excess\w*) (?:\w+ )?aeration|aeration (?:increase\w*|differences?)|"
     r"hyperinflat\w*|overinflat\w*|hyperlucen\w*|hyperexpan\w*", "1f", 2),
    (r"interstitial (?:lung )?(?:disease|changes?|pattern|fibrosis|abnormalit\w+|involvement|edema|pneumonia|pneumonitis)", "1f", 3),
    (r"diffuse (?:pulmonary |interstitial |lung )?fibrosis|idiopathic pulmonary fibrosis|hypersensitivity pneumon\w+", "1f", 3),
    (r"pulmonary edema", "1f", 3),
    (r"lymphangit\w*", "1f", 3),
    (r"small (?:airways?|vessel) disease|(?:decreased|reduced|low) attenuation|hypoattenuat\w*|oligemi\w*", "1f", 2),
    (r"interstitial", "1f", 2),
    # 2a linear opacities: subsegmental / plate atelectasis, scarring, fibrosis, sequelae bands
    (r"(?:linear|plate ?like|plate|discoid|band ?like|band|subsegmental|lamellar|strand ?like|platelike|bandlike|striate?) " + W + r"?atelecta\w*", "2a", 3),
    (r"atelecta\w* (?:bands?|strands?|lines?|stripes?)", "2a", 3),
    (r"fibrotic (?:changes?|sequelae|areas?|densit\w+|opacit\w+|recession\w*)", "2a", 3),
    (r"sequela\w*|cicatri\w*|recession\w*|retraction\w*|pleuroparenchymal|fibrotic", "2a", 2),
    (r"fibrosis|pleuroparenchymal (?:opacit\w*|densit\w*|changes?|scarring|sequela\w*|fibro\w*)", "2a", 3),
    # what an old infection, radiotherapy or surgery leaves: scarring ("post inflammatory changes")
    (r"post ?(?:inflammatory|infectious|infective|treatment|radiation|radiotherapy|rt|operative|surgical|tb|"
     r"tuberculous) (?:changes?|sequela\w*|scarring|fibro\w*|densit\w*)", "2a", 3),
    (r"scar\b|scars\b|scarr\w*", "2a", 3),
    (r"fibro ?atelecta\w*", "2a", 3),
    (r"(?:fibrotic|fibrous|parenchymal|fibroatelectatic|pleuroparenchymal|sequela\w*) (?:bands?|strands?|stripes?)", "2a", 3),
    (r"linear (?:opacit\w+|densit\w+|shadows?|changes?|stranding|lesions?|areas?|infiltrat\w+|bands?|fibro\w*)", "2a", 3),
    (r"subpleural (?:lines?|linear\w*|curvilinear\w*)", "2a", 3),
    (r"fibrotic strands?|strand\w*", "2a", 3),
    (r"bands?|band ?like|bandlike|linear|streaky|stripe\w*", "2a", 2),
    # 2b atelectasis and consolidation
    (r"atelecta\w*", "2b", 3),
    (r"air ?space (?:disease|opacit\w+|consolidation|densit\w+)", "2b", 3),
    (r"consolidat\w*", "2b", 3),
    (r"air bronchograms?", "2b", 3),
    (r"collapse[ds]?", "2b", 3),
    (r"pneumonia|bronchopneumoni\w*", "2b", 3),
    (r"pneumonic|pneumonitis|infectious|inflammatory|volume loss|loss of volume|aspiration", "2b", 2),
    (r"infiltrat\w*|opacit\w*|opacification|densit(?:y|ies)|infiltrates?", "2b", 1),
    # 2c ground glass ("frosted glass" is normalised to it)
    (r"ground glass", "2c", 3),
    (r"crazy paving", "2c", 4),  # names the whole pattern (ground glass + septal lines): it decides
    (r"hazy|haziness", "2c", 2),
    (r"increased (?:\w+ )?attenuation", "2c", 1),
    # 2d nodules and masses
    (r"nodul(?:e|es)\b|nodulus", "2d", 3),
    (r"nodular (?:lesions?|densit\w+|formations?|images?|opacit\w+|appearances?)", "2d", 3),
    (r"mass\b|masses\b", "2d", 3),
    (r"granulomas?|granulomata|hamartomas?|tumors?|neoplasms?|carcinoma\w*|malignan\w*|metasta\w*", "2d", 3),
    (r"intrapulmonary lymph nodes?|subpleural lymph nodes?|perifissural lymph nodes?", "2d", 3),
    (r"lymph nodes?", "2d", 2),
    (r"nodular|nodularit\w*|spiculated|solid|subsolid|semisolid|soft tissue (?:densit\w+|lesions?|opacit\w+)", "2d", 2),
    (r"lesions?", "2d", 1),
    # 2e pleural effusion or thickening; the fissures are pleura too ("fissural thickening")
    (r"(?:pleural|pleura) (?:effusions?|fluid|" + THICK + r"|plaques?|calcificat\w*|calcified|nodularity|reaction)", "2e", 3),
    (r"(?:calcified|calcific|thickened) pleura\w*", "2e", 3),
    (r"calcificat\w* (?:[a-z]+ ){0,5}pleura\b", "2e", 3),  # "calcification in the lower lobe pleura"
    (THICK + r" (?:of |in |at )?(?:the )?" + W + r"{0,4}(?:pleura\b|pleurae\b|fissures?\b)", "2e", 3),
    (r"(?:fissur\w*|interlobar) " + THICK + r"|thickened (?:\w+ )?fissures?|fissuritis|"
     r"fissures? (?:are |is |was |were )?(?:observed |seen |noted )?(?:as )?(?:thick|thickened)\b", "2e", 3),
    (r"(?:fluid|effusion) (?:[a-z]+ ){0,3}(?:pleural (?:leaves|layers|space|cavity)|fissures?)", "2e", 3),
    (r"effusions?", "2e", 3),
    (r"hydrothora\w*|hemothora\w*|empyema|fibrothora\w*|pleural plaques?|apical (?:pleural )?caps?", "2e", 3),
    (r"pleural|pleura", "2e", 1),
    # 2f honeycombing
    (r"honeycomb\w*(?: (?:cysts?|pattern|changes?|appearances?|lung))?", "2f", 3),
    # 2g pneumothorax
    (r"(?:hydro)?pneumothora\w*", "2g", 3),
    # 2h other focal: cysts, cavities, blebs, airway plugging or occlusion, distortion, other focal lesions
    (r"cysts?\b", "2h", 3),
    (r"cystic", "2h", 2),
    (r"cavit\w*", "2h", 3),
    (r"blebs?", "2h", 3),  # a focal subpleural air pocket; bullae (bullous emphysema) stay 1c
    (r"(?:architectural|structural|parenchymal) distortion|destroyed lung|lung destruction", "2h", 3),
    (r"bronchocele|mucoid impaction|mucus plug\w*|mucous plug\w*|impacted bronch\w*", "2h", 3),
    (r"(?:mucus|mucous|mucoid|intrabronchial|endobronchial) (?:densit\w+|secretion\w*|impaction|filling|material)|"
     r"secretion\w*|secretory", "2h", 3),
    # an airway that is shut or narrowed: "occluded bronchus", "the lower lobe bronchus is obliterated"
    (_SHUT + r" (?:of |in )?(?:the )?" + W + r"{0,3}" + _BRONCHUS, "2h", 3),
    (_BRONCHUS + r" " + W + r"{0,2}(?:is |are |was |were )?" + _SHUT, "2h", 3),
    (r"abscess\w*|pneumatocele\w*|infarct\w*|hematoma|contusion|fistula\w*|sequestration|aspergilloma|mycetoma", "2h", 3),
    (r"pericardial effusion", "2h", 3),
    (r"calcificat\w*|lucenc\w*", "2h", 2),
)
# fmt: on

COMPILED_CATEGORY_TERMS: tuple[tuple[re.Pattern[str], str, int], ...] = tuple(
    (re.compile(r"\b(?:" + p + r")"), cat, strength) for p, cat, strength in CATEGORY_TERMS
)
# The terms grouped by category, each group behind one search for any of its terms: a sentence names two or
# three categories, so most groups are skipped after one search instead of a dozen.
CATEGORY_TERM_GROUPS: tuple[tuple[re.Pattern[str], tuple[tuple[re.Pattern[str], str, int], ...]], ...] = (
    tuple(
        (
            re.compile(r"\b(?:" + "|".join(f"(?:{p})" for p, c, _ in CATEGORY_TERMS if c == cat) + r")"),
            tuple(t for t in COMPILED_CATEGORY_TERMS if t[1] == cat),
        )
        for cat in dict.fromkeys(c for _, c, _ in CATEGORY_TERMS)
    )
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
