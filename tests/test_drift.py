import numpy as np
import pytest
from scipy import stats
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss

from helpers import drift as dr


def _pair(kind: str, seed: int, batch_size: int = 500) -> tuple[tuple, tuple]:
    """One batch before the drift and one after it."""
    before, after = dr.make_stream(kind, n_batches=2, drift_at=1, batch_size=batch_size, seed=seed)
    return before, after


# --- make_stream ---


def test_stream_shapes_and_the_batches_before_the_drift_are_shared_by_all_kinds():
    streams = {kind: dr.make_stream(kind, n_batches=4, drift_at=2, batch_size=50, seed=3)
               for kind in dr.KINDS}
    for stream in streams.values():
        assert len(stream) == 4
        assert all(X.shape == (50, 5) and set(np.unique(y)) <= {0, 1} for X, y in stream)
    for kind in ("covariate", "prior", "concept"):
        for i in range(2):
            assert np.array_equal(streams[kind][i][0], streams["none"][i][0])
    for kind in ("covariate", "prior"):
        assert not np.array_equal(streams[kind][2][0], streams["none"][2][0])
    assert not np.array_equal(dr.make_stream("none", seed=4)[0][0], streams["none"][0][0])


def test_prior_shift_changes_p_y_but_not_p_x_given_y():
    before, after = _pair("prior", seed=0, batch_size=40_000)
    assert before[1].mean() == pytest.approx(0.5, abs=0.01)
    assert after[1].mean() == pytest.approx(dr.DRIFTED_PRIOR, abs=0.01)
    for label in (0, 1):
        mean_before = before[0][before[1] == label].mean(axis=0)
        assert np.allclose(mean_before, after[0][after[1] == label].mean(axis=0), atol=0.05)


def test_covariate_shift_moves_p_x_but_keeps_p_y_given_x():
    before, after = _pair("covariate", seed=0, batch_size=40_000)
    shift = after[0].mean(axis=0) - before[0].mean(axis=0)
    assert np.allclose(shift, [dr.COVARIATE_SHIFT] * 3 + [0, 0], atol=0.05)
    coef_before = LogisticRegression(C=1e4).fit(*before).coef_[0]
    coef_after = LogisticRegression(C=1e4).fit(*after).coef_[0]
    true_coef = dr.SEPARATION / np.sqrt(2)
    assert np.allclose(coef_before, [true_coef, true_coef, 0, 0, 0], atol=0.1)
    assert np.allclose(coef_after, coef_before, atol=0.1)


def test_concept_drift_keeps_p_x_but_flips_the_effect_of_feature_0():
    before, after = _pair("concept", seed=0, batch_size=40_000)
    assert np.allclose(before[0].mean(axis=0), after[0].mean(axis=0), atol=0.03)
    assert np.allclose(before[0].std(axis=0), after[0].std(axis=0), atol=0.03)
    coef_after = LogisticRegression(C=1e4).fit(*after).coef_[0]
    assert coef_after[0] == pytest.approx(-dr.SEPARATION / np.sqrt(2), abs=0.1)
    assert coef_after[1] == pytest.approx(dr.SEPARATION / np.sqrt(2), abs=0.1)


def test_a_model_trained_before_concept_drift_falls_to_chance():
    stream = dr.make_stream("concept", n_batches=6, drift_at=3, seed=0)
    X_train, y_train = np.vstack([X for X, _ in stream[:2]]), np.concatenate([y for _, y in stream[:2]])
    model = LogisticRegression().fit(X_train, y_train)
    accuracy_before = model.score(*stream[2])
    accuracy_after = np.mean([model.score(X, y) for X, y in stream[3:]])
    assert accuracy_before > 0.8  # the Bayes accuracy is about 0.89
    assert accuracy_after < 0.6
    assert accuracy_before - accuracy_after > 0.05


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"kind": "label"}, "kind"), ({"kind": "none", "drift_at": 21}, "drift_at"),
    ({"kind": "none", "n_features": 1}, "n_features"), ({"kind": "none", "batch_size": 1}, "batch_size"),
])
def test_make_stream_rejects_bad_arguments(kwargs, message):
    kind = kwargs.pop("kind")
    with pytest.raises(ValueError, match=message):
        dr.make_stream(kind, **kwargs)


