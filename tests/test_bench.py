import functools
import time

import pytest

from helpers.bench import Comparison, Timing, compare, format_seconds, matmul_gflops, paired_speedup, time_fn


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (1.5, "1.5 s"),
        (12.345, "12.3 s"),
        (1234.0, "1234 s"),
        (0.0123, "12.3 ms"),
        (0.00042, "420 µs"),
        (0.0009996, "1 ms"),
        (5e-8, "50 ns"),
        (0.0, "0 ns"),
    ],
)
def test_format_seconds_units(seconds, text):
    assert format_seconds(seconds) == text


def test_format_seconds_rejects_negative():
    with pytest.raises(ValueError, match="seconds"):
        format_seconds(-1e-3)


def test_timing_statistics():
    timing = Timing("f", (3.0, 1.0, 2.0, 10.0))
    assert timing.median_s == 2.5
    assert timing.min_s == 1.0
    assert timing.iqr_s == pytest.approx(4.75 - 1.75)
    assert str(timing) == "f: 2.5 s median (IQR 3 s, n=4)"


def test_timing_of_one_run_has_no_spread():
    assert Timing("f", (0.002,)).iqr_s == 0.0


def test_time_fn_warms_up_then_times_repeats():
    calls = []
    timing = time_fn(lambda: calls.append(1), warmup=2, repeats=3)
    assert len(calls) == 5
    assert len(timing.times_s) == 3
    assert all(t >= 0 for t in timing.times_s)


def test_time_fn_measures_the_work():
    def nap():
        time.sleep(0.002)

    timing = time_fn(nap, warmup=0, repeats=2, device="cpu")
    assert timing.name == "nap"
    assert timing.min_s >= 0.002


def test_time_fn_names():
    assert time_fn(lambda: None, repeats=1, name="mine").name == "mine"
    assert time_fn(functools.partial(int, "1"), repeats=1).name == "fn"


def test_time_fn_rejects_non_callable():
    with pytest.raises(TypeError, match="fn"):
        time_fn(42)


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("warmup", {"warmup": -1}),
        ("warmup", {"warmup": True}),
        ("repeats", {"repeats": 0}),
        ("repeats", {"repeats": 2.0}),
    ],
)
def test_time_fn_rejects_bad_counts(name, kwargs):
    with pytest.raises(ValueError, match=name):
        time_fn(lambda: None, **kwargs)


def test_compare_interleaves_variants():
    order = []
    variants = {name: functools.partial(order.append, name) for name in ("a", "b")}
    comparison = compare(variants, warmup=2, repeats=3)
    assert order == ["a", "a", "b", "b"] + ["a", "b"] * 3
    assert comparison.baseline == "a"
    assert [len(t.times_s) for t in comparison.timings.values()] == [3, 3]


def test_compare_speedup_of_a_faster_variant():
    comparison = compare(
        {"slow": functools.partial(time.sleep, 0.006), "fast": functools.partial(time.sleep, 0.002)},
        warmup=0,
        repeats=3,
    )
    slow, fast = comparison.timings["slow"], comparison.timings["fast"]
    assert comparison.speedup("fast") == slow.median_s / fast.median_s
    assert comparison.speedup("fast") > 1.5
    assert comparison.speedup("slow") == 1.0


def test_compare_with_explicit_baseline():
    comparison = compare({"a": lambda: None, "b": lambda: None}, baseline="b", warmup=0, repeats=1)
    assert comparison.baseline == "b"
    assert comparison.speedup("b") == 1.0


@pytest.fixture
def known():
    return Comparison(
        {"base": Timing("base", (4.0, 4.0)), "quick": Timing("quick", (1.0, 1.0))},
        baseline="base",
    )


def test_comparison_speedup_is_baseline_median_over_variant_median(known):
    assert known.speedup("quick") == 4.0
    assert known.speedup("base") == 1.0


def test_comparison_speedup_unknown_variant(known):
    with pytest.raises(KeyError, match="nope"):
        known.speedup("nope")


def test_comparison_rows_and_text(known):
    assert known.rows() == [
        {"variant": "base", "median": "4 s", "IQR": "0 ns", "speed-up vs base": 1.0},
        {"variant": "quick", "median": "1 s", "IQR": "0 ns", "speed-up vs base": 4.0},
    ]
    assert str(known).splitlines()[1] == "quick: 1 s median (IQR 0 ns, n=2)  → 4.00x vs base"


def test_comparison_table_is_indexed_by_variant(known):
    table = known.table()
    assert list(table.index) == ["base", "quick"]
    assert table.loc["quick", "speed-up vs base"] == 4.0


