"""Dataset shift: simulated streams, drift detectors and corrections for prior and covariate shift.

``make_stream`` draws batches from one known generative model and changes exactly one factor of
P(x, y) at a chosen batch, so a notebook can show which monitor sees which kind of drift: the
input-distribution tests (PSI, Kolmogorov–Smirnov, a classifier two-sample test, MMD) see
covariate and prior shift but are blind, by construction, to concept drift, which leaves P(x)
unchanged. The statistics that are the lesson (PSI, MMD with its permutation test, the EM prior
correction of Saerens et al., 2002) are written by hand; the KS test and the classifiers come
from scipy and scikit-learn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats
from scipy.spatial.distance import pdist, squareform
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from helpers.validation import check_int

KINDS = ("none", "covariate", "prior", "concept")
METHODS = ("psi", "ks", "c2st", "mmd")
SEPARATION = 2.5  # distance of the class means (unit covariance): Bayes accuracy Φ(1.25) ≈ 0.89
COVARIATE_SHIFT = 0.75  # added to the first half of the features under covariate shift
DRIFTED_PRIOR = 0.2  # share of positives under prior shift (0.5 before)
PSI_ALARM = 0.2  # the usual rule of thumb: PSI above 0.2 is a significant shift
_EPS = 1e-4  # share given to empty bins, so that PSI stays finite

Batch = tuple[np.ndarray, np.ndarray]


def _check_alpha(alpha: float) -> None:
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie strictly between 0 and 1, got {alpha!r}")


def _check_1d(name: str, values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    if values.ndim != 1 or len(values) < 2 or not np.all(np.isfinite(values)):
        raise ValueError(f"{name} must be a 1-D array of at least 2 finite values, got shape {values.shape}")
    return values


def _check_pair(reference: np.ndarray, current: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two samples as 2-D float arrays (rows x features) with the same features, 2 rows or more."""
    reference, current = np.asarray(reference, dtype=float), np.asarray(current, dtype=float)
    for name, sample in (("reference", reference), ("current", current)):
        if sample.ndim != 2 or len(sample) < 2 or sample.shape[1] < 1:
            raise ValueError(f"{name} must be a 2-D array (rows x features) with 2 rows or more, "
                             f"got shape {sample.shape}")
        if not np.all(np.isfinite(sample)):
            raise ValueError(f"{name} must contain only finite values")
    if reference.shape[1] != current.shape[1]:
        raise ValueError(f"reference and current must have the same features, got {reference.shape[1]} "
                         f"and {current.shape[1]}")
    return reference, current


# --- simulation ---------------------------------------------------------------------------------


def _directions(n_features: int) -> tuple[np.ndarray, np.ndarray]:
    """The informative direction (features 0 and 1) and the same direction with feature 0 flipped."""
    w = np.zeros(n_features)
    w[:2] = 1 / np.sqrt(2)
    flipped = w.copy()
    flipped[0] = -flipped[0]
    return w, flipped


def _class_conditional(rng: np.random.Generator, size: int, n_features: int, prior: float) -> Batch:
    """y ~ Bernoulli(prior), x | y ~ N(±SEPARATION/2 · w, I)."""
    w, _ = _directions(n_features)
    y = (rng.random(size) < prior).astype(int)
    X = rng.standard_normal((size, n_features)) + np.outer(2 * y - 1, w) * SEPARATION / 2
    return X, y


