"""Timing that a reader can trust: warm-up, repeats, CUDA synchronisation, median and spread.

Compare variants as ratios measured in one run (``compare``); never assert an absolute time. A claim
about speed rests on a ratio's confidence bound (``Comparison.ratio(...).faster()``), not on a point
estimate: a machine that is slower or busier than the author's shifts every time, but it shifts both
sides of an interleaved pair alike.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from helpers.device import synchronize


def format_seconds(seconds: float) -> str:
    """Human units: ``0.00042`` → ``'420 µs'``, ``1.5`` → ``'1.5 s'``, ``0.0009996`` → ``'1 ms'``."""
    if seconds < 0:
        raise ValueError(f"seconds must be >= 0, got {seconds}")
    rounded = float(f"{seconds:.3g}")  # pick the unit after rounding: never '1e+03 µs'
    if rounded >= 1000:
        return f"{seconds:.0f} s"
    for scale, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs")):
        if rounded >= scale:
            return f"{rounded / scale:.3g} {unit}"
    return f"{rounded / 1e-9:.3g} ns"


@dataclass(frozen=True)
class Timing:
    """Repeated wall-clock measurements of one callable."""

    name: str
    times_s: tuple[float, ...]

    @property
    def median_s(self) -> float:
        return statistics.median(self.times_s)

    @property
    def min_s(self) -> float:
        return min(self.times_s)

    @property
    def iqr_s(self) -> float:
        """Inter-quartile range: the spread, robust to one slow outlier."""
        if len(self.times_s) < 2:
            return 0.0
        q1, _, q3 = statistics.quantiles(self.times_s, n=4, method="inclusive")
        return q3 - q1

    def __str__(self) -> str:
        return (
            f"{self.name}: {format_seconds(self.median_s)} median "
            f"(IQR {format_seconds(self.iqr_s)}, n={len(self.times_s)})"
        )


def _check_counts(warmup: int, repeats: int) -> None:
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup must be an int >= 0, got {warmup!r}")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be an int >= 1, got {repeats!r}")


def _timed_call(fn: Callable[[], Any], device: Any) -> float:
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def time_fn(
    fn: Callable[[], Any],
    *,
    warmup: int = 1,
    repeats: int = 5,
    device: Any = None,
    name: str | None = None,
) -> Timing:
    """Time ``fn()``: ``warmup`` untimed calls, then ``repeats`` timed calls.

    On CUDA the clock is read only after ``torch.cuda.synchronize`` (kernels run asynchronously;
    without it you time the launch, not the work). ``device`` limits the sync to one device.
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    _check_counts(warmup, repeats)
    for _ in range(warmup):
        fn()
        synchronize(device)
    times = tuple(_timed_call(fn, device) for _ in range(repeats))
    return Timing(name or getattr(fn, "__name__", "fn"), times)


@dataclass(frozen=True)
class Comparison:
    """Timings of several variants measured in one interleaved run, with ratios to a baseline."""

    timings: dict[str, Timing]
    baseline: str

    def speedup(self, name: str) -> float:
        """How many times faster ``name`` is than the baseline (baseline median / its median)."""
        if name not in self.timings:
            raise KeyError(f"no variant named {name!r}; have {sorted(self.timings)}")
        return self.timings[self.baseline].median_s / self.timings[name].median_s

    def ratio(self, name: str, *, confidence: float = 0.95) -> Ratio:
        """The speed-up of ``name`` over the baseline with a confidence interval from the paired repeats."""
        if name not in self.timings:
            raise KeyError(f"no variant named {name!r}; have {sorted(self.timings)}")
        return paired_speedup(
            self.timings[self.baseline].times_s, self.timings[name].times_s,
            confidence=confidence, baseline=self.baseline, variant=name,
        )

    def rows(self) -> list[dict[str, Any]]:
        """One dict per variant: median, IQR and speed-up vs the baseline."""
        return [
            {
                "variant": name,
                "median": format_seconds(t.median_s),
                "IQR": format_seconds(t.iqr_s),
                f"speed-up vs {self.baseline}": round(self.speedup(name), 2),
            }
            for name, t in self.timings.items()
        ]

    def table(self):
        """The rows as a pandas DataFrame (pandas is imported here, not at module import)."""
        import pandas as pd

        return pd.DataFrame(self.rows()).set_index("variant")

    def __str__(self) -> str:
        return "\n".join(
            f"{t}  → {self.speedup(name):.2f}x vs {self.baseline}" for name, t in self.timings.items()
        )


def compare(
    variants: Mapping[str, Callable[[], Any]],
    *,
    baseline: str | None = None,
    warmup: int = 1,
    repeats: int = 5,
    device: Any = None,
) -> Comparison:
    """Time several variants in one run and report each as a ratio to ``baseline``.

    Repeats are interleaved (A, B, C, A, B, C, ...) so that a slow moment of the machine lands on
    every variant alike. ``baseline`` defaults to the first variant.
    """
    if not isinstance(variants, Mapping) or not variants:
        raise ValueError("variants must be a non-empty mapping of name -> callable")
    for name, fn in variants.items():
        if not callable(fn):
            raise TypeError(f"variants[{name!r}] must be callable, got {type(fn).__name__}")
    baseline = next(iter(variants)) if baseline is None else baseline
    if baseline not in variants:
        raise ValueError(f"baseline {baseline!r} is not one of the variants {list(variants)}")
    _check_counts(warmup, repeats)
    for fn in variants.values():
        for _ in range(warmup):
            fn()
            synchronize(device)
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, fn in variants.items():
            times[name].append(_timed_call(fn, device))
    return Comparison({name: Timing(name, tuple(ts)) for name, ts in times.items()}, baseline)


