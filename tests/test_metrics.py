import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
from sklearn import metrics as skm

from helpers import metrics


@pytest.fixture
def scored():
    rng = np.random.default_rng(0)
    y = (rng.random(400) < 0.2).astype(int)
    score = np.round(rng.normal(y * 1.2, 1.0), 1)  # rounded: plenty of ties
    return y, score


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_confusion_counts_match_sklearn(scored):
    y, score = scored
    pred = (score > 0.5).astype(int)
    tn, fp, fn, tp = skm.confusion_matrix(y, pred).ravel()
    assert metrics.confusion_counts(y, pred) == metrics.Counts(tp=tp, fp=fp, fn=fn, tn=tn)


@pytest.mark.parametrize("cut", [-1.0, 0.3, 0.8, 2.0])
def test_binary_metrics_match_sklearn(scored, cut):
    y, score = scored
    pred = (score > cut).astype(int)
    got = metrics.binary_metrics(metrics.confusion_counts(y, pred), beta=2.0)
    expected = {
        "accuracy": skm.accuracy_score(y, pred),
        "precision": skm.precision_score(y, pred, zero_division=0),
        "recall": skm.recall_score(y, pred),
        "specificity": skm.recall_score(y, pred, pos_label=0),
        "f1": skm.f1_score(y, pred, zero_division=0),
        "fbeta": skm.fbeta_score(y, pred, beta=2.0, zero_division=0),
        "balanced_accuracy": skm.balanced_accuracy_score(y, pred),
        "mcc": skm.matthews_corrcoef(y, pred),
    }
    assert got == pytest.approx(expected)


def test_binary_metrics_empty_denominators_are_zero():
    got = metrics.binary_metrics(metrics.Counts(tp=0, fp=0, fn=5, tn=95))
    assert got["precision"] == 0 and got["f1"] == 0 and got["mcc"] == 0
    assert got["accuracy"] == 0.95 and got["balanced_accuracy"] == 0.5


def test_binary_metrics_rejects_bad_input():
    with pytest.raises(TypeError, match="Counts"):
        metrics.binary_metrics((1, 2, 3, 4))
    with pytest.raises(ValueError, match="beta"):
        metrics.binary_metrics(metrics.Counts(1, 1, 1, 1), beta=0)


def test_roc_sweep_matches_sklearn(scored):
    y, score = scored
    fpr, tpr, thresholds = metrics.roc_by_threshold_sweep(y, score)
    sk_fpr, sk_tpr, sk_thr = skm.roc_curve(y, score, drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr)
    np.testing.assert_allclose(tpr, sk_tpr)
    np.testing.assert_allclose(thresholds, sk_thr)


def test_rank_auc_matches_sklearn_with_ties(scored):
    y, score = scored
    assert metrics.rank_auc(y, score) == pytest.approx(skm.roc_auc_score(y, score))
    assert metrics.rank_auc([0, 1], [0.5, 0.5]) == 0.5
    assert metrics.rank_auc([0, 0, 1], [0.1, 0.2, 0.9]) == 1.0


def test_expected_calibration_error_by_hand():
    y = np.array([0, 0, 1, 1, 1])
    prob = np.array([0.05, 0.15, 0.95, 0.95, 0.55])
    # bins: [0,.1): 0.05 vs 0; [.1,.2): .15 vs 0; [.5,.6): .55 vs 1; [.9,1]: .95 vs 1
    expected = (0.05 + 0.15 + 0.45 + 2 * 0.05) / 5
    assert metrics.expected_calibration_error(y, prob) == pytest.approx(expected)
    assert metrics.expected_calibration_error([0, 1], [1.0, 1.0], n_bins=1) == pytest.approx(0.5)


def test_perfectly_calibrated_probabilities_have_small_ece():
    rng = np.random.default_rng(1)
    prob = rng.random(200_000)
    y = (rng.random(prob.size) < prob).astype(int)
    assert metrics.expected_calibration_error(y, prob) < 0.01


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"y_true": [0, 2], "y_prob": [0.1, 0.2]}, "only 0 and 1"),
        ({"y_true": [[0, 1]], "y_prob": [0.1, 0.2]}, "1-D"),
        ({"y_true": [0, 1], "y_prob": [0.1]}, "shape"),
        ({"y_true": [0, 1], "y_prob": [0.1, np.nan]}, "finite"),
        ({"y_true": [0, 1], "y_prob": [0.1, 1.2]}, r"\[0, 1\]"),
        ({"y_true": [0, 1], "y_prob": [0.1, 0.2], "n_bins": 0}, "n_bins"),
    ],
)
def test_expected_calibration_error_rejects_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        metrics.expected_calibration_error(**kwargs)