def _relabel(rng: np.random.Generator, X: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """Labels drawn from P(y=1 | x) = sigmoid(SEPARATION · direction · x)."""
    return (rng.random(len(X)) < 1 / (1 + np.exp(-SEPARATION * X @ direction))).astype(int)


def _draw_batch(rng: np.random.Generator, kind: str, size: int, n_features: int) -> Batch:
    w, flipped = _directions(n_features)
    if kind == "prior":
        return _class_conditional(rng, size, n_features, DRIFTED_PRIOR)
    X, y = _class_conditional(rng, size, n_features, 0.5)
    if kind == "covariate":
        X[:, : (n_features + 1) // 2] += COVARIATE_SHIFT
        y = _relabel(rng, X, w)  # the balanced model's posterior, unchanged
    elif kind == "concept":
        y = _relabel(rng, X, flipped)  # same x, feature 0 now pushes the other way
    return X, y


def make_stream(
    kind: str, *, n_batches: int = 20, batch_size: int = 500, drift_at: int = 10, n_features: int = 5,
    seed: int = 0,
) -> list[Batch]:
    """Batches (X, y) of a binary problem whose distribution changes at batch ``drift_at``.

    Before the drift: y ~ Bernoulli(0.5) and x | y ~ N(±1.25 · w, I) with w = (1, 1, 0, …)/√2,
    so P(y=1 | x) = sigmoid(2.5 · w·x) and the Bayes accuracy is about 0.89. From ``drift_at`` on:

    * ``"none"``: nothing changes;
    * ``"covariate"``: P(x) moves (the first half of the features, rounded up, gain 0.75) and y
      is drawn from the unchanged P(y | x);
    * ``"prior"``: P(y=1) falls from 0.5 to 0.2 while P(x | y) stays the same;
    * ``"concept"``: x is drawn exactly as before but y from sigmoid(2.5 · w'·x), where w' flips
      the sign of feature 0: a model trained before the drift drops to about chance.

    The batches before ``drift_at`` are the same for every kind with the same seed.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    check_int("n_batches", n_batches, 1)
    check_int("batch_size", batch_size, 2)
    check_int("n_features", n_features, 2)
    check_int("drift_at", drift_at, 0)
    if drift_at > n_batches:
        raise ValueError(f"drift_at must be at most n_batches ({n_batches}), got {drift_at}")
    rng = np.random.default_rng(seed)
    kinds = ["none"] * drift_at + [kind] * (n_batches - drift_at)
    return [_draw_batch(rng, batch_kind, batch_size, n_features) for batch_kind in kinds]


# --- detectors ----------------------------------------------------------------------------------


def _bin_shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)
    return np.maximum(counts / len(values), _EPS)


def psi(reference: np.ndarray, current: np.ndarray, *, n_bins: int = 10) -> float:
    """Population stability index of one feature: Σ (c − r) · ln(c / r) over bins.

    The bins are the reference's quantiles (fewer when values repeat), so each holds about
    1/``n_bins`` of the reference; empty bins get a share of 1e-4. 0 means the same histogram;
    above 0.2 is the usual alarm level.
    """
    reference, current = _check_1d("reference", reference), _check_1d("current", current)
    check_int("n_bins", n_bins, 2)
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, n_bins + 1)[1:-1]))
    ref_share, cur_share = _bin_shares(reference, edges), _bin_shares(current, edges)
    return float(np.sum((cur_share - ref_share) * np.log(cur_share / ref_share)))


def psi_per_feature(reference: np.ndarray, current: np.ndarray, *, n_bins: int = 10) -> np.ndarray:
    """PSI of every column of two 2-D samples (rows x features)."""
    reference, current = _check_pair(reference, current)
    return np.array([psi(reference[:, j], current[:, j], n_bins=n_bins) for j in range(reference.shape[1])])


def ks_pvalues(reference: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Two-sample Kolmogorov–Smirnov p-value of every column (scipy.stats.ks_2samp)."""
    reference, current = _check_pair(reference, current)
    return np.atleast_1d(stats.ks_2samp(reference, current, axis=0).pvalue)


def _domain_probabilities(
    reference: np.ndarray, current: np.ndarray, *, seed: int, cv: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Out-of-fold P(current | x) from a logistic regression that tells the two samples apart.

    Returns the domain of every pooled row (0 reference, 1 current), its probability and its fold.
    """
    check_int("cv", cv, 2)
    if min(len(reference), len(current)) < cv:
        raise ValueError(f"each sample needs at least cv={cv} rows for the cross-validation")
    X = np.vstack([reference, current])
    domain = np.r_[np.zeros(len(reference), dtype=int), np.ones(len(current), dtype=int)]
    probability, fold = np.empty(len(X)), np.empty(len(X), dtype=int)
    splits = StratifiedKFold(n_splits=cv, shuffle=True, random_state=seed).split(X, domain)
    for k, (train, test) in enumerate(splits):
        model = make_pipeline(StandardScaler(), LogisticRegression(solver="newton-cholesky"))
        probability[test] = model.fit(X[train], domain[train]).predict_proba(X[test])[:, 1]
        fold[test] = k
    return domain, probability, fold


def classifier_two_sample_auc(
    reference: np.ndarray, current: np.ndarray, *, seed: int = 0, cv: int = 5
) -> float:
    """Classifier two-sample test statistic: the ROC-AUC, on held-out rows, of a logistic regression
    that tells the current rows from the reference rows. About 0.5 when the samples share a distribution.

    The AUC is computed within each of the ``cv`` folds and averaged: pooling the folds' scores
    would mix five differently calibrated models and widen the no-shift spread. Logistic
    regression (Newton steps: about 15 ms for 2 x 500 rows) sees shifts of the means; a change
    that leaves every linear projection alike would need a more flexible classifier.
    """
    reference, current = _check_pair(reference, current)
    domain, probability, fold = _domain_probabilities(reference, current, seed=seed, cv=cv)
    return float(np.mean([roc_auc_score(domain[fold == k], probability[fold == k]) for k in range(cv)]))


def c2st_auc_threshold(n_reference: int, n_current: int, *, alpha: float = 0.01) -> float:
    """AUC above which the classifier two-sample test alarms at level ``alpha`` (one-sided).

    For one fixed classifier scored on fresh rows, the no-shift AUC is a Mann–Whitney statistic:
    mean 0.5, standard deviation sqrt((n + m + 1) / (12 n m)). Cross-fitting about doubles the
    variance (every pair of folds enters twice: each fold helps train the model scored on the
    other), so the threshold is 0.5 + z_(1−alpha) · √2 · that standard deviation; the tests check
    the resulting false-alarm rate over seeds.
    """
    check_int("n_reference", n_reference, 1)
    check_int("n_current", n_current, 1)
    _check_alpha(alpha)
    sd = np.sqrt(2 * (n_reference + n_current + 1) / (12 * n_reference * n_current))
    return float(0.5 + stats.norm.ppf(1 - alpha) * sd)


def _rbf_kernel(Z: np.ndarray, bandwidth: float | None) -> np.ndarray:
    """RBF kernel exp(−d² / 2σ²) of the pooled sample; σ defaults to the median pairwise distance."""
    sq = pdist(Z, "sqeuclidean")  # each pair once
    if bandwidth is None:
        bandwidth = float(np.sqrt(np.median(sq)))
    if not bandwidth > 0:
        raise ValueError(f"bandwidth must be > 0 (or None for the median heuristic), got {bandwidth!r}")
    K = squareform(np.exp(-sq / (2 * bandwidth**2)))
    np.fill_diagonal(K, 1.0)
    return K


def _mmd2_from_kernel(K: np.ndarray, in_x: np.ndarray) -> np.ndarray:
    """Unbiased MMD² for each column of ``in_x`` (pooled rows x splits, True for the first sample).

    With a the 0/1 indicator of the first sample and r = K·1, every block sum is a quadratic form:
    Σ_xx = aᵀKa, Σ_xy = aᵀr − aᵀKa, Σ_yy = 1ᵀr − 2aᵀr + aᵀKa: all splits cost one matrix product.
    """
    a = in_x.astype(float)
    n = a[:, 0].sum()
    m = len(a) - n
    r = K.sum(axis=1)
    diagonal = np.diag(K)
    xx = (a * (K @ a)).sum(axis=0)
    ar = a.T @ r
    sum_xx = xx - diagonal @ a
    sum_yy = r.sum() - 2 * ar + xx - (diagonal.sum() - diagonal @ a)
    sum_xy = ar - xx
    return sum_xx / (n * (n - 1)) + sum_yy / (m * (m - 1)) - 2 * sum_xy / (n * m)


def mmd2_rbf(X: np.ndarray, Y: np.ndarray, *, bandwidth: float | None = None) -> float:
    """Unbiased squared maximum mean discrepancy (Gretton et al., 2012) with an RBF kernel.

    The bandwidth defaults to the median distance between pooled points. Near 0 (it can be
    slightly negative) when X and Y share a distribution. Memory grows as (len(X) + len(Y))².
    """
    X, Y = _check_pair(X, Y)
    K = _rbf_kernel(np.vstack([X, Y]), bandwidth)
    in_x = np.r_[np.ones(len(X), dtype=bool), np.zeros(len(Y), dtype=bool)]
    return float(_mmd2_from_kernel(K, in_x[:, None])[0])


def mmd_permutation_pvalue(
    X: np.ndarray, Y: np.ndarray, *, n_permutations: int = 200, bandwidth: float | None = None, seed: int = 0
) -> float:
    """P-value of the MMD test: the share of random relabellings of the pooled sample whose MMD² is
    at least the observed one, counting the observed split, so never below 1 / (n_permutations + 1)."""
    X, Y = _check_pair(X, Y)
    check_int("n_permutations", n_permutations, 1)
    K = _rbf_kernel(np.vstack([X, Y]), bandwidth)
    rng = np.random.default_rng(seed)
    ranks = rng.random((len(K), n_permutations)).argsort(axis=0)  # a random permutation per column
    observed = np.r_[np.ones(len(X), dtype=bool), np.zeros(len(Y), dtype=bool)]
    splits = np.column_stack([observed, ranks < len(X)])
    values = _mmd2_from_kernel(K, splits)
    return float((1 + np.sum(values[1:] >= values[0])) / (1 + n_permutations))


def detect_drift(
    reference: np.ndarray, current: np.ndarray, method: str, *, alpha: float = 0.01, seed: int = 0
) -> bool:
    """One yes/no drift decision on two 2-D samples, the same interface for every method:

    * ``"psi"``: the largest PSI over features exceeds 0.2 (a rule of thumb: ``alpha`` is unused);
    * ``"ks"``: the smallest KS p-value is below ``alpha`` / number of features (Bonferroni);
    * ``"c2st"``: the classifier two-sample AUC exceeds ``c2st_auc_threshold`` at ``alpha``;
    * ``"mmd"``: the MMD permutation p-value (200 permutations) is below ``alpha``.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    _check_alpha(alpha)
    reference, current = _check_pair(reference, current)
    if method == "psi":
        return bool(psi_per_feature(reference, current).max() > PSI_ALARM)
    if method == "ks":
        return bool(ks_pvalues(reference, current).min() < alpha / reference.shape[1])
    if method == "c2st":
        auc = classifier_two_sample_auc(reference, current, seed=seed)
        return auc > c2st_auc_threshold(len(reference), len(current), alpha=alpha)
    return mmd_permutation_pvalue(reference, current, seed=seed) < alpha


@dataclass
class DetectorResult:
    """What ``evaluate_detector`` saw on one stream."""

    alarms: list[int]  # indices of the batches that raised an alarm
    first_alarm: int | None  # the first of them, false or not
    delay: int | None  # batches from the drift to the first alarm at or after it
    false_alarms: int  # alarms before the drift


def evaluate_detector(
    stream: Sequence[Batch], method: str, *, drift_at: int, reference_batches: int = 1, alpha: float = 0.01,
    seed: int = 0,
) -> DetectorResult:
    """Run ``detect_drift`` on every batch after the first ``reference_batches``, which (pooled) are
    the reference; labels are not used. Pass ``drift_at=len(stream)`` for a stream without drift."""
    check_int("reference_batches", reference_batches, 1)
    if not reference_batches <= drift_at <= len(stream):
        raise ValueError(f"drift_at must lie in reference_batches ({reference_batches}) .. len(stream) "
                         f"({len(stream)}), got {drift_at!r}")
    reference = np.vstack([X for X, _ in stream[:reference_batches]])
    alarms = [i for i in range(reference_batches, len(stream))
              if detect_drift(reference, stream[i][0], method, alpha=alpha, seed=seed + i)]
    after = [i for i in alarms if i >= drift_at]
    return DetectorResult(
        alarms=alarms,
        first_alarm=alarms[0] if alarms else None,
        delay=after[0] - drift_at if after else None,
        false_alarms=len(alarms) - len(after),
    )


def prediction_shift(reference_probs: np.ndarray, current_probs: np.ndarray, *, n_bins: int = 10) -> float:
    """A monitor that needs no labels: the PSI of the model's scores (pass the positive-class
    probability, or the top-class confidence for several classes) now against a reference window.

    It sees any shift of P(x) that moves the predictions, prior shift included, but not concept
    drift: when only P(y | x) changes, the model's outputs keep their distribution.
    """
    return psi(reference_probs, current_probs, n_bins=n_bins)


# --- corrections --------------------------------------------------------------------------------


def em_prior_correction(
    probs: np.ndarray, train_priors: np.ndarray, *, max_iter: int = 100, tol: float = 1e-6
) -> tuple[np.ndarray, np.ndarray]:
    """Saerens, Latinne & Decaestecker (2002): estimate new class priors from unlabelled data.

    Under prior shift P(x | y) is unchanged, so a calibrated posterior p(y | x) only needs
    reweighting by new prior / training prior. EM alternates that reweighting (E-step) with
    the new priors := mean adjusted posterior (M-step) until the priors move less than ``tol``.
    Returns (estimated priors (k,), adjusted posteriors (n, k)).
    """
    probs = np.asarray(probs, dtype=float)
    train_priors = np.asarray(train_priors, dtype=float)
    if probs.ndim != 2 or len(probs) == 0 or probs.shape[1] < 2:
        raise ValueError(f"probs must be a 2-D array (rows x classes, 2 or more), got shape {probs.shape}")
    if np.any(probs < 0) or not np.allclose(probs.sum(axis=1), 1, atol=1e-6):
        raise ValueError("every row of probs must be a probability distribution (non-negative, sums to 1)")
    k = probs.shape[1]
    if train_priors.shape != (k,) or np.any(train_priors <= 0) or not np.isclose(train_priors.sum(), 1):
        raise ValueError(f"train_priors must be {k} positive numbers that sum to 1, got {train_priors}")
    check_int("max_iter", max_iter, 1)
    priors = train_priors
    for _ in range(max_iter):
        adjusted = probs * (priors / train_priors)
        adjusted /= adjusted.sum(axis=1, keepdims=True)
        updated = adjusted.mean(axis=0)
        change = np.abs(updated - priors).max()
        priors = updated
        if change < tol:
            break
    adjusted = probs * (priors / train_priors)
    return priors, adjusted / adjusted.sum(axis=1, keepdims=True)


def domain_classifier_weights(
    source: np.ndarray, target: np.ndarray, *, seed: int = 0, clip: float = 10.0, cv: int = 5
) -> np.ndarray:
    """Importance weights p_target(x) / p_source(x) for the source rows, for covariate-shift correction.

    A logistic regression tells target rows from source rows; by Bayes' rule the density ratio
    is its odds P(target | x) / P(source | x) times n_source / n_target. The probabilities are
    out-of-fold (``cv`` folds), so a row's weight never comes from a model that saw it, and the
    weights are clipped at ``clip`` to bound the variance of weighted estimates.
    """
    source, target = _check_pair(source, target)
    if not clip > 0:
        raise ValueError(f"clip must be > 0, got {clip!r}")
    domain, probability, _ = _domain_probabilities(source, target, seed=seed, cv=cv)
    p = probability[domain == 0]
    return np.minimum(p / np.maximum(1 - p, 1e-12) * len(source) / len(target), clip)
