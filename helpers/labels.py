"""Labels from several annotators: simulation, majority vote, Dawid–Skene EM and Fleiss' kappa.

Written by hand because the algorithms are the lesson; the tests check them on worked examples
(Fleiss' kappa against the published example of Fleiss, 1971) and on simulated annotators.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def _check_labels(labels: np.ndarray, n_classes: int) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.size == 0:
        raise ValueError(f"labels must be a non-empty 2-D array (items x annotators), got shape {labels.shape}")
    if isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 2:
        raise ValueError(f"n_classes must be an int >= 2, got {n_classes!r}")
    if labels.min() < 0 or labels.max() >= n_classes:
        raise ValueError(f"labels must lie in 0 .. {n_classes - 1}")
    return labels.astype(int)


def simulate_annotators(
    y_true: np.ndarray, accuracies: Sequence[float], *, n_classes: int, seed: int = 0
) -> np.ndarray:
    """Labels from annotators who are right with the given probabilities and otherwise pick
    another class uniformly at random. Returns an array of shape (items, annotators)."""
    y_true = np.asarray(y_true)
    if any(not 0 <= a <= 1 for a in accuracies) or len(accuracies) == 0:
        raise ValueError(f"accuracies must be a non-empty sequence of probabilities, got {accuracies!r}")
    _check_labels(y_true[:, None], n_classes)
    rng = np.random.default_rng(seed)
    columns = []
    for accuracy in accuracies:
        wrong = rng.random(len(y_true)) >= accuracy
        shift = rng.integers(1, n_classes, size=len(y_true))
        columns.append(np.where(wrong, (y_true + shift) % n_classes, y_true))
    return np.stack(columns, axis=1)


def vote_counts(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """How many annotators gave each item each class: shape (items, classes)."""
    labels = _check_labels(labels, n_classes)
    return np.stack([(labels == k).sum(axis=1) for k in range(n_classes)], axis=1)


def majority_vote(labels: np.ndarray, n_classes: int, *, seed: int = 0) -> np.ndarray:
    """The most frequent label of each item; ties are broken at random (not towards class 0)."""
    counts = vote_counts(labels, n_classes).astype(float)
    counts += np.random.default_rng(seed).random(counts.shape) * 0.5  # below one vote: breaks ties only
    return counts.argmax(axis=1)


@dataclass
class DawidSkene:
    """Result of ``dawid_skene``: posteriors over the true class, and what EM learned."""

    posterior: np.ndarray  # (items, classes)
    confusion: np.ndarray  # (annotators, true class, given label)
    prior: np.ndarray  # (classes,)
    iterations: int

    @property
    def labels(self) -> np.ndarray:
        return self.posterior.argmax(axis=1)

    @property
    def annotator_accuracy(self) -> np.ndarray:
        """Each annotator's estimated probability of giving the true class."""
        diagonal = np.einsum("akk->ak", self.confusion)
        return diagonal @ self.prior


def dawid_skene(labels: np.ndarray, n_classes: int, *, max_iter: int = 100, tol: float = 1e-6) -> DawidSkene:
    """Dawid & Skene (1979): estimate every annotator's confusion matrix and the true labels by EM.

    Start from the vote shares; then alternate the M-step (class prior and confusion matrices
    from the current posteriors, smoothed by 0.01) and the E-step (posterior of each item's class
    given all its labels, assuming annotators err independently) until the posteriors move less
    than ``tol``. Unlike a majority vote, it learns whom to trust.
    """
    labels = _check_labels(labels, n_classes)
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
        raise ValueError(f"max_iter must be an int >= 1, got {max_iter!r}")
    one_hot = np.eye(n_classes)[labels]  # (items, annotators, given label)
    posterior = vote_counts(labels, n_classes) / labels.shape[1]
    iterations = 0
    while iterations < max_iter:
        iterations += 1
        prior = posterior.mean(axis=0)
        confusion = np.einsum("ik,ial->akl", posterior, one_hot) + 0.01
        confusion /= confusion.sum(axis=2, keepdims=True)
        log_post = np.log(prior)[None, :] + np.einsum("ial,akl->ik", one_hot, np.log(confusion))
        log_post -= log_post.max(axis=1, keepdims=True)
        updated = np.exp(log_post)
        updated /= updated.sum(axis=1, keepdims=True)
        change = np.abs(updated - posterior).max()
        posterior = updated
        if change < tol:
            break
    return DawidSkene(posterior, confusion, prior, iterations)


def fleiss_kappa(counts: np.ndarray) -> float:
    """Fleiss' kappa from a table of counts (items x categories), every item rated by the same
    number of raters: agreement beyond what the category frequencies give by chance."""
    counts = np.asarray(counts, dtype=float)
    if counts.ndim != 2 or counts.shape[0] < 1 or counts.shape[1] < 2 or (counts < 0).any():
        raise ValueError("counts must be a 2-D table (items x categories, at least 2) of non-negative counts")
    raters = counts.sum(axis=1)
    if not np.all(raters == raters[0]) or raters[0] < 2:
        raise ValueError("every item must be rated by the same number of raters, at least 2")
    n = raters[0]
    p_category = counts.sum(axis=0) / counts.sum()
    agreement = ((counts * (counts - 1)).sum(axis=1) / (n * (n - 1))).mean()
    chance = (p_category**2).sum()
    if chance == 1:
        return 1.0  # every rating in one category: perfect agreement, kappa undefined by the formula
    return float((agreement - chance) / (1 - chance))
