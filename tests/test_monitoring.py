import math

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from helpers import monitoring as mon

INF = math.inf


def _registry(latencies, statuses):
    registry = CollectorRegistry()
    requests = Counter("mllab_requests", "r", ["endpoint", "status"], registry=registry)
    latency = Histogram("mllab_request_seconds", "l", ["endpoint"], buckets=(0.01, 0.1, 1.0), registry=registry)
    for seconds, status in zip(latencies, statuses, strict=True):
        latency.labels("/predict").observe(seconds)
        requests.labels("/predict", str(status)).inc()
    return mon.parse_metrics(generate_latest(registry).decode())


def test_histogram_quantile_interpolates_like_promql():
    buckets = [(0.1, 50.0), (0.2, 100.0), (INF, 100.0)]
    assert mon.histogram_quantile(0.5, buckets) == pytest.approx(0.1)
    assert mon.histogram_quantile(0.75, buckets) == pytest.approx(0.15)
    assert mon.histogram_quantile(0.25, buckets) == pytest.approx(0.05)  # the first bucket starts at 0
    assert mon.histogram_quantile(0.99, [(0.1, 10.0), (INF, 20.0)]) == 0.1  # +Inf: largest finite bound
    assert math.isnan(mon.histogram_quantile(0.5, [(0.1, 0.0), (INF, 0.0)]))


@pytest.mark.parametrize("q, buckets", [(1.5, [(INF, 1.0)]), (0.5, [(0.1, 1.0)]), (0.5, [])])
def test_histogram_quantile_rejects_bad_input(q, buckets):
    with pytest.raises(ValueError):
        mon.histogram_quantile(q, buckets)


def test_window_counts_requests_errors_and_p95_between_scrapes():
    before = _registry([0.005] * 10, [200] * 10)
    after = _registry([0.005] * 10 + [0.5] * 10, [200] * 10 + [500] * 4 + [200] * 6)
    w = mon.window(before, after, endpoint="/predict")
    assert w.requests == 10 and w.errors == 4 and w.error_rate == pytest.approx(0.4)
    assert 0.1 < w.p95_s <= 1.0  # every new request fell in the (0.1, 1] bucket
    assert mon.window(after, after, endpoint="/predict").error_rate == 0.0


def test_alert_rule_needs_consecutive_breaches():
    rule = mon.AlertRule(max_p95_s=0.1, max_error_rate=0.05, for_windows=2)
    ok, slow, failing = mon.Window(100, 0, 0.01), mon.Window(100, 0, 0.5), mon.Window(100, 10, 0.01)
    assert rule.evaluate([ok, slow, ok, slow, failing, ok]) == [False, False, False, False, True, False]
    assert not any(rule.evaluate([ok] * 10))
    with pytest.raises(ValueError):
        mon.AlertRule(0.1, 0.1, for_windows=0).evaluate([ok])


def test_select_sums_matching_labels():
    samples = _registry([0.005] * 3, [200, 500, 200])
    assert mon.select(samples, "mllab_requests_total", endpoint="/predict") == 3
    assert mon.select(samples, "mllab_requests_total", status="500") == 1
    assert mon.select(samples, "no_such_metric") == 0