@pytest.mark.parametrize("variants", [{}, [lambda: None]])
def test_compare_rejects_empty_or_non_mapping(variants):
    with pytest.raises(ValueError, match="variants"):
        compare(variants)


def test_compare_rejects_non_callable_variant():
    with pytest.raises(TypeError, match=r"variants\['b'\]"):
        compare({"a": lambda: None, "b": 3})


def test_compare_rejects_unknown_baseline():
    with pytest.raises(ValueError, match="baseline"):
        compare({"a": lambda: None}, baseline="z")


def test_compare_rejects_bad_repeats():
    with pytest.raises(ValueError, match="repeats"):
        compare({"a": lambda: None}, repeats=0)


# --- ratios with confidence bounds --------------------------------------------------------------


def _noisy(times, noise, seed):
    import random

    rng = random.Random(seed)
    return [t * (1 + rng.uniform(-noise, noise)) for t in times]


def test_paired_speedup_estimate_and_bounds():
    ratio = paired_speedup([2.0] * 9, [1.0, 1.0, 1.0, 1.0, 0.8, 0.9, 1.0, 1.1, 1.0])
    assert ratio.estimate == 2.0
    assert ratio.n == 9
    assert ratio.confidence == pytest.approx(1 - 2 * 10 / 512)  # [2nd smallest, 2nd largest]
    assert ratio.low == pytest.approx(2 / 1.0) and ratio.high == pytest.approx(2 / 0.9)
    assert ratio.faster() and not ratio.slower()
    assert "2x" in str(ratio) and "n=9" in str(ratio)


def test_few_rounds_give_min_max_with_the_coverage_achieved():
    ratio = paired_speedup([1.0, 1.0, 1.0], [0.5, 0.25, 1.0])
    assert (ratio.low, ratio.high) == (1.0, 4.0)
    assert ratio.confidence == pytest.approx(0.75)


@pytest.mark.parametrize("seed", range(20))
def test_a_five_percent_difference_is_not_called_faster(seed):
    base = _noisy([1.05] * 9, 0.03, seed)
    variant = _noisy([1.0] * 9, 0.03, seed + 100)
    ratio = paired_speedup(base, variant)
    assert not ratio.faster()
    assert not ratio.slower()


def test_a_shared_slow_moment_does_not_flip_the_ratio():
    # round 3 ran while the machine was busy: both sides slowed 5x, the ratio stayed
    base = [2.0, 2.0, 10.0, 2.0, 2.0, 2.0, 2.0]
    variant = [1.0, 1.0, 5.0, 1.0, 1.0, 1.0, 1.0]
    ratio = paired_speedup(base, variant)
    assert ratio.low == ratio.high == 2.0


def test_slower_and_explicit_margins():
    ratio = paired_speedup([1.0] * 7, [3.0] * 7)
    assert ratio.slower(2.5) and not ratio.slower(3.5)
    assert ratio.at_most(0.34) and ratio.at_least(0.33)


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        (([1.0], [1.0, 2.0]), {}, "paired"),
        (([], []), {}, "paired"),
        (([1.0, 0.0], [1.0, 1.0]), {}, "positive"),
        (([1.0], [float("nan")]), {}, "positive"),
        (([1.0], [1.0]), {"confidence": 1.0}, "confidence"),
    ],
)
def test_paired_speedup_rejects_bad_input(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        paired_speedup(*args, **kwargs)


@pytest.mark.parametrize("margin", [0.9, True, "1.2"])
def test_margins_below_one_are_rejected(margin):
    ratio = paired_speedup([1.0], [1.0])
    with pytest.raises(ValueError, match="margin"):
        ratio.faster(margin)


def test_comparison_ratio_uses_the_interleaved_rounds():
    comparison = Comparison(
        {"a": Timing("a", (2.0, 4.0, 2.0)), "b": Timing("b", (1.0, 2.0, 1.0))}, baseline="a"
    )
    ratio = comparison.ratio("b")
    assert (ratio.variant, ratio.baseline, ratio.estimate, ratio.low, ratio.high) == ("b", "a", 2.0, 2.0, 2.0)
    with pytest.raises(KeyError, match="c"):
        comparison.ratio("c")


def test_matmul_gflops_is_positive_and_checks_its_size():
    assert matmul_gflops(64, repeats=2) > 0
    with pytest.raises(ValueError, match="n"):
        matmul_gflops(8)


def test_best_is_the_ratio_of_the_fastest_rounds():
    # the variant's rounds 2 and 3 were disturbed; its fastest round is not
    ratio = paired_speedup([2.0, 2.1, 2.0, 2.2], [1.0, 3.0, 2.5, 1.1])
    assert ratio.best == pytest.approx(2.0)
    assert ratio.low < 1.0 < ratio.best
    assert "fastest rounds 2x" in str(ratio)
