"""What keeps a served model trustworthy: calibration (multi-class ECE, reliability bins, temperature
scaling), out-of-distribution scores, a fallback chain of handlers, and a staged canary rollout.

Written by hand because the mechanisms are the lesson. The binary ECE of ``helpers.metrics`` is
reused for the multi-class one (top-label confidence against correctness is a binary problem); the
tests check temperature scaling on logits made overconfident on purpose and the canary's decision
rule over many seeds.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

import numpy as np
import torch
from scipy.special import logsumexp, softmax

from helpers.metrics import expected_calibration_error

# --------------------------------------------------------------------------- calibration


def _check_n_bins(n_bins: int) -> None:
    if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 1:
        raise ValueError(f"n_bins must be an int >= 1, got {n_bins!r}")


def _labels_and_probs(labels: Any, probs: Any) -> tuple[np.ndarray, np.ndarray]:
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels)
    if probs.ndim != 2 or probs.shape[0] == 0 or probs.shape[1] < 2:
        raise ValueError(f"probs must be a 2-D array (samples x classes, >= 2), got shape {probs.shape}")
    if labels.shape != (probs.shape[0],):
        raise ValueError(f"labels must have shape ({probs.shape[0]},) like probs' rows, got {labels.shape}")
    if not np.isfinite(probs).all() or probs.min() < 0 or not np.allclose(probs.sum(axis=1), 1, atol=1e-6):
        raise ValueError("probs must hold non-negative rows that sum to 1 (softmax outputs)")
    if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0 or labels.max() >= probs.shape[1]:
        raise ValueError(f"labels must be integers in 0 .. {probs.shape[1] - 1}")
    return labels, probs


def _top_label(labels: Any, probs: Any) -> tuple[np.ndarray, np.ndarray]:
    """(confidence of the predicted class, 1 where the prediction is right) for each sample."""
    labels, probs = _labels_and_probs(labels, probs)
    return probs.max(axis=1), (probs.argmax(axis=1) == labels).astype(np.int64)


def multiclass_ece(labels: Any, probs: Any, *, n_bins: int = 15) -> float:
    """Top-label ECE (Guo et al. 2017): |confidence - accuracy| of the predicted class, averaged over
    equal-width confidence bins weighted by their share of the samples.

    Confidence against correctness is a binary problem, so this is ``expected_calibration_error``
    of ``helpers.metrics`` applied to it.
    """
    _check_n_bins(n_bins)
    confidence, correct = _top_label(labels, probs)
    return expected_calibration_error(correct, confidence, n_bins=n_bins)


def reliability_bins(
    labels: Any, probs: Any, *, n_bins: int = 15
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per equal-width confidence bin: (mean confidence, accuracy, count), for a reliability diagram.

    Bins are those of ``multiclass_ece`` ([k/n, (k+1)/n), the last one closed); empty bins hold NaN.
    A calibrated model has accuracy = confidence in every bin.
    """
    _check_n_bins(n_bins)
    confidence, correct = _top_label(labels, probs)
    bins = np.minimum((confidence * n_bins).astype(int), n_bins - 1)
    counts = np.bincount(bins, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(bins, weights=confidence, minlength=n_bins) / counts
        accuracy = np.bincount(bins, weights=correct, minlength=n_bins) / counts
    return mean_confidence, accuracy, counts


def _logits_and_labels(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    rows, columns = logits.shape if isinstance(logits, torch.Tensor) and logits.ndim == 2 else (0, 0)
    if rows == 0 or columns < 2:
        raise ValueError("logits must be a 2-D tensor (samples x classes, at least 2)")
    if not isinstance(labels, torch.Tensor) or labels.shape != (logits.shape[0],):
        raise ValueError(f"labels must be a tensor of shape ({logits.shape[0]},) like logits' rows")
    if labels.dtype.is_floating_point or labels.min() < 0 or labels.max() >= logits.shape[1]:
        raise ValueError(f"labels must be integers in 0 .. {logits.shape[1] - 1}")
    if not torch.isfinite(logits).all():
        raise ValueError("logits must be finite")
    return logits.detach().double(), labels.long()


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor, *, max_iter: int = 100) -> float:
    """Temperature scaling (Guo et al. 2017): the T > 0 minimising the NLL of ``softmax(logits / T)``
    on a held-out set. Optimised as log T (so T stays positive) by L-BFGS from T = 1.

    Dividing all logits by one T changes no argmax: accuracy is untouched, only confidence moves.
    """
    logits, labels = _logits_and_labels(logits, labels)
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(log_t.detach().exp())


# --------------------------------------------------------------------------- out-of-distribution scores


def _logits_array(logits: Any) -> np.ndarray:
    if isinstance(logits, torch.Tensor):
        logits = logits.detach().cpu().double().numpy()
    array = np.asarray(logits, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] < 2:
        raise ValueError(f"logits must be a 2-D array (samples x classes, >= 2), got shape {array.shape}")
    return array


def max_softmax_score(logits: Any) -> np.ndarray:
    """Maximum softmax probability per sample (Hendrycks & Gimpel 2017); higher = more in-distribution.

    Softmax ignores a constant added to all logits, so this score cannot see how large they are.
    """
    return softmax(_logits_array(logits), axis=1).max(axis=1)


def energy_score(logits: Any, *, temperature: float = 1.0) -> np.ndarray:
    """Negative free energy T·logsumexp(logits / T) per sample (Liu et al. 2020); higher = more
    in-distribution. Unlike the max softmax it grows with the logits' overall magnitude."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    return temperature * logsumexp(_logits_array(logits) / temperature, axis=1)


# --------------------------------------------------------------------------- graceful degradation


class FallbackChain:
    """Handlers tried in order (a model, a simpler model, a cached default...): the first that returns
    without raising answers. ``counts`` records how often each answered, ``failures`` how often each
    raised. If every handler raises, a ``RuntimeError`` chained to the last exception is raised."""

    def __init__(self, handlers: Sequence[tuple[str, Callable[[Any], Any]]]) -> None:
        names = [name for name, _ in handlers]
        if not handlers or len(set(names)) != len(names):
            raise ValueError(f"handlers must be a non-empty sequence of (unique name, callable), got {names}")
        for name, handler in handlers:
            if not callable(handler):
                raise ValueError(f"handler {name!r} is not callable")
        self.handlers = list(handlers)
        self.counts: dict[str, int] = dict.fromkeys(names, 0)
        self.failures: dict[str, int] = dict.fromkeys(names, 0)

    def __call__(self, x: Any) -> tuple[Any, str]:
        """(the first handler's result that did not raise, that handler's name)."""
        error: Exception | None = None
        for name, handler in self.handlers:
            try:
                result = handler(x)
            except Exception as exc:  # any failure of one handler means: try the next
                self.failures[name] += 1
                error = exc
                continue
            self.counts[name] += 1
            return result, name
        raise RuntimeError(f"all {len(self.handlers)} handlers failed; the last error is chained") from error


# --------------------------------------------------------------------------- canary rollout


@dataclass
class CanaryResult:
    """Outcome of ``simulate_canary``; ``stages_log`` holds one dict per stage that ran."""

    promoted: bool
    rolled_back_at: int | None  # index of the stage whose check failed
    bad_requests_served: int  # errors the canary served before it was promoted or rolled back
    stages_log: list[dict[str, float]] = field(default_factory=list)


def _check_rate(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")


def _excess_error_z(canary: np.ndarray, baseline: np.ndarray, margin: float) -> float:
    """z statistic of H0 "canary error - baseline error <= margin" against the one-sided alternative,
    from the (requests, errors) of each arm.

    Agresti–Caffo: one error and one success are added to each arm before the Wald standard error,
    which keeps it positive at 0 errors and holds its level with the few requests of early stages.
    """
    n_canary, n_baseline = canary[0] + 2, baseline[0] + 2
    p_canary, p_baseline = (canary[1] + 1) / n_canary, (baseline[1] + 1) / n_baseline
    se = math.sqrt(p_canary * (1 - p_canary) / n_canary + p_baseline * (1 - p_baseline) / n_baseline)
    return float((p_canary - p_baseline - margin) / se)


def simulate_canary(
    baseline_error: float,
    canary_error: float,
    *,
    stages: Sequence[float] = (0.01, 0.05, 0.25, 0.5, 1.0),
    requests_per_stage: int = 2000,
    max_error_increase: float = 0.02,
    alpha: float = 0.05,
    seed: int = 0,
) -> CanaryResult:
    """Roll a new version out stage by stage and roll it back automatically when it is worse.

    Stage i sends ``stages[i]`` of ``requests_per_stage`` requests to the canary and the rest to the
    baseline; each request fails with its version's error rate. After each stage, on the counts so
    far, a one-sided two-proportion z-test (Agresti–Caffo adjusted) asks whether the canary's error
    exceeds the baseline's by more than ``max_error_increase`` (the tolerated regression); the canary
    is rolled back as soon as z > the normal quantile of 1 - alpha / len(stages). Bonferroni over the
    stages keeps the chance of any false rollback at most ``alpha`` for a release exactly at the
    tolerance, and far below it for one no worse than the baseline. A release that passes every stage
    is promoted.
    """
    _check_rate("baseline_error", baseline_error)
    _check_rate("canary_error", canary_error)
    _check_rate("max_error_increase", max_error_increase)
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    requests = requests_per_stage
    if isinstance(requests, bool) or not isinstance(requests, int) or requests < 1:
        raise ValueError(f"requests_per_stage must be an int >= 1, got {requests_per_stage!r}")
    fractions = np.asarray(stages, dtype=float)
    if fractions.ndim != 1 or fractions.size == 0 or not (fractions[0] > 0 and fractions[-1] <= 1):
        raise ValueError(f"stages must be a non-empty sequence of traffic shares in (0, 1], got {stages!r}")
    if np.any(np.diff(fractions) <= 0) or round(fractions[0] * requests) < 1:
        raise ValueError("stages must increase, and the first must send at least one request to the canary")
    threshold = NormalDist().inv_cdf(1 - alpha / len(fractions))
    rng = np.random.default_rng(seed)
    canary = np.zeros(2, dtype=np.int64)  # requests, errors
    baseline = np.zeros(2, dtype=np.int64)
    log: list[dict[str, float]] = []
    for i, fraction in enumerate(fractions):
        n_canary = round(fraction * requests)
        n_baseline = requests - n_canary
        canary += (n_canary, rng.binomial(n_canary, canary_error))
        baseline += (n_baseline, rng.binomial(n_baseline, baseline_error))
        z = _excess_error_z(canary, baseline, max_error_increase)
        log.append({"stage": i, "fraction": float(fraction), "canary_requests": int(canary[0]),
                    "canary_errors": int(canary[1]), "baseline_requests": int(baseline[0]),
                    "baseline_errors": int(baseline[1]), "z": z, "threshold": threshold})
        if z > threshold:
            return CanaryResult(False, i, int(canary[1]), log)
    return CanaryResult(True, None, int(canary[1]), log)
