"""Metrics against hand computations and scikit-learn's definitions written out by hand (sklearn absent)."""

import numpy as np
import pytest

from training import metrics

# 4 classes; class 3 has no sample and is never predicted.
Y_TRUE = [0, 0, 0, 1, 1, 2, 2, 2, 2]
Y_PRED = [0, 1, 0, 1, 2, 2, 2, 0, 2]


def test_confusion_matrix_rows_are_true_columns_predicted():
    cm = metrics.confusion_matrix(Y_TRUE, Y_PRED, 4)
    assert cm.tolist() == [[2, 1, 0, 0], [0, 1, 1, 0], [1, 0, 3, 0], [0, 0, 0, 0]]
    assert cm.dtype == np.int64


def test_hand_computed_example():
    cm = metrics.confusion_matrix(Y_TRUE, Y_PRED, 4)
    scores = metrics.per_class_scores(cm)
    # TP = [2, 1, 3, 0], FP = [1, 1, 1, 0], FN = [1, 1, 1, 0]
    assert scores["precision"] == pytest.approx([2 / 3, 1 / 2, 3 / 4, 0.0])
    assert scores["recall"] == pytest.approx([2 / 3, 1 / 2, 3 / 4, 0.0])
    assert scores["f1"] == pytest.approx([2 / 3, 1 / 2, 3 / 4, 0.0])
    assert scores["support"].tolist() == [3, 2, 4, 0]
    assert metrics.accuracy(Y_TRUE, Y_PRED) == pytest.approx(6 / 9)
    # class 3 (no support) is left out of the averages
    assert metrics.f1_macro(cm) == pytest.approx((2 / 3 + 1 / 2 + 3 / 4) / 3)
    assert metrics.uar(cm) == pytest.approx((2 / 3 + 1 / 2 + 3 / 4) / 3)
    assert metrics.f1_weighted(cm) == pytest.approx((3 * 2 / 3 + 2 * 1 / 2 + 4 * 3 / 4) / 9)


def test_precision_differs_from_recall_and_a_predicted_class_without_support_is_left_out():
    y_true = [0, 0, 1, 1, 1]
    y_pred = [0, 2, 1, 1, 0]
    cm = metrics.confusion_matrix(y_true, y_pred, 3)
    scores = metrics.per_class_scores(cm)
    assert scores["precision"] == pytest.approx([1 / 2, 1.0, 0.0])
    assert scores["recall"] == pytest.approx([1 / 2, 2 / 3, 0.0])
    assert scores["f1"] == pytest.approx([1 / 2, 0.8, 0.0])
    assert metrics.f1_macro(cm) == pytest.approx((0.5 + 0.8) / 2)
    assert metrics.uar(cm) == pytest.approx((0.5 + 2 / 3) / 2)
    # scikit-learn's f1_score(average="macro") without labels would average over {0, 1, 2}: (0.5+0.8+0)/3
    assert metrics.f1_macro(cm) != pytest.approx((0.5 + 0.8 + 0.0) / 3)


def _sklearn_prfs(y_true, y_pred, labels):
    """scikit-learn's precision_recall_fscore_support(labels=labels, zero_division=0), written out."""
    rows = []
    for c in labels:
        tp = sum(1 for t, p in zip(y_true, y_pred, strict=True) if t == c and p == c)
        fp = sum(1 for t, p in zip(y_true, y_pred, strict=True) if t != c and p == c)
        fn = sum(1 for t, p in zip(y_true, y_pred, strict=True) if t == c and p != c)
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        rows.append((precision, recall, f1, tp + fn))
    return rows


@pytest.mark.parametrize("seed", range(5))
def test_matches_sklearn_definitions_when_every_class_has_support(seed):
    rng = np.random.default_rng(seed)
    n_classes = 5
    y_true = np.concatenate([np.arange(n_classes), rng.integers(0, n_classes, 60)])
    y_pred = np.where(rng.random(len(y_true)) < 0.5, y_true, rng.integers(0, n_classes, len(y_true)))
    reference = _sklearn_prfs(y_true.tolist(), y_pred.tolist(), range(n_classes))
    cm = metrics.confusion_matrix(y_true, y_pred, n_classes)
    scores = metrics.per_class_scores(cm)
    assert scores["precision"] == pytest.approx([r[0] for r in reference])
    assert scores["recall"] == pytest.approx([r[1] for r in reference])
    assert scores["f1"] == pytest.approx([r[2] for r in reference])
    assert metrics.f1_macro(cm) == pytest.approx(np.mean([r[2] for r in reference]))  # average="macro"
    assert metrics.uar(cm) == pytest.approx(np.mean([r[1] for r in reference]))  # balanced_accuracy_score
    total = sum(r[3] for r in reference)
    assert metrics.f1_weighted(cm) == pytest.approx(sum(r[2] * r[3] for r in reference) / total)
    assert metrics.accuracy(y_true, y_pred) == pytest.approx(np.mean(y_true == y_pred))


