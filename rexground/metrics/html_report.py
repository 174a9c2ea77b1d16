"""``rexground evaluate --html report.html``: the evaluation as one self-contained page a person would rather
look at than a JSON file: the summary and per-category tables, a plot of Dice per category (focal against
diffuse), the distribution of per-finding Dice and, when the CTs are given, overlays of the worst findings
(prediction and ground truth in two colours, with their sentences).

One file, nothing external: the figures are SVG written here and PNG overlays (pillow, through
:mod:`rexground.overlay`) embedded as base64, styles inline, no script. It opens from a mail attachment or
an artefact store as well as from disk.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from rexground.categories import CATEGORY_NAMES, FOCAL_CATEGORIES
from rexground.metrics.aggregate import GroupScore, Summary, scored_cases
from rexground.metrics.official import HIT_THRESHOLD
from rexground.metrics.results import CaseResult, FindingResult

FOCAL_COLOUR = "#d1495b"
DIFFUSE_COLOUR = "#2e86ab"
PREDICTION_LABEL = "prediction"
GROUND_TRUTH_LABEL = "ground truth"
WORST_FINDINGS = 6

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2em auto; max-width: 1180px;
       color: #222; background: #fff; padding: 0 1em; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; } h2 { font-size: 1.2em; margin-top: 1.8em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.92em; }
th, td { padding: 0.25em 0.7em; border-bottom: 1px solid #eee; text-align: right; }
th { background: #f4f4f4; } td.l, th.l { text-align: left; }
.lead { font-size: 1.1em; } .big { font-size: 1.6em; font-weight: 600; }
.muted { color: #666; font-size: 0.9em; } .warn { background: #fff3cd; padding: 0.6em 1em; border-radius: 4px; }
.case { margin: 1.2em 0 2em; } .case img { max-width: 100%; border: 1px solid #ccc; }
.swatch { display: inline-block; width: 0.9em; height: 0.9em; vertical-align: middle; margin: 0 0.3em 0 1em; }
code { background: #f4f4f4; padding: 0 0.25em; }
"""


@dataclass(frozen=True)
class CaseFiles:
    """Where one case's files are: ground truth, prediction and (for overlays) the CT."""

    gt_path: Path
    pred_path: Path
    ct_path: Path | None = None


def _fmt(value: float | None, digits: int = 3) -> str:
    return "&ndash;" if value is None else f"{value:.{digits}f}"


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _is_focal(code: str) -> bool:
    return code in FOCAL_CATEGORIES


# --- figures (SVG) -----------------------------------------------------------------------------------------
def dice_per_category_svg(per_category: Mapping[str, GroupScore]) -> str:
    """Horizontal bars: mean Dice of each category, coloured focal or diffuse, with the number of findings."""
    rows = [(code, g) for code, g in per_category.items() if g.n_findings]
    label_w, bar_w, row_h, top = 300, 520, 24, 30
    height = top + row_h * len(rows) + 30
    width = label_w + bar_w + 70
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="Dice per category">',
        f'<text x="{label_w}" y="16" font-size="12">Dice per category</text>',
    ]
    for tick in np.linspace(0, 1, 6):
        x = label_w + tick * bar_w
        out.append(
            f'<line x1="{x:.1f}" y1="{top - 6}" x2="{x:.1f}" y2="{height - 24}" stroke="#ddd"/>'
            f'<text x="{x:.1f}" y="{height - 8}" font-size="11" text-anchor="middle">{tick:.1f}</text>'
        )
    for r, (code, g) in enumerate(rows):
        y = top + r * row_h
        colour = FOCAL_COLOUR if _is_focal(code) else DIFFUSE_COLOUR
        name = CATEGORY_NAMES.get(code, code)
        out.append(
            f'<text x="{label_w - 8}" y="{y + 15}" font-size="12" text-anchor="end">{_e(code)} {_e(name)} '
            f"(n={g.n_findings})</text>"
            f'<rect x="{label_w}" y="{y + 3}" width="{max(g.dice * bar_w, 1.0):.1f}" height="{row_h - 7}" '
            f'fill="{colour}"><title>{_e(code)}: Dice {g.dice:.3f}, {g.n_findings} findings</title></rect>'
            f'<text x="{label_w + g.dice * bar_w + 6:.1f}" y="{y + 15}" font-size="11">{g.dice:.3f}</text>'
        )
    out.append("</svg>")
    return "".join(out)


