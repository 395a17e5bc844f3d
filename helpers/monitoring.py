"""Read a service's Prometheus metrics and evaluate an alert rule on them, as Prometheus would.

``scrape`` parses the text exposition format with ``prometheus_client``'s own parser. Between
two scrapes, ``window`` computes what a PromQL ``rate``/``histogram_quantile`` pair gives: the
requests, the error rate and a latency quantile interpolated inside the histogram's buckets.
``AlertRule`` fires when a condition holds for ``for_windows`` consecutive windows, like the
``for:`` clause of a Prometheus alerting rule, so that one slow window does not page anyone.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse_metrics(text: str) -> Samples:
    """Every sample of a Prometheus text exposition, keyed by (name, sorted label pairs)."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def scrape(url: str, *, timeout_s: float = 5.0) -> Samples:
    """GET ``url`` (a ``/metrics`` endpoint) and parse it."""
    response = httpx.get(url, timeout=timeout_s)
    response.raise_for_status()
    return parse_metrics(response.text)


def select(samples: Samples, name: str, **labels: str) -> float:
    """Sum of the samples called ``name`` whose labels include ``labels`` (0 when none match)."""
    wanted = set(labels.items())
    return sum(value for (sample_name, pairs), value in samples.items()
               if sample_name == name and wanted <= set(pairs))


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float:
    """The ``q`` quantile from cumulative bucket counts ``[(upper_bound, count), ...]``.

    Linear interpolation inside the bucket that holds the rank, as PromQL's ``histogram_quantile``
    does; a rank in the ``+Inf`` bucket returns the largest finite bound. NaN when there is no
    observation.
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must be in [0, 1], got {q}")
    buckets = sorted(buckets)
    if not buckets or not math.isinf(buckets[-1][0]):
        raise ValueError("buckets must end with the +Inf bucket")
    total = buckets[-1][1]
    if total <= 0:
        return math.nan
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = bound, count
    return lower_bound


@dataclass(frozen=True)
class Window:
    """What happened between two scrapes of one endpoint."""

    requests: float
    errors: float
    p95_s: float

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


def window(before: Samples, after: Samples, *, endpoint: str, requests_metric: str = "mllab_requests_total",
           latency_metric: str = "mllab_request_seconds") -> Window:
    """Requests, 5xx errors and p95 latency of ``endpoint`` between two scrapes."""
    def delta(name: str, **labels: str) -> float:
        return select(after, name, **labels) - select(before, name, **labels)

    requests = delta(requests_metric, endpoint=endpoint)
    errors = sum(delta(requests_metric, endpoint=endpoint, status=str(code)) for code in range(500, 600))
    bounds = {dict(pairs)["le"] for (name, pairs) in after if name == f"{latency_metric}_bucket"
              and dict(pairs).get("endpoint") == endpoint}
    buckets = [(float(le), delta(f"{latency_metric}_bucket", endpoint=endpoint, le=le)) for le in bounds]
    p95 = histogram_quantile(0.95, buckets) if buckets else math.nan
    return Window(requests=requests, errors=errors, p95_s=p95)


@dataclass(frozen=True)
class AlertRule:
    """Fire when p95 latency or the error rate stays above its limit for ``for_windows`` windows."""

    max_p95_s: float
    max_error_rate: float
    for_windows: int = 2

    def breached(self, w: Window) -> bool:
        """Whether one window breaks either limit."""
        return w.error_rate > self.max_error_rate or (not math.isnan(w.p95_s) and w.p95_s > self.max_p95_s)

    def evaluate(self, windows: Iterable[Window]) -> list[bool]:
        """For each window, whether the alert is firing after it."""
        if self.for_windows < 1:
            raise ValueError(f"for_windows must be >= 1, got {self.for_windows}")
        firing, streak = [], 0
        for w in windows:
            streak = streak + 1 if self.breached(w) else 0
            firing.append(streak >= self.for_windows)
        return firing
