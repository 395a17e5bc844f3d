import math

import numpy as np
import pytest

from helpers import ensembles as ens


def test_pairwise_measures_on_a_counted_example():
    a = np.array([1, 1, 1, 0, 0, 1, 0, 1], dtype=bool)
    b = np.array([1, 1, 0, 0, 1, 1, 0, 0], dtype=bool)
    # N11 = 3, N00 = 2, N10 = 2, N01 = 1
    assert ens.disagreement(a, b) == pytest.approx(3 / 8)
    assert ens.q_statistic(a, b) == pytest.approx((3 * 2 - 1 * 2) / (3 * 2 + 1 * 2))
    assert ens.error_correlation(a, b) == pytest.approx(np.corrcoef(~a, ~b)[0, 1])


def test_identical_members_are_not_diverse():
    a = np.array([1, 0, 1, 1, 0], dtype=bool)
    assert ens.disagreement(a, a) == 0
    assert ens.q_statistic(a, a) == 1
    assert ens.error_correlation(a, a) == pytest.approx(1)


def test_undefined_cases_are_nan():
    always = np.ones(4, dtype=bool)
    other = np.array([1, 0, 1, 0], dtype=bool)
    assert math.isnan(ens.error_correlation(always, other))
    assert math.isnan(ens.q_statistic(always, always))


def test_mean_pairwise_averages_all_pairs():
    members = [np.array([1, 0, 1], dtype=bool), np.array([1, 1, 1], dtype=bool), np.array([0, 0, 1], dtype=bool)]
    expected = np.mean([ens.disagreement(members[0], members[1]), ens.disagreement(members[0], members[2]),
                        ens.disagreement(members[1], members[2])])
    assert ens.mean_pairwise(ens.disagreement, members) == pytest.approx(expected)
    with pytest.raises(ValueError, match="at least 2"):
        ens.mean_pairwise(ens.disagreement, members[:1])


@pytest.mark.parametrize(("a", "b"), [(np.ones(3), np.ones(4)), (np.ones((2, 2)), np.ones((2, 2))), (np.ones(0), np.ones(0))])
def test_pairwise_measures_reject_bad_shapes(a, b):
    with pytest.raises(ValueError):
        ens.disagreement(a, b)


def test_variance_of_average_matches_a_simulation():
    rng = np.random.default_rng(0)
    rho, sigma2, k = 0.3, 2.0, 5
    covariance = sigma2 * (rho * np.ones((k, k)) + (1 - rho) * np.eye(k))
    members = rng.multivariate_normal(np.zeros(k), covariance, size=200_000)
    assert members.mean(axis=1).var() == pytest.approx(ens.variance_of_average(sigma2, rho, k), rel=0.02)
    assert ens.variance_of_average(1.0, 1.0, 10) == 1.0  # perfectly correlated: no reduction
    assert ens.variance_of_average(1.0, 0.0, 10) == pytest.approx(0.1)


@pytest.mark.parametrize("kwargs", [{"variance": -1, "correlation": 0, "k": 2}, {"variance": 1, "correlation": 2, "k": 2},
                                    {"variance": 1, "correlation": 0, "k": 0}])
def test_variance_of_average_rejects_bad_input(kwargs):
    with pytest.raises(ValueError):
        ens.variance_of_average(**kwargs)
