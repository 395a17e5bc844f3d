"""Binary-classification metrics derived by hand from the confusion matrix (the lesson; tested
against scikit-learn), ranking AUC, calibration error, threshold choice, and the curve figures the
evaluation and imbalance notebooks share."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np


class Counts(NamedTuple):
    """The four cells of a binary confusion matrix."""

    tp: int
    fp: int
    fn: int
    tn: int


def _binary_labels(name: str, values: Any) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array, got shape {array.shape}")
    if not np.isin(array, (0, 1)).all():
        raise ValueError(f"{name} must hold only 0 and 1 (1 = positive class), got values {np.unique(array)[:5]}")
    return array.astype(np.int64)


def _scores(name: str, values: Any, n: int) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},) like y_true, got {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} must be finite")
    return array


def _both_classes(y_true: np.ndarray) -> None:
    if y_true.min() == y_true.max():
        raise ValueError("y_true must contain both classes (0 and 1) for a ranking or curve metric")


def _ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator, 0.0 when the denominator is 0 (scikit-learn's zero_division=0)."""
    return float(numerator / denominator) if denominator else 0.0


def confusion_counts(y_true: Any, y_pred: Any) -> Counts:
    """Count true/false positives and negatives for 0/1 labels (1 is the positive class)."""
    truth = _binary_labels("y_true", y_true)
    pred = _binary_labels("y_pred", y_pred)
    if truth.shape != pred.shape:
        raise ValueError(f"y_true and y_pred must have the same length, got {truth.size} and {pred.size}")
    return Counts(
        tp=int(np.sum((pred == 1) & (truth == 1))),
        fp=int(np.sum((pred == 1) & (truth == 0))),
        fn=int(np.sum((pred == 0) & (truth == 1))),
        tn=int(np.sum((pred == 0) & (truth == 0))),
    )


def binary_metrics(counts: Counts, *, beta: float = 1.0) -> dict[str, float]:
    """Every threshold metric written out from the four counts.

    Ratios with an empty denominator are 0, as scikit-learn's ``zero_division=0``.
    """
    if not isinstance(counts, Counts):
        raise TypeError(f"counts must be a helpers.metrics.Counts, got {type(counts).__name__}")
    if beta <= 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    tp, fp, fn, tn = counts
    precision = _ratio(tp, tp + fp)
    recall = _ratio(tp, tp + fn)
    specificity = _ratio(tn, tn + fp)
    b2 = beta**2
    mcc_denominator = math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return {
        "accuracy": _ratio(tp + tn, tp + fp + fn + tn),
        "precision": precision,
        "recall": recall,
        "specificity": specificity,
        "f1": _ratio(2 * precision * recall, precision + recall),
        "fbeta": _ratio((1 + b2) * precision * recall, b2 * precision + recall),
        "balanced_accuracy": (recall + specificity) / 2,
        "mcc": _ratio(tp * tn - fp * fn, mcc_denominator),
    }


