"""Classification metrics for micro-expression evaluation, in plain numpy (no scikit-learn needed).

Conventions, stated once and used everywhere:

* The confusion matrix ``cm`` has one row per TRUE class and one column per PREDICTED class:
  ``cm[i, j]`` counts samples of class i predicted as j. For class c, TP = cm[c, c], FP = column sum − TP,
  FN = row sum − TP, support = row sum.
* Accuracy is the paper's eq. 11: correct / total over every sample (pooled over LOSO folds).
* Precision_c = TP / (TP + FP), 0 when the class is never predicted (scikit-learn's ``zero_division=0``).
  Recall_c = TP / (TP + FN), 0 when the class has no support. F1_c = 2·TP / (2·TP + FP + FN), the
  harmonic mean of the two, 0 when TP = FP = FN = 0.
* Classes with zero support (no true sample) are LEFT OUT of every average below: their recall is
  undefined, and counting them as 0 would punish a model for a class the data lacks. Their per-class
  entries are still reported (precision/recall/F1 = 0, support = 0). This differs from scikit-learn's
  ``f1_score(average="macro")`` without ``labels``, which averages over classes present in ``y_true`` OR
  ``y_pred``: a never-true class that is predicted there counts with F1 = 0.
* Macro F1 = mean of F1_c over classes with support. UAR (unweighted average recall, MEGC) = mean of
  recall_c over classes with support. Weighted F1 = Σ support_c·F1_c / Σ support_c.
* UF1 (MEGC's unweighted F1) pools TP/FP/FN over all LOSO folds first and then averages the per-class
  F1 over classes: computed from the pooled confusion matrix it IS the macro F1 above (the same numbers
  in the same formula), which :func:`uf1` computes on its own from TP/FP/FN so tests can check the
  identity. MEGC divides by the number of classes C; on its composite data every class has support, where
  the two agree. It is not the mean of per-fold F1s (that average is noisier and biased low, since most
  folds hold only two or three classes).
* Spotting (MEGC): a spotted interval is a hit when its IoU with a true interval is at least 0.5, each true
  interval matched at most once, best IoU first (:func:`megc_match`); intervals are (onset, offset) frames,
  both ends included. P, R and F1 pool the hits, spots and true intervals over clips; their uncertainty is
  a bootstrap over clips (:func:`spotting_f1_interval`): the clips, not the events, are the independent units.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def confusion_matrix(
    y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray, num_classes: int
) -> np.ndarray:
    """Counts, rows = true class, columns = predicted class, shape (num_classes, num_classes), int64."""
    true = np.asarray(y_true, dtype=np.int64).ravel()
    pred = np.asarray(y_pred, dtype=np.int64).ravel()
    if true.shape != pred.shape:
        raise ValueError(f"y_true has {true.size} labels but y_pred has {pred.size}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be positive, got {num_classes}")
    for name, values in (("y_true", true), ("y_pred", pred)):
        if values.size and (values.min() < 0 or values.max() >= num_classes):
            raise ValueError(f"{name} holds a class index outside 0..{num_classes - 1}")
    counts = np.bincount(true * num_classes + pred, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes).astype(np.int64)


def _check_cm(cm: np.ndarray) -> np.ndarray:
    cm = np.asarray(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"a confusion matrix must be square, got shape {cm.shape}")
    return cm.astype(np.int64)


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, 0 where the denominator is 0."""
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    out = np.zeros_like(numerator)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def accuracy(y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray) -> float:
    """Correct / total (eq. 11 of the paper); raises on empty input rather than inventing a number."""
    true = np.asarray(y_true).ravel()
    pred = np.asarray(y_pred).ravel()
    if true.shape != pred.shape:
        raise ValueError(f"y_true has {true.size} labels but y_pred has {pred.size}")
    if true.size == 0:
        raise ValueError("accuracy of an empty set is undefined")
    return float(np.mean(true == pred))