DEFAULT_MARGIN = 1.2
"""What "faster" means in a claim: the lower confidence bound of the speed-up is at least 1.2x. A 5 %
difference is within what another machine, another load or another day can reverse."""


@dataclass(frozen=True)
class Ratio:
    """A speed-up (baseline time / variant time) with a distribution-free confidence interval.

    ``estimate`` is the median of the per-round ratios; ``low`` and ``high`` bound it with (at least)
    ``confidence`` coverage. Claims use the bounds: ``faster()`` holds only when even ``low`` clears
    the margin, so noise cannot turn a tie into a claimed win.
    """

    variant: str
    baseline: str
    estimate: float
    low: float
    high: float
    confidence: float
    n: int
    best: float = math.nan
    """Fastest baseline round / fastest variant round. Noise only ever adds time, so each side's
    fastest round is its least disturbed one: for short operations on a busy machine, where many
    rounds are disturbed, this ratio is steadier than any bound on the per-round ratios."""

    def at_least(self, value: float) -> bool:
        """Whether the speed-up is at least ``value`` with the interval's confidence (``low >= value``)."""
        return self.low >= value

    def at_most(self, value: float) -> bool:
        """Whether the speed-up is at most ``value`` with the interval's confidence (``high <= value``)."""
        return self.high <= value

    def faster(self, margin: float = DEFAULT_MARGIN) -> bool:
        """The variant is faster than the baseline by at least ``margin`` (lower bound)."""
        _check_margin(margin)
        return self.at_least(margin)

    def slower(self, margin: float = DEFAULT_MARGIN) -> bool:
        """The variant is slower than the baseline by at least ``margin`` (upper bound below 1/margin)."""
        _check_margin(margin)
        return self.at_most(1 / margin)

    def __str__(self) -> str:
        return (f"{self.estimate:.3g}x ({self.confidence:.0%} CI {self.low:.3g}-{self.high:.3g}x, "
                f"fastest rounds {self.best:.3g}x, n={self.n})")


def _check_margin(margin: float) -> None:
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not margin >= 1:
        raise ValueError(f"margin must be a number >= 1 (1.2 means 20 % faster), got {margin!r}")


def _binomial_cdf(k: int, n: int) -> float:
    """P(X <= k) for X ~ Binomial(n, 1/2)."""
    return sum(math.comb(n, i) for i in range(k + 1)) / 2**n


def paired_speedup(
    baseline_s: Sequence[float],
    variant_s: Sequence[float],
    *,
    confidence: float = 0.95,
    baseline: str = "baseline",
    variant: str = "variant",
) -> Ratio:
    """Speed-up of ``variant`` over ``baseline`` from paired, interleaved repeats.

    Round ``i`` gives the ratio ``baseline_s[i] / variant_s[i]``; the two were timed next to each
    other, so a slow moment of the machine slows both. The interval is the order-statistic interval
    for the median of those ratios (a sign-test interval: no assumption about the noise's shape).
    With few rounds the requested confidence may be out of reach; the interval is then [min, max] and
    ``confidence`` reports the coverage actually achieved (1 - 2 / 2**n).
    """
    base, var = tuple(baseline_s), tuple(variant_s)
    if len(base) != len(var) or not base:
        raise ValueError(f"baseline_s and variant_s must be paired and non-empty, got {len(base)} and {len(var)}")
    if any(not (t > 0 and math.isfinite(t)) for t in base + var):
        raise ValueError("times must be positive and finite")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence!r}")
    n = len(base)
    ratios = sorted(b / v for b, v in zip(base, var, strict=True))
    alpha = 1 - confidence
    j = 1  # the interval is [j-th smallest, j-th largest]; its coverage is 1 - 2 P(B <= j - 1)
    while j + 1 <= (n + 1) // 2 and 2 * _binomial_cdf(j, n) <= alpha:
        j += 1
    coverage = 1 - 2 * _binomial_cdf(j - 1, n)
    low, high = ratios[j - 1], ratios[n - j]
    return Ratio(variant, baseline, statistics.median(ratios), low, high, coverage, n, min(base) / min(var))


def matmul_gflops(n: int = 384, *, repeats: int = 7) -> float:
    """Single-thread float64 matmul speed in GFLOP/s: a machine speed index for comparing run times.

    BLAS is limited to one thread for the measurement (threadpoolctl), so the index describes one
    core and does not depend on how many cores are free. The best of ``repeats`` calls is used.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 16:
        raise ValueError(f"n must be an int >= 16, got {n!r}")
    _check_counts(1, repeats)
    import numpy as np
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n)), rng.standard_normal((n, n))
    with threadpool_limits(limits=1):
        best = time_fn(lambda: a @ b, warmup=1, repeats=repeats).min_s
    return 2 * n**3 / best / 1e9