def dice_histogram_svg(findings: Sequence[FindingResult], bins: int = 20) -> str:
    """The distribution of per-finding Dice: stacked focal and diffuse counts per bin, the hit threshold."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    focal = np.histogram([f.dice for f in findings if _is_focal(f.category)], bins=edges)[0]
    diffuse = np.histogram([f.dice for f in findings if not _is_focal(f.category)], bins=edges)[0]
    peak = max(int((focal + diffuse).max(initial=0)), 1)
    left, plot_w, plot_h, top = 50, 640, 220, 24
    width, height = left + plot_w + 20, top + plot_h + 44
    bin_w = plot_w / bins
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="Distribution of per-finding Dice">',
        f'<text x="{left}" y="14" font-size="12">findings per Dice bin (width {1 / bins:.2f})</text>',
    ]
    for tick in np.unique(np.linspace(0, peak, min(peak, 5) + 1).round().astype(int)):
        y = top + plot_h - tick / peak * plot_h
        out.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="#eee"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end">{tick}</text>'
        )
    for b in range(bins):
        x = left + b * bin_w
        base = top + plot_h
        for count, colour, kind in (
            (diffuse[b], DIFFUSE_COLOUR, "diffuse"),
            (focal[b], FOCAL_COLOUR, "focal"),
        ):
            if count:
                h = count / peak * plot_h
                base -= h
                out.append(
                    f'<rect x="{x + 1:.1f}" y="{base:.1f}" width="{bin_w - 2:.1f}" height="{h:.1f}" fill="{colour}">'
                    f"<title>{kind}: {count} finding(s) with Dice {edges[b]:.2f}-{edges[b + 1]:.2f}</title></rect>"
                )
    for tick in np.linspace(0, 1, 6):
        x = left + tick * plot_w
        out.append(
            f'<text x="{x:.1f}" y="{top + plot_h + 16}" font-size="11" text-anchor="middle">{tick:.1f}</text>'
        )
    hit_x = left + HIT_THRESHOLD * plot_w  # the official hit threshold, drawn on the distribution
    out.append(
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#333"/>'
        f'<line x1="{hit_x:.1f}" y1="{top}" x2="{hit_x:.1f}" y2="{top + plot_h}" stroke="#333" '
        f'stroke-dasharray="4 3"/><text x="{hit_x + 4:.1f}" y="{top + 10}" font-size="11">hit (Dice &#8805; 0.1)</text>'
        f'<text x="{left + plot_w / 2}" y="{height - 4}" font-size="12" text-anchor="middle">per-finding Dice</text>'
        "</svg>"
    )
    return "".join(out)


def _legend() -> str:
    return (
        f'<p class="muted"><span class="swatch" style="background:{FOCAL_COLOUR}"></span>focal (2a-2h)'
        f'<span class="swatch" style="background:{DIFFUSE_COLOUR}"></span>diffuse (1a-1f)</p>'
    )


# --- worst findings ----------------------------------------------------------------------------------------
def _worst(results: Sequence[CaseResult], n: int) -> list[tuple[CaseResult, FindingResult]]:
    """The ``n`` scored findings with the lowest Dice (a prediction file exists), larger GT first on ties."""
    pairs = [(c, f) for c in results if c.status == "ok" for f in c.findings if f.gt_voxels > 0]
    pairs.sort(key=lambda p: (p[1].dice, -p[1].gt_voxels))
    return pairs[:n]


def _case_arrays(files: CaseFiles) -> tuple:
    """One case's CT, raw ground truth and raw prediction, read (and integrity-checked) once for all of its
    findings that the report shows."""
    from rexground.io import read_ct, read_mask_raw

    if files.ct_path is None:
        raise ValueError("no CT")
    return read_ct(files.ct_path), read_mask_raw(files.gt_path), read_mask_raw(files.pred_path)


def overlay_png(ct, gt_raw: np.ndarray, pred_raw: np.ndarray, channel: int, sentence: str) -> bytes:
    """Axial, coronal and sagittal views through the ground truth of one finding channel: the prediction in
    the overlay's first colour, the ground truth in its second."""
    from rexground.overlay import _centre_voxel, render_overlay

    size = ct.geometry.size
    for what, raw in (("ground truth", gt_raw), ("prediction", pred_raw)):
        if raw.ndim != 4 or tuple(raw.shape[1:]) != size or channel >= raw.shape[0]:
            raise ValueError(f"{what} shape {raw.shape} does not fit the CT {size}")
    gt = ct.geometry.to_canonical((gt_raw[channel] > 0).astype(np.uint8))
    pred = ct.geometry.to_canonical((np.asarray(pred_raw[channel]).astype(np.uint8) > 0).astype(np.uint8))
    image = render_overlay(
        ct.hu,
        np.stack([pred, gt]),
        ct.spacing_zyx,
        ["as submitted", sentence],
        centre_zyx=_centre_voxel(gt[None]),
        geometry=ct.geometry,
        channels=[PREDICTION_LABEL, GROUND_TRUTH_LABEL],
    )
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def _overlays(
    worst: Sequence[tuple[CaseResult, FindingResult]],
    sentences: Mapping[tuple[str, str], str],
    files: Mapping[str, CaseFiles],
) -> dict[tuple[str, str], bytes | Exception]:
    """Each shown finding's overlay PNG, or why there is none; each case's files are read once (a case can
    hold several of the worst findings) and only one case is held in memory at a time."""
    by_case: dict[str, list[FindingResult]] = {}
    for case, finding in worst:
        by_case.setdefault(case.name, []).append(finding)
    out: dict[tuple[str, str], bytes | Exception] = {}
    for name, findings in by_case.items():
        case_files = files.get(name)
        try:  # one unreadable file must not cost the whole report
            if case_files is None or case_files.ct_path is None:
                raise ValueError("the CT was not found under --ct-dir")
            arrays = _case_arrays(case_files)
        except Exception as exc:
            out.update({(name, f.key): exc for f in findings})
            continue
        for finding in findings:
            sentence = sentences.get((name, finding.key), "")
            try:
                out[(name, finding.key)] = overlay_png(*arrays, finding.index, sentence)
            except Exception as exc:
                out[(name, finding.key)] = exc
        del arrays
    return out