def per_class_scores(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Per-class TP, FP, FN, support (int) and precision, recall, F1 (float) from a confusion matrix."""
    cm = _check_cm(cm)
    tp = np.diag(cm)
    fp = cm.sum(axis=0) - tp
    fn = cm.sum(axis=1) - tp
    support = cm.sum(axis=1)
    return {
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "support": support,
        "precision": _safe_divide(tp, tp + fp),
        "recall": _safe_divide(tp, tp + fn),
        "f1": _safe_divide(2 * tp, 2 * tp + fp + fn),
    }


def _mean_over_supported(values: np.ndarray, support: np.ndarray) -> float:
    present = support > 0
    if not present.any():
        raise ValueError("no class has any sample: the average is undefined")
    return float(np.mean(values[present]))


def f1_macro(cm: np.ndarray) -> float:
    """Mean per-class F1 over the classes with support (see the module docstring)."""
    scores = per_class_scores(cm)
    return _mean_over_supported(scores["f1"], scores["support"])


def uf1(cm: np.ndarray) -> float:
    """MEGC's UF1 from a confusion matrix pooled over all folds: Σ_c 2TP_c / (2TP_c + FP_c + FN_c), averaged
    over classes with support. Written out from TP/FP/FN on purpose; equal to :func:`f1_macro`."""
    cm = _check_cm(cm)
    values = []
    for c in range(cm.shape[0]):
        tp = int(cm[c, c])
        fp = int(cm[:, c].sum()) - tp
        fn = int(cm[c, :].sum()) - tp
        if tp + fn == 0:  # no support: left out
            continue
        values.append(2 * tp / (2 * tp + fp + fn))
    if not values:
        raise ValueError("no class has any sample: UF1 is undefined")
    return float(np.mean(values))


def uar(cm: np.ndarray) -> float:
    """Unweighted average recall (MEGC): mean per-class recall over classes with support."""
    scores = per_class_scores(cm)
    return _mean_over_supported(scores["recall"], scores["support"])


def f1_weighted(cm: np.ndarray) -> float:
    """Per-class F1 weighted by support (scikit-learn's ``average="weighted"``)."""
    scores = per_class_scores(cm)
    total = scores["support"].sum()
    if total == 0:
        raise ValueError("no samples: weighted F1 is undefined")
    return float(np.sum(scores["support"] * scores["f1"]) / total)


def summarize(y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray, classes: Sequence[str]) -> dict:
    """Every metric of a set of predictions as JSON-ready Python values (lists, floats, ints)."""
    cm = confusion_matrix(y_true, y_pred, len(classes))
    scores = per_class_scores(cm)
    return {
        "n_samples": int(cm.sum()),
        "accuracy": accuracy(y_true, y_pred),
        "f1_macro": f1_macro(cm),
        "uf1": uf1(cm),
        "uar": uar(cm),
        "f1_weighted": f1_weighted(cm),
        "per_class": [
            {
                "class": str(name),
                "precision": float(scores["precision"][i]),
                "recall": float(scores["recall"][i]),
                "f1": float(scores["f1"][i]),
                "support": int(scores["support"][i]),
            }
            for i, name in enumerate(classes)
        ],
        "confusion_matrix": cm.tolist(),
    }


def interval_iou(a: tuple[int, int], b: tuple[int, int]) -> float:
    """IoU of two frame intervals ``(onset, offset)``, both ends included."""
    inter = min(a[1], b[1]) - max(a[0], b[0]) + 1
    if inter <= 0:
        return 0.0
    return inter / ((a[1] - a[0] + 1) + (b[1] - b[0] + 1) - inter)


def megc_match(
    spotted: Sequence[tuple[int, int]], truth: Sequence[tuple[int, int]], threshold: float = 0.5
) -> list[tuple[int, int]]:
    """The MEGC hits: pairs (spotted index, true index) whose IoU is at least ``threshold``, each spotted and
    each true interval used at most once, best IoU first (ties in the order given)."""
    pairs = sorted(
        ((interval_iou(s, t), si, ti) for si, s in enumerate(spotted) for ti, t in enumerate(truth)),
        key=lambda p: p[0],
        reverse=True,
    )
    used_s, used_t, hits = set(), set(), []
    for overlap, si, ti in pairs:
        if overlap < threshold or si in used_s or ti in used_t:
            continue
        used_s.add(si)
        used_t.add(ti)
        hits.append((si, ti))
    return hits


def apex_hits(apexes: Sequence[int], truth: Sequence[tuple[int, int]], tolerance: int = 1) -> int:
    """Spotted apexes (frames, in order) that lie inside a still unmatched true interval ``(onset, offset)``,
    widened by ``tolerance`` frames each side: the looser rule that asks whether the movement was found, not
    whether its interval was drawn well (the gap between it and :func:`megc_match` is what the intervals cost)."""
    used: set[int] = set()
    for apex in apexes:
        for k, (onset, offset) in enumerate(truth):
            if k not in used and onset - tolerance <= apex <= offset + tolerance:
                used.add(k)
                break
    return len(used)


def spotting_f1(hits: int, spots: int, true: int) -> float:
    """Spotting F1 from pooled counts: 2·hits / (spots + true), 0 when there is nothing to count."""
    return 2.0 * hits / (spots + true) if spots + true else 0.0


def spotting_f1_interval(
    counts: Sequence[tuple[int, int, int]], level: float = 0.95, resamples: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """The ``level`` percentile interval of pooled spotting F1 when the clips are drawn again with replacement.

    ``counts`` holds each clip's (hits, spots, true intervals). Events of one clip are not independent (one
    face, one camera, one set of nuisances), so the clips are resampled, each draw pooled as the benchmark
    pools them. With a few dozen clips the interval is wide: it says how far a single benchmark figure can be
    trusted, and two spotters whose intervals overlap much have not been told apart. Deterministic for a
    ``seed``."""
    table = np.asarray(counts, dtype=np.int64).reshape(-1, 3) if len(counts) else np.zeros((0, 3), np.int64)
    if len(table) == 0:
        raise ValueError("spotting_f1_interval needs at least one clip")
    if (table < 0).any() or (table[:, 0] > table[:, 1]).any() or (table[:, 0] > table[:, 2]).any():
        raise ValueError("each clip needs 0 <= hits <= spots and hits <= true")
    if not 0.0 < level < 1.0 or resamples < 1:
        raise ValueError(f"level must lie in (0, 1) and resamples be at least 1, got {level}, {resamples}")
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(table), size=(resamples, len(table)))
    pooled = table[draws].sum(axis=1)  # (resamples, 3)
    total = pooled[:, 1] + pooled[:, 2]
    f1 = np.divide(2.0 * pooled[:, 0], total, out=np.zeros(resamples), where=total > 0)
    tail = 100.0 * (1.0 - level) / 2.0
    low, high = np.percentile(f1, [tail, 100.0 - tail])
    return float(low), float(high)
