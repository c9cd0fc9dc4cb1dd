"""``report.html``: one self-contained page of a LOSO report, and the per-fold bar chart ``folds.png``.

The page has no external resource at all (no script, no stylesheet, no font, no link to load): figures are
inline base64 PNGs, the confusion matrix is an HTML table shaded by row-normalised recall, so it opens
offline, from a mail attachment or an artefact store, in any browser. Like the rest of
:mod:`training.report` it is rendered from the report's JSON alone (no torch).
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from realtime.core.files import atomic_path

# What the paper reports for its method (Xu, Zheng, Yang 2021, Table 3: dual attention + focal loss + CK+
# transfer; CASME II, 5 classes, leave one subject out). The same figures as row 6 of training.ablation.
PAPER = {"accuracy": 0.4497, "f1": 0.3784}
PAPER_SOURCE = "Xu, Zheng & Yang 2021 (dual attention + focal loss + CK+ transfer; CASME II, 5 classes, LOSO)"

FIGURE_DPI = 144  # folds.png: 1.5 image pixels per CSS pixel in the page

# The headline: (key in the report, label, explanation, key in PAPER or None)
_HEADLINE = (
    ("accuracy", "Accuracy", "correct / all samples, pooled over folds (the paper's eq. 11)", "accuracy"),
    ("uf1", "UF1", "unweighted F1: mean of per-class F1 from pooled TP/FP/FN", None),
    ("uar", "UAR", "unweighted average recall: mean per-class recall", None),
    ("f1_macro", "Macro F1", "mean of per-class F1 over classes with samples", "f1"),
)
_CONFIG_KEYS = (
    "attention",
    "loss",
    "gamma",
    "alpha",
    "epochs",
    "batch_size",
    "lr",
    "weight_decay",
    "optimizer",
    "lr_schedule",
    "image_size",
    "augment",
    "selection",
    "val_subjects",
    "seed",
    "device",
)


def compares_with_paper(report: Mapping[str, Any]) -> bool:
    """The paper's figures are for CASME II, 5 classes: shown beside only such a run."""
    return str(report.get("dataset", "")).lower() == "casme2" and str(report.get("protocol", "")) == "5class"


def _title(report: Mapping[str, Any]) -> str:
    return " ".join(str(report.get(k) or "") for k in ("dataset", "protocol")).strip() or "evaluation"