# --- statistics ---


def test_psi_is_zero_for_identical_samples_and_close_to_the_j_divergence_of_a_shift():
    rng = np.random.default_rng(0)
    reference = rng.standard_normal(100_000)
    assert dr.psi(reference, reference) == 0
    values = [dr.psi(reference, rng.standard_normal(100_000) + delta) for delta in (0.1, 0.25, 0.5, 1.0)]
    assert values == sorted(values)
    # for N(0, 1) against N(δ, 1) the symmetric KL divergence that PSI estimates is δ²
    assert np.allclose(values, [0.01, 0.0625, 0.25, 1.0], rtol=0.1)


def test_psi_stays_finite_when_the_current_sample_misses_bins():
    reference = np.arange(100.0)
    assert np.isfinite(dr.psi(reference, np.full(50, 1000.0)))
    assert dr.psi(reference, np.full(50, 1000.0)) > 5


def test_per_feature_statistics_point_at_the_shifted_feature():
    before, after = _pair("covariate", seed=1)
    psis, pvalues = dr.psi_per_feature(before[0], after[0]), dr.ks_pvalues(before[0], after[0])
    assert psis.shape == pvalues.shape == (5,)
    assert psis[2] > 0.2 and psis[3:].max() < 0.1  # feature 2 moved by 0.75, features 3 and 4 did not
    assert pvalues[2] < 1e-6 and pvalues[3:].min() > 1e-3
    assert pvalues[0] == pytest.approx(stats.ks_2samp(before[0][:, 0], after[0][:, 0]).pvalue)


def test_mmd2_matches_the_definition_and_is_unbiased():
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((30, 2)), rng.standard_normal((40, 2)) + 0.5
    kernel = lambda a, b: np.exp(-((a[:, None] - b[None]) ** 2).sum(axis=2) / (2 * 1.3**2))  # noqa: E731
    kxx, kyy = kernel(X, X), kernel(Y, Y)
    expected = ((kxx.sum() - np.trace(kxx)) / (30 * 29) + (kyy.sum() - np.trace(kyy)) / (40 * 39)
                - 2 * kernel(X, Y).mean())
    assert dr.mmd2_rbf(X, Y, bandwidth=1.3) == pytest.approx(expected)
    null = [dr.mmd2_rbf(rng.standard_normal((60, 2)), rng.standard_normal((60, 2))) for _ in range(200)]
    assert min(null) < 0 < max(null)  # unbiased: no floor at zero
    assert abs(np.mean(null)) < 3 * np.std(null) / np.sqrt(len(null))


def test_mmd_permutation_pvalue_small_under_shift_and_spread_without_it():
    rng = np.random.default_rng(1)
    shifted = dr.mmd_permutation_pvalue(rng.standard_normal((100, 3)), rng.standard_normal((100, 3)) + 0.6,
                                        n_permutations=99)
    assert shifted == pytest.approx(0.01)  # no relabelling beats the real split: 1 / (99 + 1)
    null = [dr.mmd_permutation_pvalue(rng.standard_normal((60, 3)), rng.standard_normal((60, 3)), seed=s,
                                      n_permutations=99) for s in range(60)]
    assert 0.3 < np.median(null) < 0.7 and np.mean(np.array(null) < 0.1) < 0.25


def test_classifier_two_sample_auc_and_its_threshold():
    before, after = _pair("none", seed=2)
    assert dr.classifier_two_sample_auc(before[0], after[0]) == pytest.approx(0.5, abs=0.06)
    before, after = _pair("covariate", seed=2)
    assert dr.classifier_two_sample_auc(before[0], after[0]) > 0.7
    threshold = dr.c2st_auc_threshold(500, 500, alpha=0.01)
    assert 0.54 < threshold < 0.58
    assert dr.c2st_auc_threshold(5000, 5000) < threshold < dr.c2st_auc_threshold(500, 500, alpha=0.001)