def test_curve_metrics_need_both_classes():
    with pytest.raises(ValueError, match="both classes"):
        metrics.rank_auc([1, 1], [0.2, 0.3])
    with pytest.raises(ValueError, match="both classes"):
        metrics.roc_by_threshold_sweep([0, 0], [0.2, 0.3])


def test_confusion_counts_rejects_length_mismatch():
    with pytest.raises(ValueError, match="same length"):
        metrics.confusion_counts([0, 1], [0, 1, 1])


def test_recall_at_precision(scored):
    y, score = scored
    precision, recall, _ = skm.precision_recall_curve(y, score)
    expected = recall[:-1][precision[:-1] >= 0.6].max()
    assert metrics.recall_at_precision(y, score, 0.6) == pytest.approx(expected)
    assert metrics.recall_at_precision([0, 1, 0], [0.9, 0.5, 0.1], 1.0) == 0.0
    with pytest.raises(ValueError, match="min_precision"):
        metrics.recall_at_precision(y, score, 0)


def test_threshold_for_recall_is_the_highest_reaching_the_target(scored):
    y, score = scored
    t = metrics.threshold_for_recall(y, score, 0.9)
    assert skm.recall_score(y, score >= t) >= 0.9
    higher = np.unique(score[score > t])
    assert all(skm.recall_score(y, score >= h) < 0.9 for h in higher)
    with pytest.raises(ValueError, match="target_recall"):
        metrics.threshold_for_recall(y, score, 1.5)


def test_threshold_for_min_cost_beats_every_other_threshold(scored):
    y, score = scored

    def cost(t):
        pred = score >= t
        return 1 * np.sum(pred & (y == 0)) + 10 * np.sum(~pred & (y == 1))

    t = metrics.threshold_for_min_cost(y, score, cost_fp=1, cost_fn=10)
    assert cost(t) == min(cost(u) for u in np.unique(score))
    with pytest.raises(ValueError, match="costs"):
        metrics.threshold_for_min_cost(y, score, cost_fp=0, cost_fn=0)


def test_scorecard(scored):
    y, score = scored
    prob = 1 / (1 + np.exp(-score))
    card = metrics.scorecard(y, prob, threshold=0.6, min_precision=0.5)
    assert card["pr_auc"] == pytest.approx(skm.average_precision_score(y, prob))
    assert card["roc_auc"] == pytest.approx(skm.roc_auc_score(y, prob))
    assert card["f1"] == pytest.approx(skm.f1_score(y, prob >= 0.6))
    assert card["recall@p0.5"] == metrics.recall_at_precision(y, prob, 0.5)
    assert set(card) == {"pr_auc", "roc_auc", "recall@p0.5", "f1", "recall", "balanced_accuracy", "accuracy"}


def test_plot_roc_pr_draws_one_line_per_model_and_chance(scored):
    y, score = scored
    fig = metrics.plot_roc_pr({"a": (y, score), "b": (y, -score)}, title="test")
    ax_roc, ax_pr = fig.axes
    assert "test" in ax_roc.get_title() and ax_pr.get_xlabel() == "recall"
    assert len(ax_roc.get_lines()) == 3 and len(ax_pr.get_lines()) == 3


def test_plot_reliability_labels_ece(scored):
    y, score = scored
    prob = 1 / (1 + np.exp(-score))
    ax = metrics.plot_reliability({"model": (y, prob)}, n_bins=5)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(label.startswith("model (ECE ") for label in labels)
    _, own_ax = plt.subplots()
    assert metrics.plot_reliability({"m": (y, prob)}, ax=own_ax) is own_ax


@pytest.mark.parametrize("curves", [{}, [], {"a": (1, 2, 3)}])
def test_plots_reject_bad_curves(curves):
    with pytest.raises(TypeError, match="curves"):
        metrics.plot_roc_pr(curves)