def test_uf1_pools_counts_over_folds_and_equals_pooled_macro_f1_not_the_mean_of_fold_f1s():
    folds = [([0, 0, 1], [0, 1, 1]), ([1, 2, 2, 2], [1, 2, 0, 2]), ([0, 2], [0, 0])]
    pooled = sum(metrics.confusion_matrix(t, p, 3) for t, p in folds)
    all_true = [v for t, _ in folds for v in t]
    all_pred = [v for _, p in folds for v in p]
    assert np.array_equal(pooled, metrics.confusion_matrix(all_true, all_pred, 3))
    # by hand from pooled TP/FP/FN: class 0 TP 2 FP 2 FN 1; class 1 TP 2 FP 1 FN 0; class 2 TP 2 FP 0 FN 2
    expected = np.mean([2 * 2 / (4 + 2 + 1), 2 * 2 / (4 + 1 + 0), 2 * 2 / (4 + 0 + 2)])
    assert metrics.uf1(pooled) == pytest.approx(expected)
    assert metrics.f1_macro(pooled) == pytest.approx(metrics.uf1(pooled))
    mean_of_folds = np.mean([metrics.f1_macro(metrics.confusion_matrix(t, p, 3)) for t, p in folds])
    assert mean_of_folds != pytest.approx(metrics.uf1(pooled))


def test_summarize_is_json_ready_and_complete():
    summary = metrics.summarize(Y_TRUE, Y_PRED, ["a", "b", "c", "d"])
    assert summary["n_samples"] == 9
    assert [row["class"] for row in summary["per_class"]] == ["a", "b", "c", "d"]
    assert summary["per_class"][3]["support"] == 0
    assert summary["confusion_matrix"][0] == [2, 1, 0, 0]
    assert all(isinstance(summary[k], float) for k in ("accuracy", "f1_macro", "uf1", "uar", "f1_weighted"))


def test_bad_input_is_refused():
    with pytest.raises(ValueError):
        metrics.confusion_matrix([0, 1], [0], 2)
    with pytest.raises(ValueError):
        metrics.confusion_matrix([0, 5], [0, 1], 2)
    with pytest.raises(ValueError):
        metrics.accuracy([], [])
    with pytest.raises(ValueError):
        metrics.f1_macro(np.zeros((3, 3), dtype=int))


def test_spotting_f1_pools_counts():
    assert metrics.spotting_f1(3, 4, 6) == pytest.approx(2 * 3 / 10)
    assert metrics.spotting_f1(0, 0, 0) == 0.0


def test_the_spotting_f1_interval_is_a_point_when_every_clip_is_alike_and_narrows_with_more_clips():
    same = [(2, 3, 3)] * 8
    low, high = metrics.spotting_f1_interval(same)
    assert low == pytest.approx(high) == pytest.approx(metrics.spotting_f1(16, 24, 24))
    mixed = [(3, 3, 3), (0, 1, 3), (2, 2, 3), (1, 3, 3), (0, 0, 3), (3, 4, 3)]
    pooled = metrics.spotting_f1(*np.sum(mixed, axis=0))
    low, high = metrics.spotting_f1_interval(mixed)
    assert 0.0 <= low < pooled < high <= 1.0
    low4, high4 = metrics.spotting_f1_interval(mixed * 4)
    assert high4 - low4 < high - low
    assert metrics.spotting_f1_interval(mixed, seed=3) == metrics.spotting_f1_interval(mixed, seed=3)
    narrow = metrics.spotting_f1_interval(mixed, level=0.5)
    assert low <= narrow[0] <= narrow[1] <= high


@pytest.mark.parametrize("counts", [[], [(2, 1, 3)], [(2, 3, 1)], [(-1, 0, 0)]])
def test_the_spotting_f1_interval_refuses_impossible_counts(counts):
    with pytest.raises(ValueError):
        metrics.spotting_f1_interval(counts)


@pytest.mark.parametrize(
    "apexes, truth, tolerance, hits",
    [
        ([12], [(10, 20)], 1, 1),  # inside
        ([9], [(10, 20)], 1, 1),  # one frame early: still the movement
        ([8], [(10, 20)], 1, 0),  # two frames early: not
        ([8], [(10, 20)], 2, 1),
        ([12, 15], [(10, 20)], 1, 1),  # one true movement counts once
        ([12, 31], [(10, 20), (30, 40)], 0, 2),
        ([], [(10, 20)], 1, 0),
    ],
)
def test_apex_hits_count_true_movements_found_once_whatever_the_interval(apexes, truth, tolerance, hits):
    assert metrics.apex_hits(apexes, truth, tolerance) == hits