# --- detectors ---


@pytest.mark.parametrize("method", dr.METHODS)
def test_detectors_rarely_alarm_without_drift_and_always_catch_the_covariate_shift(method):
    def alarm(kind: str, seed: int) -> bool:
        before, after = _pair(kind, seed)
        return dr.detect_drift(before[0], after[0], method, seed=seed)

    false_alarms = sum(alarm("none", seed) for seed in range(20))
    assert false_alarms <= 2  # false-alarm rate <= 0.1 (the nominal level is 0.01)
    detections = sum(alarm("covariate", seed) for seed in range(10))
    assert detections == 10


@pytest.mark.parametrize("method", dr.METHODS)
def test_input_detectors_are_blind_to_concept_drift(method):
    alarms = 0
    for seed in range(3):
        stream = dr.make_stream("concept", n_batches=6, drift_at=1, seed=seed)
        alarms += len(dr.evaluate_detector(stream, method, drift_at=1, seed=seed).alarms)
    assert alarms <= 1  # of 15 post-drift batches, although every model trained before is at chance


def test_evaluate_detector_counts_delay_and_false_alarms():
    stream = dr.make_stream("covariate", n_batches=6, drift_at=2, seed=0)
    result = dr.evaluate_detector(stream, "ks", drift_at=2)
    assert (result.alarms, result.first_alarm, result.delay, result.false_alarms) == ([2, 3, 4, 5], 2, 0, 0)
    late = dr.evaluate_detector(stream, "ks", drift_at=4)  # claim the drift later than it was: early alarms
    assert (late.first_alarm, late.delay, late.false_alarms) == (2, 0, 2)
    quiet = dr.evaluate_detector(dr.make_stream("none", n_batches=4, drift_at=4, seed=0), "psi", drift_at=4)
    assert (quiet.alarms, quiet.first_alarm, quiet.delay, quiet.false_alarms) == ([], None, None, 0)


def test_evaluate_detector_pools_the_reference_batches():
    stream = dr.make_stream("covariate", n_batches=5, drift_at=3, seed=0)
    result = dr.evaluate_detector(stream, "c2st", drift_at=3, reference_batches=3)
    assert result.alarms == [3, 4]


@pytest.mark.parametrize(("call", "message"), [
    (lambda X: dr.detect_drift(X, X, "chi2"), "method"),
    (lambda X: dr.detect_drift(X, X, "ks", alpha=1.5), "alpha"),
    (lambda X: dr.detect_drift(X, X[:, :2], "ks"), "same features"),
    (lambda X: dr.ks_pvalues(X[:, 0], X[:, 0]), "2-D"),
    (lambda X: dr.psi(X, X), "1-D"),
    (lambda X: dr.psi(X[:, 0], X[:, 0], n_bins=1), "n_bins"),
    (lambda X: dr.mmd2_rbf(X, X, bandwidth=0.0), "bandwidth"),
    (lambda X: dr.classifier_two_sample_auc(X[:3], X), "cv"),
    (lambda X: dr.detect_drift(X, np.where(X > 0, np.nan, X), "psi"), "finite"),
    (lambda X: dr.evaluate_detector([(X, X[:, 0])] * 3, "ks", drift_at=0), "drift_at"),
    (lambda X: dr.evaluate_detector([(X, X[:, 0])] * 3, "ks", drift_at=4), "drift_at"),
])
def test_detectors_reject_bad_input(call, message):
    X = np.random.default_rng(0).standard_normal((20, 3))
    with pytest.raises(ValueError, match=message):
        call(X)


# --- monitoring without labels and corrections ---


def _fit_before(kind: str, seed: int = 0, batch_size: int = 2000):
    (X, y), after = _pair(kind, seed, batch_size)
    return LogisticRegression().fit(X, y), X, after


