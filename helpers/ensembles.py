"""Diversity between ensemble members, and the variance of an average of correlated members.

The measures follow Kuncheva & Whitaker (2003): for two classifiers, count the test examples
both get right (N11), both get wrong (N00), and only one gets right (N10, N01).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import combinations

import numpy as np


def _pair(correct_a: np.ndarray, correct_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise ValueError(f"need two non-empty 1-D arrays of the same length, got shapes {a.shape} and {b.shape}")
    return a, b


def disagreement(correct_a: np.ndarray, correct_b: np.ndarray) -> float:
    """Fraction of examples that exactly one of the two classifiers gets right."""
    a, b = _pair(correct_a, correct_b)
    return float(np.mean(a != b))


def q_statistic(correct_a: np.ndarray, correct_b: np.ndarray) -> float:
    """Yule's Q: +1 when the two are right and wrong together, 0 when independent, −1 when they
    are never wrong together. NaN when undefined (a classifier that is never, or always, right)."""
    a, b = _pair(correct_a, correct_b)
    n11, n00 = np.sum(a & b), np.sum(~a & ~b)
    n10, n01 = np.sum(a & ~b), np.sum(~a & b)
    denominator = n11 * n00 + n01 * n10
    return float((n11 * n00 - n01 * n10) / denominator) if denominator else float("nan")


def error_correlation(correct_a: np.ndarray, correct_b: np.ndarray) -> float:
    """Pearson correlation of the two error indicators (NaN when one classifier never errs or always does)."""
    a, b = _pair(correct_a, correct_b)
    if a.all() or b.all() or not a.any() or not b.any():
        return float("nan")
    return float(np.corrcoef(~a, ~b)[0, 1])


def mean_pairwise(measure: Callable[[np.ndarray, np.ndarray], float], correct: Sequence[np.ndarray]) -> float:
    """Average of a pairwise measure over every pair of members (``correct``: one boolean array each)."""
    if len(correct) < 2:
        raise ValueError(f"need at least 2 members, got {len(correct)}")
    return float(np.nanmean([measure(a, b) for a, b in combinations(correct, 2)]))


def variance_of_average(variance: float, correlation: float, k: int) -> float:
    """Variance of the mean of ``k`` members with equal variance and pairwise correlation:
    ρσ² + (1 − ρ)σ²/k. Averaging removes only the uncorrelated part."""
    if variance < 0 or not -1 <= correlation <= 1:
        raise ValueError("variance must be >= 0 and correlation in [-1, 1]")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be an int >= 1, got {k!r}")
    return correlation * variance + (1 - correlation) * variance / k
