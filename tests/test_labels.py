import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from helpers import labels as lab

# Fleiss (1971) as reproduced in most textbooks: 10 items, 14 raters, 5 categories, kappa = 0.210
FLEISS_EXAMPLE = np.array([
    [0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7],
])


def test_fleiss_kappa_matches_the_published_example():
    assert lab.fleiss_kappa(FLEISS_EXAMPLE) == pytest.approx(0.210, abs=1e-3)


def test_fleiss_kappa_extremes():
    assert lab.fleiss_kappa(np.array([[3, 0], [0, 3], [3, 0]])) == pytest.approx(1.0)
    assert lab.fleiss_kappa(np.array([[3, 0], [3, 0]])) == 1.0


def test_fleiss_kappa_agrees_with_cohen_for_two_raters_with_equal_marginals():
    a = np.array([0, 0, 1, 1, 0, 1, 0, 1])
    b = np.array([0, 1, 0, 1, 0, 1, 1, 0])  # same marginals as a: Scott's pi = Cohen's kappa
    counts = lab.vote_counts(np.stack([a, b], axis=1), 2)
    assert lab.fleiss_kappa(counts) == pytest.approx(cohen_kappa_score(a, b))


@pytest.mark.parametrize("counts", [np.array([1, 2]), np.array([[2, -1, 1]]), np.array([[2, 1], [1, 1]]),
                                    np.array([[1, 0], [0, 1]])])
def test_fleiss_kappa_rejects_bad_tables(counts):
    with pytest.raises(ValueError):
        lab.fleiss_kappa(counts)


def test_simulated_annotators_have_their_accuracies():
    y = np.random.default_rng(0).integers(0, 4, 20_000)
    labels = lab.simulate_annotators(y, [0.9, 0.6], n_classes=4, seed=1)
    assert labels.shape == (20_000, 2)
    assert (labels[:, 0] == y).mean() == pytest.approx(0.9, abs=0.01)
    assert (labels[:, 1] == y).mean() == pytest.approx(0.6, abs=0.01)
    wrong = labels[:, 1][labels[:, 1] != y]
    assert np.bincount(wrong, minlength=4).min() > 0.2 * len(wrong)  # errors spread over the other classes


@pytest.mark.parametrize("accuracies", [[], [1.2], [-0.1]])
def test_simulate_annotators_rejects_bad_accuracies(accuracies):
    with pytest.raises(ValueError, match="accuracies"):
        lab.simulate_annotators(np.zeros(5, dtype=int), accuracies, n_classes=2)


def test_majority_vote_and_random_tie_breaks():
    labels = np.array([[1, 1, 0], [2, 2, 2], [0, 1, 2]])
    assert list(lab.majority_vote(labels, 3)[:2]) == [1, 2]
    ties = np.array([[0, 1]] * 400)
    picked = lab.majority_vote(ties, 2, seed=3)
    assert 0.4 < picked.mean() < 0.6


def test_dawid_skene_learns_whom_to_trust():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 3000)
    accuracies = [0.95, 0.55, 0.5, 0.5, 0.45]
    labels = lab.simulate_annotators(y, accuracies, n_classes=3, seed=1)
    result = lab.dawid_skene(labels, 3)
    assert result.posterior.shape == (3000, 3) and np.allclose(result.posterior.sum(axis=1), 1)
    assert np.allclose(result.annotator_accuracy, accuracies, atol=0.03)
    assert (result.labels == y).mean() > (lab.majority_vote(labels, 3) == y).mean() + 0.05
    assert 1 <= result.iterations <= 100


@pytest.mark.parametrize(("labels", "n_classes", "message"), [
    (np.array([0, 1]), 2, "2-D"), (np.array([[0, 2]]), 2, "lie in"), (np.array([[0, 1]]), 1, "n_classes"),
])
def test_label_functions_reject_bad_input(labels, n_classes, message):
    with pytest.raises(ValueError, match=message):
        lab.dawid_skene(labels, n_classes)


def test_dawid_skene_rejects_bad_max_iter():
    with pytest.raises(ValueError, match="max_iter"):
        lab.dawid_skene(np.array([[0, 1]]), 2, max_iter=0)
