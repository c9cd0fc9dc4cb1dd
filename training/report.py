"""Human- and machine-readable reports of an evaluation: ``report.json``, ``report.md``, ``report.html``,
``confusion.png`` and ``folds.png`` (the page and the per-fold chart: :mod:`training.report_html`).

Nothing here needs torch: a report can be re-rendered from its JSON alone. Files are written atomically
(a temporary file in the same folder, then a rename), so an interrupted run never leaves a half-written
file that a resumed run would trust.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from realtime.core.files import atomic_path, atomic_write_json, atomic_write_text
from training.report_html import figure_bytes, format_html, paper_line, plot_folds


def to_jsonable(value: Any) -> Any:
    """``value`` with numpy scalars/arrays, tuples and Paths turned into plain JSON types."""
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (Path, str)):  # str subclasses too (torch's TorchVersion)
        return str(value)
    return value


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` (its folder created) whole or not at all: the rule of :mod:`realtime.core.files`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, text)


def write_json_atomic(path: Path, data: Any) -> None:
    """``data`` (NumPy values and paths included: :func:`to_jsonable`) as indented JSON at ``path`` (its folder
    created), by :func:`realtime.core.files.atomic_write_json`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, to_jsonable(data))


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return "—" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]
    return lines


def format_markdown(report: Mapping[str, Any]) -> str:
    """``report.md``: summary, per-class table, confusion matrix (rows true, columns predicted), per-fold table."""
    classes = list(report["classes"])
    title = " ".join(str(report.get(k) or "") for k in ("dataset", "protocol")).strip() or "evaluation"
    evaluation = str(report.get("evaluation") or "leave-one-subject-out").capitalize()
    lines = [f"# {evaluation}: {title}", "", "The same report as a page: [report.html](report.html).", ""]
    if not report.get("complete", True):
        missing = ", ".join(report.get("missing_subjects", []))
        lines += [f"**Partial report**: folds not finished yet: {missing}.", ""]
    config = report.get("config") or {}
    if config:
        described = ", ".join(
            f"{key} {config[key]}"
            for key in ("input_kind", "attention", "loss", "gamma", "alpha", "epochs", "batch_size", "lr", "selection")
            if key in config
        )
        lines += [f"Configuration: {described}.", ""]
    if report.get("pretrained"):
        lines += [f"Initial weights: {report['pretrained']}.", ""]
    lines += ["## Summary", ""]
    lines += _table(
        ["samples", "subjects", "accuracy", "macro F1", "UF1", "UAR", "weighted F1"],
        [
            [
                report["n_samples"],
                report["n_subjects"],
                report["accuracy"],
                report["f1_macro"],
                report["uf1"],
                report["uar"],
                report["f1_weighted"],
            ]
        ],
    )
    lines += [
        "",
        "Accuracy is pooled over all folds (correct / total, the paper's eq. 11). Macro F1 = UF1: per-class F1 "
        "from TP/FP/FN pooled over all folds, averaged over classes with samples; UAR: mean per-class recall.",
        "",
        *paper_line(report),
        "## Per class",
        "",
    ]
    lines += _table(
        ["class", "support", "precision", "recall", "F1"],
        [[row["class"], row["support"], row["precision"], row["recall"], row["f1"]] for row in report["per_class"]],
    )
    lines += ["", "## Confusion matrix (rows: true class, columns: predicted class)", ""]
    cm = report["confusion_matrix"]
    lines += _table(["true \\ predicted", *classes], [[name, *cm[i]] for i, name in enumerate(classes)])
    lines += ["", "![confusion matrix: counts and row-normalised](confusion.png)"]
    calibration = report.get("calibration")
    if calibration:
        lines += [
            "",
            "## Calibration (temperature scaling on inner validation subjects)",
            "",
            f"Each fold fitted its softmax temperature on training subjects it held out of training (never the "
            f"test subject); median temperature {calibration['temperature']:.3f}. Expected calibration error "
            f"(10 confidence bins) on the held-out predictions:",
            "",
        ]
        lines += _table(
            ["", "ECE", "NLL"],
            [
                ["before (T = 1)", calibration["ece_before"], calibration["nll_before"]],
                ["after", calibration["ece_after"], calibration["nll_after"]],
            ],
        )
        lines += ["", "![reliability: accuracy against confidence](calibration.png)"]
    folds = report.get("folds") or []
    if folds:
        lines += ["", "## Per fold (the held-out subject)", "", "![accuracy per held-out subject](folds.png)", ""]
        lines += _table(
            ["subject", "test samples", "accuracy", "macro F1", "train samples", "seconds"],
            [
                [f["subject"], f["n_test"], f["accuracy"], f["f1"], f.get("n_train"), _fmt(f.get("seconds"), 1)]
                for f in folds
            ],
        )
        lines += ["", "Per-fold F1 averages over the classes present in that subject only (noisy; for reading)."]
    return "\n".join(lines) + "\n"