def _number(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _percent(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{100 * value:.{digits}f} %"


# --- the per-fold bar chart --------------------------------------------------------------------------------


def plot_folds(report: Mapping[str, Any], path: Path) -> bool:
    """``folds.png``: accuracy of each held-out subject as a bar labelled with its sample count, the pooled
    accuracy as a line (and the paper's, for a CASME II 5-class run). False (nothing written) without folds."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    folds = list(report.get("folds") or [])
    if not folds:
        return False
    names = [str(f["subject"]) for f in folds]
    values = np.asarray([float(f["accuracy"]) for f in folds])
    counts = [int(f["n_test"]) for f in folds]
    many = len(folds) > 12
    figure = Figure(figsize=(max(6.0, 0.38 * len(folds) + 2.5), 3.6), layout="constrained")
    FigureCanvasAgg(figure)
    axis = figure.subplots()
    bars = axis.bar(range(len(folds)), values, color="#4C78A8", width=0.7, zorder=2)
    for bar, n in zip(bars, counts, strict=True):
        axis.annotate(
            f"n={n}" if not many else str(n),
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            xytext=(0, 2),
            textcoords="offset points",
            ha="center",
            va="bottom",
            fontsize=7 if many else 8,
            color="#444444",
            bbox={"boxstyle": "square,pad=0.1", "facecolor": "white", "edgecolor": "none", "alpha": 0.85},
            zorder=4,
        )
    pooled = float(report["accuracy"])
    axis.axhline(pooled, color="#E45756", linestyle="--", linewidth=1.2, label=f"pooled {100 * pooled:.1f} %")
    if compares_with_paper(report):
        paper = PAPER["accuracy"]
        axis.axhline(paper, color="#54A24B", linestyle=":", linewidth=1.4, label=f"paper {100 * paper:.2f} %")
    axis.set_xticks(range(len(folds)), labels=names, rotation=60 if many else 0, ha="right" if many else "center")
    axis.set_ylim(0, 1.12)
    axis.set_yticks(np.linspace(0, 1, 6), labels=[f"{int(v * 100)} %" for v in np.linspace(0, 1, 6)])
    axis.set_ylabel("accuracy of the held-out subject")
    axis.set_xlabel("held-out subject" + (" (bar labels: test samples)" if many else ""))
    axis.grid(axis="y", color="#DDDDDD", zorder=0)
    axis.spines[["top", "right"]].set_visible(False)
    axis.legend(loc="upper right", fontsize=8, frameon=False, ncols=2)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=FIGURE_DPI)
    return True


# --- the page ----------------------------------------------------------------------------------------------

_STYLE = """
:root { --ink: #1f2328; --muted: #59636e; --line: #d1d9e0; --soft: #f6f8fa; --accent: #4c78a8; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: var(--ink); background: #fff; }
main { max-width: 1080px; margin: 0 auto; padding: 28px 28px 48px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 34px 0 10px; padding-bottom: 6px; border-bottom: 1px solid var(--line); }
p.lead { color: var(--muted); margin: 0 0 18px; }
.banner { background: #fff8c5; border: 1px solid #d4a72c; border-radius: 8px; padding: 10px 14px; margin: 12px 0; }
.cards { display: grid; grid-template-columns: repeat(4, 1fr); gap: 14px; }
@media (max-width: 760px) { .cards { grid-template-columns: 1fr 1fr; } }
.card { border: 1px solid var(--line); border-radius: 10px; padding: 14px 16px; background: var(--soft); }
.card .label { font-size: 13px; font-weight: 600; color: var(--muted); text-transform: uppercase;
               letter-spacing: .04em; }
.card .value { font-size: 30px; font-weight: 700; margin: 2px 0; font-variant-numeric: tabular-nums; }
.card .paper { font-size: 13px; color: var(--muted); }
.card .paper b { color: var(--ink); }
.card .hint { font-size: 12px; color: var(--muted); margin-top: 6px; }
.up { color: #1a7f37; } .down { color: #cf222e; } .paper span { white-space: nowrap; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { padding: 6px 10px; text-align: right; border-bottom: 1px solid var(--line); }
th:first-child, td:first-child { text-align: left; }
thead th { font-size: 13px; color: var(--muted); font-weight: 600; }
td.f1 { white-space: nowrap; }
.track { display: inline-block; width: 44px; height: 8px; border-radius: 4px; background: #e6ebf1;
         vertical-align: middle; margin-right: 8px; overflow: hidden; }
.track > span { display: block; height: 100%; background: var(--accent); }
.cm td.cell { width: 76px; height: 56px; text-align: center; border: 2px solid #fff; }
.cm td.cell b { display: block; font-size: 17px; }
.cm td.cell span { font-size: 12px; opacity: .85; }
.cm td.diag { outline: 2px solid #1f2328; outline-offset: -3px; }
.cm th.corner { font-weight: 400; font-size: 12px; color: var(--muted); }
.cm th.pred { text-align: center; }
.figure { display: block; max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 8px; }
.grid2 { display: grid; grid-template-columns: minmax(0, 1.25fr) minmax(0, 1fr); gap: 32px; align-items: start; }
.grid2 > section { min-width: 0; overflow-x: auto; }
.grid2 > section:last-child table { width: 100%; }
.grid2 > section:last-child th, .grid2 > section:last-child td { padding: 6px 7px; }
@media (max-width: 1000px) { .grid2 { grid-template-columns: minmax(0, 1fr); } }
.kv td { text-align: left; } .kv td:first-child { color: var(--muted); padding-right: 18px; }
details summary { cursor: pointer; color: var(--accent); margin: 8px 0; }
.note { font-size: 13px; color: var(--muted); }
code { font: 13px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _png_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _img(data: bytes, alt: str, dpi: int = FIGURE_DPI) -> str:
    """An inline PNG shown at its size in CSS pixels (96 per inch): sharp on high-density screens, text at
    the size it was drawn; narrower windows shrink it."""
    width = int.from_bytes(data[16:20], "big") if data[:8] == b"\x89PNG\r\n\x1a\n" else 0
    size = f' width="{round(width * 96 / dpi)}"' if width else ""
    return f'<img class="figure" alt="{_e(alt)}"{size} src="{_png_uri(data)}">'


def _card(report: Mapping[str, Any], key: str, label: str, hint: str, paper_key: str | None) -> str:
    value = report.get(key)
    shown = _percent(value) if key == "accuracy" else _number(value)
    paper = ""
    if paper_key and compares_with_paper(report) and value is not None:
        reference = PAPER[paper_key]
        if key == "accuracy":
            delta, unit, ref_text = 100 * (value - reference), " pt", _percent(reference)
        else:
            delta, unit, ref_text = value - reference, "", _number(reference)
        sign = "up" if delta >= 0 else "down"
        paper = (
            f'<div class="paper">paper <b>{_e(ref_text)}</b> · <span class="{sign}">{delta:+.2f}{unit}</span></div>'
            if key == "accuracy"
            else f'<div class="paper">paper <b>{_e(ref_text)}</b> · <span class="{sign}">{delta:+.4f}</span></div>'
        )
    return (
        f'<div class="card" data-metric="{_e(key)}"><div class="label">{_e(label)}</div>'
        f'<div class="value">{_e(shown)}</div>{paper}<div class="hint">{_e(hint)}</div></div>'
    )


def _shade(fraction: float) -> tuple[str, str]:
    """Background (white → accent blue) and a readable text colour for a fraction in [0, 1]."""
    f = min(max(fraction, 0.0), 1.0)
    start, end = np.array([247, 251, 255]), np.array([8, 69, 148])
    r, g, b = (start + (end - start) * f).round().astype(int)
    return f"rgb({r},{g},{b})", "#ffffff" if f > 0.55 else "#1f2328"


def _confusion_table(report: Mapping[str, Any]) -> str:
    classes = list(report["classes"])
    counts = np.asarray(report["confusion_matrix"], dtype=np.int64)
    rows = counts.sum(axis=1)
    head = "".join(f'<th class="pred" scope="col">{_e(c)}</th>' for c in classes)
    body = []
    for i, name in enumerate(classes):
        cells = []
        for j in range(len(classes)):
            fraction = counts[i, j] / rows[i] if rows[i] else 0.0
            background, colour = _shade(fraction)
            diag = " diag" if i == j else ""
            cells.append(
                f'<td class="cell{diag}" style="background:{background};color:{colour}" '
                f'title="true {_e(name)}, predicted {_e(classes[j])}: {counts[i, j]} of {rows[i]}">'
                f"<b>{counts[i, j]}</b><span>{100 * fraction:.0f} %</span></td>"
            )
        body.append(f'<tr><th scope="row">{_e(name)} <span class="note">({rows[i]})</span></th>{"".join(cells)}</tr>')
    return (
        '<table class="cm"><thead><tr><th class="corner">true ↓ · predicted →</th>'
        f"{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
        '<p class="note">Counts, and in small type the share of the true class’s samples (recall on the '
        "diagonal); shading follows that share.</p>"
    )


def _per_class_table(report: Mapping[str, Any]) -> str:
    rows = []
    for row in report["per_class"]:
        f1 = row.get("f1")
        width = 0 if f1 is None or (isinstance(f1, float) and math.isnan(f1)) else round(100 * f1)
        rows.append(
            f"<tr><td>{_e(row['class'])}</td><td>{_e(row['support'])}</td><td>{_number(row['precision'])}</td>"
            f"<td>{_number(row['recall'])}</td>"
            f'<td class="f1"><span class="track"><span style="width:{width}%"></span></span>{_number(f1)}</td></tr>'
        )
    return (
        "<table><thead><tr><th>class</th><th>support</th><th>precision</th><th>recall</th><th>F1</th></tr>"
        f"</thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _folds_table(report: Mapping[str, Any]) -> str:
    rows = "".join(
        f"<tr><td>{_e(f['subject'])}</td><td>{_e(f['n_test'])}</td><td>{_percent(f['accuracy'], 1)}</td>"
        f"<td>{_number(f.get('f1'))}</td><td>{_e(f.get('n_train', '—'))}</td>"
        f"<td>{_number(f.get('seconds'), 1)}</td></tr>"
        for f in report.get("folds") or []
    )
    return (
        "<table><thead><tr><th>held-out subject</th><th>test samples</th><th>accuracy</th><th>macro F1</th>"
        f"<th>train samples</th><th>seconds</th></tr></thead><tbody>{rows}</tbody></table>"
        '<p class="note">Per-fold F1 averages over the classes present in that subject only (noisy; for '
        "reading).</p>"
    )


def _config_table(report: Mapping[str, Any]) -> str:
    config = dict(report.get("config") or {})
    items: list[tuple[str, Any]] = [
        ("data set", _title(report)),
        ("evaluation", report.get("evaluation", "leave-one-subject-out")),
        ("classes", ", ".join(map(str, report.get("classes", [])))),
        ("initial weights", report.get("pretrained") or "none"),
    ]
    items += [(key, config.pop(key)) for key in _CONFIG_KEYS if key in config]
    items += sorted(config.items())
    versions = report.get("versions") or {}
    if versions:
        items.append(("versions", ", ".join(f"{k} {v}" for k, v in versions.items() if v is not None)))
    rows = "".join(
        f"<tr><td>{_e(k)}</td><td><code>{_e(', '.join(map(str, v)) if isinstance(v, list) else v)}</code></td></tr>"
        for k, v in items
    )
    return f'<table class="kv"><tbody>{rows}</tbody></table>'


def format_html(report: Mapping[str, Any], figures: Mapping[str, bytes] | None = None) -> str:
    """The page (a str). ``figures``: PNG bytes to inline by name (``folds`` is shown when given)."""
    figures = dict(figures or {})
    title = _title(report)
    lead = (
        f"{_e(report.get('evaluation', 'leave-one-subject-out'))} · {_e(report['n_samples'])} samples · "
        f"{_e(report['n_subjects'])} held-out subjects · {len(report['classes'])} classes"
    )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>LOSO report — {_e(title)}</title><style>{_STYLE}</style></head><body><main>",
        f"<h1>Leave-one-subject-out: {_e(title)}</h1>",
        f'<p class="lead">{lead}</p>',
    ]
    if not report.get("complete", True):
        missing = ", ".join(map(str, report.get("missing_subjects", [])))
        parts.append(
            f'<div class="banner"><b>Partial report</b>: folds not finished yet: {_e(missing)}. The figures '
            "below cover the finished folds only.</div>"
        )
    parts.append('<section class="cards" id="headline">')
    parts += [_card(report, *spec) for spec in _HEADLINE]
    parts.append("</section>")
    if compares_with_paper(report):
        parts.append(f'<p class="note">Paper figures: {_e(PAPER_SOURCE)}.</p>')
    else:
        parts.append(
            '<p class="note">The paper reports CASME II 5-class results only, so none are shown beside this run.</p>'
        )
    parts.append('<div class="grid2"><section><h2>Confusion matrix</h2>')
    parts.append(_confusion_table(report))
    if "confusion" in figures:
        parts.append(
            "<details><summary>as a figure (counts and row-normalised)</summary>"
            f"{_img(figures['confusion'], 'confusion matrix', dpi=120)}</details>"
        )
    parts.append("</section><section><h2>Per class</h2>")
    parts.append(_per_class_table(report))
    parts.append(
        f'<p class="note">Weighted F1 {_number(report.get("f1_weighted"))}. Precision, recall and F1 from '
        "counts pooled over all folds.</p></section></div>"
    )
    if report.get("folds"):
        parts.append('<section id="folds"><h2>Per fold: accuracy of each held-out subject</h2>')
        if "folds" in figures:
            parts.append(_img(figures["folds"], "accuracy per held-out subject"))
        parts.append("<details><summary>table of the folds</summary>")
        parts.append(_folds_table(report))
        parts.append("</details></section>")
    parts.append('<section id="config"><h2>Run configuration</h2>')
    parts.append(_config_table(report))
    parts.append(
        '<p class="note">Every prediction, with its probabilities, is in <code>report.json</code> beside this '
        "page; each fold’s training history in <code>folds/</code>.</p></section>"
    )
    parts.append("</main></body></html>")
    return "\n".join(parts) + "\n"


def figure_bytes(paths: Mapping[str, Path]) -> dict[str, bytes]:
    """The PNG files that exist, read, by name."""
    return {name: Path(path).read_bytes() for name, path in paths.items() if Path(path).is_file()}


def paper_line(report: Mapping[str, Any]) -> list[str]:
    """The markdown line that sets the run beside the paper (empty for runs the paper has no figure for)."""
    if not compares_with_paper(report):
        return []
    return [
        f"The paper reports accuracy {100 * PAPER['accuracy']:.2f} % and F1 {PAPER['f1']:.4f} ({PAPER_SOURCE}); "
        f"this run: accuracy {_percent(report['accuracy'])}, macro F1 {_number(report['f1_macro'])}.",
        "",
    ]