def roc_by_threshold_sweep(y_true: Any, y_score: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC curve the slow, explicit way: predict ``score >= t`` for every distinct score ``t``.

    Returns ``(fpr, tpr, thresholds)`` starting at (0, 0) with threshold ``inf``, like
    ``sklearn.metrics.roc_curve(..., drop_intermediate=False)``.
    """
    truth = _binary_labels("y_true", y_true)
    scores = _scores("y_score", y_score, truth.size)
    _both_classes(truth)
    thresholds = np.concatenate([[np.inf], np.unique(scores)[::-1]])
    n_pos, n_neg = truth.sum(), truth.size - truth.sum()
    tpr = np.array([np.sum((scores >= t) & (truth == 1)) / n_pos for t in thresholds])
    fpr = np.array([np.sum((scores >= t) & (truth == 0)) / n_neg for t in thresholds])
    return fpr, tpr, thresholds


def rank_auc(y_true: Any, y_score: Any) -> float:
    """ROC-AUC as a probability: P(score of a random positive > score of a random negative),
    ties counting one half (the Mann–Whitney U statistic divided by n_pos·n_neg)."""
    truth = _binary_labels("y_true", y_true)
    scores = _scores("y_score", y_score, truth.size)
    _both_classes(truth)
    negatives = np.sort(scores[truth == 0])
    positives = scores[truth == 1]
    below = np.searchsorted(negatives, positives, side="left")
    tied = np.searchsorted(negatives, positives, side="right") - below
    return float((below + 0.5 * tied).sum() / (positives.size * negatives.size))


def expected_calibration_error(y_true: Any, y_prob: Any, *, n_bins: int = 10) -> float:
    """ECE: the gap |mean predicted probability - observed positive rate| averaged over equal-width
    probability bins, each bin weighted by its share of the samples."""
    truth = _binary_labels("y_true", y_true)
    prob = _scores("y_prob", y_prob, truth.size)
    if prob.min() < 0 or prob.max() > 1:
        raise ValueError("y_prob must be probabilities in [0, 1]")
    if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 1:
        raise ValueError(f"n_bins must be an int >= 1, got {n_bins!r}")
    bins = np.minimum((prob * n_bins).astype(int), n_bins - 1)
    gap = 0.0
    for b in np.unique(bins):
        members = bins == b
        gap += members.mean() * abs(prob[members].mean() - truth[members].mean())
    return float(gap)


def _precision_recall_thresholds(y_true: Any, y_score: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.metrics import precision_recall_curve

    truth = _binary_labels("y_true", y_true)
    scores = _scores("y_score", y_score, truth.size)
    _both_classes(truth)
    precision, recall, thresholds = precision_recall_curve(truth, scores)
    return precision[:-1], recall[:-1], thresholds


def _check_rate(name: str, value: float) -> None:
    if not 0 < value <= 1:
        raise ValueError(f"{name} must be in (0, 1], got {value}")


def recall_at_precision(y_true: Any, y_score: Any, min_precision: float) -> float:
    """The best recall any threshold reaches while keeping precision >= ``min_precision`` (0 if none)."""
    _check_rate("min_precision", min_precision)
    precision, recall, _ = _precision_recall_thresholds(y_true, y_score)
    feasible = precision >= min_precision
    return float(recall[feasible].max()) if feasible.any() else 0.0


def threshold_for_recall(y_true: Any, y_score: Any, target_recall: float) -> float:
    """The highest threshold whose recall is at least ``target_recall`` (the most precise such one)."""
    _check_rate("target_recall", target_recall)
    _, recall, thresholds = _precision_recall_thresholds(y_true, y_score)
    return float(thresholds[recall >= target_recall].max())


def threshold_for_min_cost(y_true: Any, y_score: Any, *, cost_fp: float, cost_fn: float) -> float:
    """The threshold minimising ``cost_fp·FP + cost_fn·FN`` on the given (validation) data."""
    if cost_fp < 0 or cost_fn < 0 or cost_fp + cost_fn == 0:
        raise ValueError(f"costs must be >= 0 and not both 0, got cost_fp={cost_fp}, cost_fn={cost_fn}")
    truth = _binary_labels("y_true", y_true)
    scores = _scores("y_score", y_score, truth.size)
    _both_classes(truth)
    thresholds = np.unique(scores)
    costs = [
        cost_fp * np.sum((scores >= t) & (truth == 0)) + cost_fn * np.sum((scores < t) & (truth == 1))
        for t in thresholds
    ]
    return float(thresholds[int(np.argmin(costs))])


def scorecard(
    y_true: Any, y_score: Any, *, threshold: float = 0.5, min_precision: float = 0.5
) -> dict[str, float]:
    """The imbalance-aware summary of one model: PR-AUC (average precision), ROC-AUC, recall at a
    fixed precision, and the threshold metrics (F1, balanced accuracy, accuracy) at ``threshold``."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    truth = _binary_labels("y_true", y_true)
    scores = _scores("y_score", y_score, truth.size)
    at_threshold = binary_metrics(confusion_counts(truth, (scores >= threshold).astype(int)))
    return {
        "pr_auc": float(average_precision_score(truth, scores)),
        "roc_auc": float(roc_auc_score(truth, scores)),
        f"recall@p{min_precision:g}": recall_at_precision(truth, scores, min_precision),
        "f1": at_threshold["f1"],
        "recall": at_threshold["recall"],
        "balanced_accuracy": at_threshold["balanced_accuracy"],
        "accuracy": at_threshold["accuracy"],
    }


def _as_curves(curves: Mapping[str, tuple[Any, Any]]) -> Mapping[str, tuple[Any, Any]]:
    if not isinstance(curves, Mapping) or not curves:
        raise TypeError("curves must be a non-empty mapping of name -> (y_true, y_score)")
    for name, pair in curves.items():
        if not (isinstance(pair, tuple) and len(pair) == 2):
            raise TypeError(f"curves[{name!r}] must be a (y_true, y_score) tuple")
    return curves


def plot_roc_pr(curves: Mapping[str, tuple[Any, Any]], *, title: str = ""):
    """ROC and precision–recall curves side by side, one line per model, with the chance levels
    (the diagonal; the positive rate). Returns the figure."""
    import matplotlib.pyplot as plt
    from sklearn.metrics import PrecisionRecallDisplay, RocCurveDisplay

    curves = _as_curves(curves)
    fig, (ax_roc, ax_pr) = plt.subplots(1, 2, figsize=(12.5, 4.6))
    for i, (name, (y_true, y_score)) in enumerate(curves.items()):
        last = i == len(curves) - 1
        RocCurveDisplay.from_predictions(y_true, y_score, name=name, ax=ax_roc, plot_chance_level=last)
        PrecisionRecallDisplay.from_predictions(y_true, y_score, name=name, ax=ax_pr, plot_chance_level=last)
    suffix = f": {title}" if title else ""
    ax_roc.set(title=f"ROC curve{suffix}", xlabel="false positive rate", ylabel="true positive rate (recall)")
    ax_pr.set(title=f"Precision–recall curve{suffix}", xlabel="recall", ylabel="precision")
    for ax in (ax_roc, ax_pr):
        ax.legend(loc="lower left" if ax is ax_pr else "lower right", fontsize=8)
    fig.tight_layout()
    return fig


def plot_reliability(curves: Mapping[str, tuple[Any, Any]], *, n_bins: int = 10, ax: Any = None):
    """Reliability diagram: observed positive rate against mean predicted probability per bin,
    one line per model, legend labelled with each model's ECE. Returns the axes."""
    import matplotlib.pyplot as plt
    from sklearn.calibration import CalibrationDisplay

    curves = _as_curves(curves)
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 5))
    for name, (y_true, y_prob) in curves.items():
        ece = expected_calibration_error(y_true, y_prob, n_bins=n_bins)
        CalibrationDisplay.from_predictions(y_true, y_prob, n_bins=n_bins, name=f"{name} (ECE {ece:.3f})", ax=ax)
    ax.set(title="Reliability diagram", xlabel="mean predicted probability", ylabel="observed positive rate")
    ax.legend(loc="upper left", fontsize=8)
    return ax