def _worst_section(
    results: Sequence[CaseResult],
    sentences: Mapping[tuple[str, str], str],
    files: Mapping[str, CaseFiles],
    n: int,
) -> str:
    worst = _worst(results, n)
    if not worst:
        return "<p>No scored finding has a ground-truth mask to show.</p>"
    parts = [
        f"<p>The {len(worst)} scored findings with the lowest Dice (among cases with a prediction file): "
        f"prediction in red, ground truth in blue, views through the ground truth.</p>"
    ]
    overlays = _overlays(worst, sentences, files)
    for case, finding in worst:
        sentence = sentences.get((case.name, finding.key), "")
        head = (
            f"<h3>{_e(case.name)} &middot; finding {_e(finding.key)} &middot; {_e(finding.category)} "
            f"{_e(CATEGORY_NAMES.get(finding.category, ''))} &middot; Dice {finding.dice:.3f}</h3>"
            f"<p>&ldquo;{_e(sentence) or '<i>(no sentence in the dataset)</i>'}&rdquo;<br>"
            f'<span class="muted">ground truth {finding.gt_voxels} voxels, prediction {finding.pred_voxels} '
            f"voxels after the official component filter</span></p>"
        )
        overlay = overlays[(case.name, finding.key)]
        if isinstance(overlay, Exception):
            body = f'<p class="warn">no overlay: {_e(overlay)}</p>'
        else:
            png = base64.b64encode(overlay).decode("ascii")
            body = f'<img alt="overlay of {_e(case.name)} finding {_e(finding.key)}" src="data:image/png;base64,{png}">'
        parts.append(f'<div class="case">{head}{body}</div>')
    return "".join(parts)


# --- the page ----------------------------------------------------------------------------------------------
def _summary_table(s: Summary) -> str:
    rows = [
        ("Dice per case (the leaderboard number)", _fmt(s.dice_per_case, 4)),
        ("Dice per finding", _fmt(s.dice_per_finding, 4)),
        ("Hit rate (Dice &#8805; 0.1)", _fmt(s.hit_rate)),
    ]
    if s.mode == "full":
        rows += [
            (
                "Instance precision / recall / F1",
                f"{_fmt(s.instance_precision)} / {_fmt(s.instance_recall)} / {_fmt(s.instance_f1)} "
                f"(TP {s.tp}, FP {s.fp}, FN {s.fn})",
            ),
            ("Mean Dice of matched instances", _fmt(s.mean_matched_dice)),
        ]
    d = s.distance
    if d.available:
        rows.append(
            ("Distance precision / recall / F1", f"{_fmt(d.precision)} / {_fmt(d.recall)} / {_fmt(d.f1)}")
        )
    else:
        rows.append(("Distance metrics", f"absent: {_e(d.reason)}"))
    body = "".join(f'<tr><td class="l">{k}</td><td class="l">{v}</td></tr>' for k, v in rows)
    return f"<table>{body}</table>"


def _category_table(s: Summary) -> str:
    full = s.mode == "full"
    head = "<tr><th class='l'>code</th><th class='l'>category</th><th class='l'>kind</th><th>findings</th>"
    head += "<th>Dice</th><th>hit rate</th>" + ("<th>TP</th><th>FP</th><th>FN</th>" if full else "") + "</tr>"
    rows = []
    groups: list[tuple[str, str, str, GroupScore]] = [
        (code, CATEGORY_NAMES.get(code, code), "focal" if _is_focal(code) else "diffuse", g)
        for code, g in s.per_category.items()
    ]
    if s.focal is not None:
        groups.append(("focal", "all focal findings", "", s.focal))
    if s.non_focal is not None:
        groups.append(("diffuse", "all diffuse findings", "", s.non_focal))
    for code, name, kind, g in groups:
        counts = f"<td>{g.tp}</td><td>{g.fp}</td><td>{g.fn}</td>" if full else ""
        rows.append(
            f'<tr><td class="l">{_e(code)}</td><td class="l">{_e(name)}</td><td class="l">{kind}</td>'
            f"<td>{g.n_findings}</td><td>{g.dice:.3f}</td><td>{g.hit_rate:.3f}</td>{counts}</tr>"
        )
    return f"<table>{head}{''.join(rows)}</table>"