def plot_confusion(cm: Sequence[Sequence[int]], classes: Sequence[str], path: Path, title: str = "") -> None:
    """``confusion.png``: counts on the left, rows normalised to recall on the right (matplotlib, Agg)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    counts = np.asarray(cm, dtype=np.int64)
    row_sums = counts.sum(axis=1, keepdims=True)
    normalised = np.divide(counts, row_sums, out=np.zeros(counts.shape, dtype=np.float64), where=row_sums > 0)
    n = len(classes)
    side = max(4.0, 0.9 * n + 2.0)
    figure = Figure(figsize=(2 * side + 1, side + 0.8), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, 2)
    panels = ((counts, "counts", "d"), (normalised, "row-normalised (recall)", ".2f"))
    for axis, (values, name, fmt) in zip(axes, panels, strict=True):
        vmax = values.max() if values.size and values.max() > 0 else 1
        image = axis.imshow(values, cmap="Blues", vmin=0, vmax=vmax)
        axis.set_xticks(range(n), labels=list(classes), rotation=45, ha="right")
        axis.set_yticks(range(n), labels=list(classes))
        axis.set_xlabel("predicted")
        axis.set_ylabel("true")
        axis.set_title(name)
        for i in range(n):
            for j in range(n):
                colour = "white" if values[i, j] > 0.6 * vmax else "black"
                axis.text(j, i, format(values[i, j], fmt), ha="center", va="center", color=colour, fontsize=9)
        figure.colorbar(image, ax=axis, shrink=0.8)
    if title:
        figure.suptitle(title)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=120)


def write_report(report: Mapping[str, Any], out_dir: Path) -> None:
    """Write ``report.json``, ``report.md``, ``confusion.png``, ``folds.png`` (with folds) and the
    self-contained ``report.html`` (figures inline) into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out_dir / "report.json", report)
    write_text_atomic(out_dir / "report.md", format_markdown(report))
    title = " ".join(str(report.get(k) or "") for k in ("dataset", "protocol")).strip()
    title = f"{title}  accuracy {report['accuracy']:.3f}  UF1 {report['uf1']:.3f}  UAR {report['uar']:.3f}".strip()
    plot_confusion(report["confusion_matrix"], report["classes"], out_dir / "confusion.png", title=title)
    if not plot_folds(report, out_dir / "folds.png"):
        (out_dir / "folds.png").unlink(missing_ok=True)  # an older chart would not match this report
    calibration = report.get("calibration")
    if calibration:
        from training.calibration import plot_reliability

        plot_reliability(
            [
                ("before", calibration["bins_before"], calibration["ece_before"]),
                ("after temperature scaling", calibration["bins_after"], calibration["ece_after"]),
            ],
            out_dir / "calibration.png",
        )
    else:
        (out_dir / "calibration.png").unlink(missing_ok=True)
    figures = figure_bytes({"folds": out_dir / "folds.png", "confusion": out_dir / "confusion.png"})
    write_text_atomic(out_dir / "report.html", format_html(report, figures))


# Columns of the ablation table: (key in a row, header, how to print it).
_ABLATION_COLUMNS = (
    ("row", "#", str),
    ("model", "model", str),
    ("loss", "loss", str),
    ("transfer", "CK+ transfer", str),
    ("accuracy", "accuracy % (ours)", lambda v: f"{100 * v:.2f}"),
    ("paper_accuracy", "accuracy % (paper)", lambda v: f"{v:.2f}"),
    ("f1_macro", "F1 (ours)", lambda v: f"{v:.4f}"),
    ("paper_f1", "F1 (paper)", lambda v: f"{v:.4f}"),
    ("uf1", "UF1 (ours)", lambda v: f"{v:.4f}"),
    ("uar", "UAR (ours)", lambda v: f"{v:.4f}"),
)


def format_ablation_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """One markdown table: each row's configuration, our metrics and the paper's (``—`` where unknown).

    A row that was not run shows its ``status`` in place of our numbers, never a made-up value.
    """
    header = [title for _, title, _ in _ABLATION_COLUMNS]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    for row in rows:
        cells = []
        for key, _, fmt in _ABLATION_COLUMNS:
            value = row.get(key)
            if value is None:
                status = row.get("status", "")
                cells.append(status if key == "accuracy" and status not in ("", "done") else "—")
            else:
                cells.append(fmt(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_ablation_table(rows: Sequence[Mapping[str, Any]], out_path: Path, preamble: str = "") -> None:
    """Write the ablation table (see :func:`format_ablation_table`) as markdown to ``out_path``."""
    text = (preamble.rstrip() + "\n\n" if preamble else "") + format_ablation_table(rows)
    write_text_atomic(Path(out_path), text)
