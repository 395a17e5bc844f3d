"""Timing that a reader can trust: warm-up, repeats, CUDA synchronisation, median and spread.

Compare variants as ratios measured in one run (``compare``); never assert an absolute time.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
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