def render_html_report(
    summary: Summary,
    results: Sequence[CaseResult],
    *,
    sentences: Mapping[tuple[str, str], str] | None = None,
    files: Mapping[str, CaseFiles] | None = None,
    settings: Mapping[str, Any] | None = None,
    worst: int = WORST_FINDINGS,
) -> str:
    """The page as a string. ``sentences``: (case name, finding key) -> the finding's text; ``files``: each
    case's files, whose CTs make the worst-findings overlays (the section says how to get them otherwise)."""
    sentences = sentences or {}
    settings = dict(settings or {})
    s = summary
    scored = scored_cases(results, s.missing_policy)
    findings = [f for c in scored for f in c.findings]
    errors = [r for r in results if r.status == "error"]
    missing = [r.name for r in results if r.status == "missing"]
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>ReXGrounding evaluation: {_e(settings.get('split', ''))}</title><style>{_STYLE}</style></head><body>",
        "<h1>ReXGrounding evaluation</h1>",
        f"<p class='muted'>{when} &middot; split <code>{_e(settings.get('split', '?'))}</code> &middot; "
        f"predictions <code>{_e(settings.get('pred_dir', '?'))}</code> &middot; ground truth "
        f"<code>{_e(settings.get('gt_dir', '?'))}</code> &middot; {s.mode}, missing predictions "
        f"{'score 0' if s.missing_policy == 'zero' else 'dropped'}</p>",
        f"<p class='lead'>{s.n_cases} case(s) and {s.n_findings} finding(s) scored; {s.n_missing} prediction(s) "
        f"missing, {s.n_errors} case(s) with errors (not scored).</p>",
    ]
    if errors:
        items = "".join(f"<li><code>{_e(r.name)}</code>: {_e(r.error)}</li>" for r in errors[:50])
        more = f"<li>... and {len(errors) - 50} more</li>" if len(errors) > 50 else ""
        parts.append(
            f"<div class='warn'><b>Errors</b> (these cases are not scored):<ul>{items}{more}</ul></div>"
        )
    if not findings:
        parts.append(
            "<p class='warn big'>No finding was scored: there are no metrics to report.</p></body></html>"
        )
        return "".join(parts)
    parts += [
        f"<p><span class='big'>{s.dice_per_case:.4f}</span> Dice per case (the leaderboard number)</p>",
        "<h2>Summary</h2>",
        _summary_table(s),
        "<h2>Per category</h2>",
        _category_table(s),
        _legend(),
        dice_per_category_svg(s.per_category),
        "<h2>Distribution of per-finding Dice</h2>",
        _legend(),
        dice_histogram_svg(findings),
        "<h2>Worst findings</h2>",
    ]
    if files and any(f.ct_path is not None for f in files.values()):
        parts.append(_worst_section(results, sentences, files, worst))
    else:
        parts.append(
            "<p>Overlays of the worst findings need the CTs: run <code>rexground evaluate ... --ct-dir CT_ROOT "
            "--html report.html</code>.</p>"
        )
        rows = "".join(
            f"<tr><td class='l'>{_e(c.name)}</td><td>{_e(f.key)}</td><td class='l'>{_e(f.category)}</td>"
            f"<td>{f.dice:.3f}</td><td class='l'>{_e(sentences.get((c.name, f.key), ''))}</td></tr>"
            for c, f in _worst(results, worst)
        )
        parts.append(
            f"<table><tr><th class='l'>case</th><th>finding</th><th class='l'>category</th><th>Dice</th>"
            f"<th class='l'>sentence</th></tr>{rows}</table>"
        )
    if missing:
        shown = ", ".join(f"<code>{_e(n)}</code>" for n in missing[:30])
        parts.append(
            f"<h2>Missing predictions ({len(missing)})</h2><p>{shown}{' ...' if len(missing) > 30 else ''}</p>"
        )
    parts.append("</body></html>")
    return "".join(parts)


def write_html_report(
    path: str | Path, summary: Summary, results: Sequence[CaseResult], **kwargs: Any
) -> Path:
    """Render (see :func:`render_html_report`) and write the page atomically."""
    from rexground.io import atomic_path

    path = Path(path)
    page = render_html_report(summary, results, **kwargs)
    with atomic_path(path) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return path
