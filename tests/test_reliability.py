import numpy as np
import pytest
import torch
from scipy.special import softmax

from helpers import reliability as rel
from helpers.metrics import expected_calibration_error

torch.set_num_threads(1)


def calibrated_logits(n: int = 6000, n_classes: int = 5, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and labels drawn from softmax(logits): calibrated by construction."""
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, n_classes, generator=generator, dtype=torch.float64) * 1.5
    labels = torch.multinomial(logits.softmax(dim=1), 1, generator=generator).squeeze(1)
    return logits, labels


def test_multiclass_ece_is_the_binary_ece_of_top_label_correctness():
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [0.25, 0.25, 0.5], [0.9, 0.05, 0.05]])
    labels = np.array([0, 2, 2, 1])
    # confidences 0.7 0.6 0.5 0.9, correct 1 0 1 0; with 2 bins, [0.5, 1] holds all four:
    # |mean confidence 0.675 - accuracy 0.5| = 0.175
    assert rel.multiclass_ece(labels, probs, n_bins=2) == pytest.approx(0.175)
    # 10 bins: 0.5 (right), 0.6 (wrong), 0.7 (right), 0.9 (wrong) each alone
    assert rel.multiclass_ece(labels, probs, n_bins=10) == pytest.approx((0.5 + 0.6 + 0.3 + 0.9) / 4)
    assert rel.multiclass_ece(labels, probs, n_bins=10) == expected_calibration_error(
        [1, 0, 1, 0], [0.7, 0.6, 0.5, 0.9], n_bins=10)


def test_reliability_bins_sum_to_the_ece_and_count_every_sample():
    logits, labels = calibrated_logits()
    probs = softmax(3 * logits.numpy(), axis=1)
    confidence, accuracy, counts = rel.reliability_bins(labels.numpy(), probs, n_bins=15)
    assert counts.sum() == len(labels) and counts.shape == (15,)
    filled = counts > 0
    assert np.isnan(confidence[~filled]).all() and np.isnan(accuracy[~filled]).all()
    ece = (counts[filled] * np.abs(confidence[filled] - accuracy[filled])).sum() / counts.sum()
    assert ece == pytest.approx(rel.multiclass_ece(labels.numpy(), probs, n_bins=15))
    high = filled & (np.arange(15) >= 12)
    assert (accuracy[high] < confidence[high] - 0.05).all()  # overconfident where it is most confident


def test_temperature_scaling_undoes_overconfidence_and_keeps_accuracy():
    logits, labels = calibrated_logits()
    overconfident = 3 * logits
    temperature = rel.fit_temperature(overconfident, labels)
    assert temperature == pytest.approx(3.0, rel=0.10)
    before = rel.multiclass_ece(labels.numpy(), overconfident.softmax(1).numpy())
    after = rel.multiclass_ece(labels.numpy(), (overconfident / temperature).softmax(1).numpy())
    assert before > 0.2 and after < 0.05
    for t in (0.3, 1.0, temperature, 10.0):
        assert torch.equal((overconfident / t).argmax(1), overconfident.argmax(1))


def test_temperature_of_calibrated_logits_is_near_one():
    logits, labels = calibrated_logits(seed=1)
    assert rel.fit_temperature(logits, labels) == pytest.approx(1.0, abs=0.08)


def test_ood_scores_match_hand_computation():
    logits = np.array([[2.0, 0.0, -1.0], [0.5, 0.5, 0.5]])
    expected_msp = [np.exp(2) / (np.exp(2) + 1 + np.exp(-1)), 1 / 3]
    assert rel.max_softmax_score(logits) == pytest.approx(expected_msp)
    assert rel.max_softmax_score(torch.tensor(logits)) == pytest.approx(expected_msp)
    assert rel.energy_score(logits) == pytest.approx([np.log(np.exp(2) + 1 + np.exp(-1)), 0.5 + np.log(3)])
    t = 2.0
    expected = t * np.log(np.exp(2 / t) + 1 + np.exp(-1 / t))
    assert rel.energy_score(logits, temperature=t)[0] == pytest.approx(expected)


def test_energy_sees_a_shift_of_all_logits_that_max_softmax_cannot():
    logits = np.random.default_rng(0).normal(size=(50, 4))
    shifted = logits + 5.0
    assert rel.max_softmax_score(shifted) == pytest.approx(rel.max_softmax_score(logits))
    assert rel.energy_score(shifted) == pytest.approx(rel.energy_score(logits) + 5.0)


def test_fallback_chain_stays_available_when_the_primary_fails():
    rng = np.random.default_rng(0)

    def primary(x):
        if rng.random() < 0.3:
            raise TimeoutError("model server timed out")
        return 2 * x

    chain = rel.FallbackChain([("model", primary), ("cache", lambda x: 0)])
    answers = [chain(x) for x in range(1000)]
    assert len(answers) == 1000  # 100 % availability: nothing raised
    assert all(result == (2 * x if name == "model" else 0) for x, (result, name) in enumerate(answers))
    assert chain.counts["model"] + chain.counts["cache"] == 1000
    assert chain.failures == {"model": chain.counts["cache"], "cache": 0}
    assert 0.25 < chain.counts["cache"] / 1000 < 0.35


def test_fallback_chain_skips_a_failing_middle_handler_and_raises_when_all_fail():
    def broken(x):
        raise KeyError(x)

    chain = rel.FallbackChain([("a", broken), ("b", broken), ("c", str)])
    assert chain(5) == ("5", "c")
    assert chain.failures == {"a": 1, "b": 1, "c": 0} and chain.counts == {"a": 0, "b": 0, "c": 1}
    with pytest.raises(RuntimeError, match="all 2 handlers failed") as info:
        rel.FallbackChain([("a", broken), ("b", broken)])(1)
    assert isinstance(info.value.__cause__, KeyError)


@pytest.mark.parametrize("handlers", [[], [("a", str), ("a", repr)], [("a", 3)]])
def test_fallback_chain_rejects_bad_handlers(handlers):
    with pytest.raises(ValueError):
        rel.FallbackChain(handlers)


def test_canary_promotes_a_healthy_release():
    results = [rel.simulate_canary(0.02, 0.02, seed=seed) for seed in range(50)]
    assert sum(r.promoted for r in results) >= 45
    promoted = next(r for r in results if r.promoted)
    assert promoted.rolled_back_at is None and len(promoted.stages_log) == 5
    assert promoted.bad_requests_served == promoted.stages_log[-1]["canary_errors"]
    assert promoted.stages_log[-1]["canary_requests"] == 2000 * (0.01 + 0.05 + 0.25 + 0.5 + 1.0)


def test_canary_rolls_back_a_bad_release_early():
    results = [rel.simulate_canary(0.02, 0.10, seed=seed) for seed in range(50)]
    assert not any(r.promoted for r in results)
    assert all(r.rolled_back_at is not None and r.rolled_back_at <= 2 for r in results)  # by the 25 % stage
    full_rollout_errors = 0.10 * 2000 * 5
    assert max(r.bad_requests_served for r in results) < full_rollout_errors / 5
    assert all(len(r.stages_log) == r.rolled_back_at + 1 for r in results)


def test_canary_is_deterministic_given_the_seed():
    assert rel.simulate_canary(0.05, 0.08, seed=3) == rel.simulate_canary(0.05, 0.08, seed=3)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"canary_error": 1.5}, "canary_error"), ({"stages": (0.5, 0.2)}, "increase"),
    ({"stages": ()}, "stages"), ({"stages": (0.0001, 1.0)}, "at least one request"),
    ({"requests_per_stage": 0}, "requests_per_stage"), ({"alpha": 1.0}, "alpha"),
])
def test_simulate_canary_rejects_bad_input(kwargs, message):
    arguments = {"baseline_error": 0.02, "canary_error": 0.02, **kwargs}
    with pytest.raises(ValueError, match=message):
        rel.simulate_canary(**arguments)


@pytest.mark.parametrize(("labels", "probs", "message"), [
    ([0, 1], [[0.5, 0.5]], "labels"), ([0], [[0.5, 0.6]], "sum to 1"), ([2], [[0.5, 0.5]], "integers"),
    ([0], [0.5, 0.5], "2-D"),
])
def test_calibration_functions_reject_bad_input(labels, probs, message):
    with pytest.raises(ValueError, match=message):
        rel.multiclass_ece(np.array(labels), np.array(probs))


def test_fit_temperature_rejects_float_labels():
    with pytest.raises(ValueError, match="integers"):
        rel.fit_temperature(torch.zeros(3, 2), torch.zeros(3))
