"""Confidence that means something: temperature scaling (Guo et al. 2017) and how well calibrated it is.

The classifier's probabilities are softmax outputs; dividing the logits by one temperature T > 1 softens
them, T < 1 sharpens them, and the predicted class never changes. T is fitted by minimising the negative
log-likelihood on inner validation subjects (never the test subject). Since ``log p`` differs from the logits
only by a per-sample constant, T can be applied to probabilities directly
(:func:`realtime.core.model_contract.apply_temperature`, the one implementation the stream uses too).

The expected calibration error (ECE) bins predictions by confidence (top probability) and averages
|accuracy − confidence| over the bins, weighted by their share of samples; the reliability plot draws the
same bins.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from realtime.core.files import atomic_path
from realtime.core.model_contract import apply_temperature

TEMPERATURE_GRID = np.exp(np.linspace(np.log(0.05), np.log(20.0), 481))
ECE_BINS = 10


def negative_log_likelihood(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """Mean −log p(true class)."""
    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    return float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-12, None)).mean())


def fit_temperature(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """The temperature (from :data:`TEMPERATURE_GRID`, 0.05–20) that minimises the NLL of these samples;
    1.0 (no change) when there are none or when they do not determine it.

    They do not when the NLL is still falling at an end of the grid. The common case: every validation sample
    is classified correctly, so sharpening always lowers the NLL and the "best" temperature runs to 0, which
    would make every later answer, right or wrong, read as 100 %. Leaving the model's own probabilities is
    the honest choice then."""
    if len(labels) == 0:
        return 1.0
    losses = [negative_log_likelihood(apply_temperature(probabilities, t), labels) for t in TEMPERATURE_GRID]
    best = int(np.argmin(losses))
    if best in (0, len(TEMPERATURE_GRID) - 1):
        return 1.0
    return float(TEMPERATURE_GRID[best])


def reliability_bins(probabilities: np.ndarray, labels: np.ndarray, n_bins: int = ECE_BINS) -> list[dict[str, Any]]:
    """Equal-width confidence bins: each with its range, sample count, mean confidence and accuracy."""
    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    confidence, correct = p.max(axis=1), (p.argmax(axis=1) == y)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, n_bins - 1)
    bins = []
    for b in range(n_bins):
        inside = which == b
        count = int(inside.sum())
        bins.append(
            {
                "lower": float(edges[b]),
                "upper": float(edges[b + 1]),
                "count": count,
                "confidence": float(confidence[inside].mean()) if count else None,
                "accuracy": float(correct[inside].mean()) if count else None,
            }
        )
    return bins


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, n_bins: int = ECE_BINS) -> float:
    """ECE: Σ over confidence bins of (share of samples) × |accuracy − mean confidence|."""
    n = len(labels)
    if n == 0:
        return 0.0
    return float(
        sum(
            b["count"] / n * abs(b["accuracy"] - b["confidence"])
            for b in reliability_bins(probabilities, labels, n_bins)
            if b["count"]
        )
    )


def plot_reliability(curves: Sequence[tuple[str, Sequence[dict[str, Any]], float]], path: Path) -> None:
    """``calibration.png``: accuracy against confidence per bin for each (name, bins, ECE), beside the diagonal
    a perfectly calibrated model follows."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5.2, 5.0), layout="constrained")
    FigureCanvasAgg(figure)
    axis = figure.subplots()
    axis.plot([0, 1], [0, 1], color="grey", linestyle="--", label="perfect calibration")
    for name, bins, ece in curves:
        used = [b for b in bins if b["count"]]
        axis.plot(
            [b["confidence"] for b in used], [b["accuracy"] for b in used], marker="o", label=f"{name} (ECE {ece:.3f})"
        )
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1)
    axis.set_xlabel("confidence (top probability)")
    axis.set_ylabel("accuracy")
    axis.set_title("reliability on the held-out folds")
    axis.legend(loc="upper left")
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=110)


def calibration_summary(raw: np.ndarray, calibrated: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """The report's ``calibration`` object: ECE and NLL before and after, and both reliability curves."""
    return {
        "ece_before": expected_calibration_error(raw, labels),
        "ece_after": expected_calibration_error(calibrated, labels),
        "nll_before": negative_log_likelihood(raw, labels),
        "nll_after": negative_log_likelihood(calibrated, labels),
        "bins_before": reliability_bins(raw, labels),
        "bins_after": reliability_bins(calibrated, labels),
    }