def test_prediction_shift_sees_prior_shift_but_not_concept_drift():
    model, X, (X_prior, _) = _fit_before("prior")
    reference = model.predict_proba(X)[:, 1]
    assert dr.prediction_shift(reference, model.predict_proba(X_prior)[:, 1]) > 0.1
    model, X, (X_concept, _) = _fit_before("concept")
    assert dr.prediction_shift(model.predict_proba(X)[:, 1], model.predict_proba(X_concept)[:, 1]) < 0.03


def test_em_recovers_the_new_prior_and_improves_the_log_loss():
    model, X, (X_new, y_new) = _fit_before("prior", batch_size=5000)
    probs = model.predict_proba(X_new)
    priors, adjusted = dr.em_prior_correction(probs, np.array([0.5, 0.5]))
    assert priors[1] == pytest.approx(y_new.mean(), abs=0.02)
    assert priors[1] == pytest.approx(dr.DRIFTED_PRIOR, abs=0.05)
    assert probs[:, 1].mean() > 0.25  # the uncorrected model over-predicts positives
    assert np.allclose(adjusted.sum(axis=1), 1) and np.allclose(adjusted.mean(axis=0), priors, atol=1e-5)
    assert log_loss(y_new, adjusted) < log_loss(y_new, probs) - 0.02


def test_em_with_exact_posteriors_of_three_classes():
    rng = np.random.default_rng(0)
    means, new_priors = np.array([-2.0, 0.0, 2.0]), np.array([0.6, 0.3, 0.1])
    x = rng.normal(means[rng.choice(3, size=50_000, p=new_priors)], 1.0)
    likelihood = stats.norm.pdf(x[:, None], means[None, :])
    posterior = likelihood / likelihood.sum(axis=1, keepdims=True)  # exact under equal training priors
    priors, _ = dr.em_prior_correction(posterior, np.full(3, 1 / 3), tol=1e-8, max_iter=1000)
    assert np.allclose(priors, new_priors, atol=0.02)
    unchanged, adjusted = dr.em_prior_correction(posterior, posterior.mean(axis=0), max_iter=1)
    assert np.allclose(unchanged, posterior.mean(axis=0)) and np.allclose(adjusted, posterior)


@pytest.mark.parametrize(("probs", "priors", "message"), [
    (np.array([0.2, 0.8]), np.array([0.5, 0.5]), "2-D"),
    (np.array([[0.2, 0.7]]), np.array([0.5, 0.5]), "probability distribution"),
    (np.array([[0.2, 0.8]]), np.array([0.4, 0.4]), "train_priors"),
    (np.array([[0.2, 0.8]]), np.array([0.2, 0.3, 0.5]), "train_priors"),
])
def test_em_rejects_bad_input(probs, priors, message):
    with pytest.raises(ValueError, match=message):
        dr.em_prior_correction(probs, priors)


def test_domain_classifier_weights_average_one_without_shift_and_follow_the_target():
    before, after = _pair("none", seed=0)
    weights = dr.domain_classifier_weights(before[0], after[0])
    assert weights.shape == (500,) and weights.min() > 0
    assert weights.mean() == pytest.approx(1, abs=0.1)
    before, after = _pair("covariate", seed=0)
    source, target = before[0], after[0]
    weights = dr.domain_classifier_weights(source, target, clip=10.0)
    assert weights.max() <= 10.0
    assert np.corrcoef(weights, source[:, 2])[0, 1] > 0.3  # the target moved towards larger feature 2
    reweighted = np.average(source, axis=0, weights=weights)
    gap_before = np.abs(source.mean(axis=0) - target.mean(axis=0)).max()
    assert np.abs(reweighted - target.mean(axis=0)).max() < 0.15 < gap_before


def test_domain_classifier_weights_reject_a_bad_clip():
    X = np.random.default_rng(0).standard_normal((20, 3))
    with pytest.raises(ValueError, match="clip"):
        dr.domain_classifier_weights(X, X, clip=0)
