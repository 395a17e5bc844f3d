import numpy as np
import pytest

from helpers.compute import adam_mixed_precision_bytes_per_param, gpu_hours, training_flops, weight_bytes


def test_training_flops_is_six_n_d():
    assert training_flops(7e9, 2e12) == pytest.approx(8.4e22)


def test_training_flops_accepts_numpy_numbers():
    assert training_flops(np.int64(1_000), np.float64(10.0)) == 60_000.0


@pytest.mark.parametrize(("name", "args"), [("n_params", (0, 1e9)), ("n_tokens", (1e9, -5))])
def test_training_flops_rejects_non_positive(name, args):
    with pytest.raises(ValueError, match=name):
        training_flops(*args)


@pytest.mark.parametrize("bad", [True, "1e9", None, float("nan")])
def test_training_flops_rejects_non_numbers(bad):
    with pytest.raises(ValueError, match="n_params"):
        training_flops(bad, 1e9)


def test_gpu_hours_by_hand():
    # 1.2e20 FLOPs at 40 % of 1e15 FLOP/s: 1.2e20 / 4e14 = 3e5 s = 83.33 h
    assert gpu_hours(1.2e20, peak_flops_per_s=1e15) == pytest.approx(3e5 / 3600)
    assert gpu_hours(1.2e20, peak_flops_per_s=1e15, utilization=0.5) == pytest.approx(2.4e5 / 3600)


def test_gpu_hours_total_does_not_depend_on_gpu_count():
    one = gpu_hours(1e21, peak_flops_per_s=1e15, utilization=0.5, n_gpus=1)
    eight = gpu_hours(1e21, peak_flops_per_s=1e15, utilization=0.5, n_gpus=8)
    assert eight == pytest.approx(one) == pytest.approx(2e6 / 3600)


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("flops", {"flops": 0}),
        ("peak_flops_per_s", {"peak_flops_per_s": -1.0}),
        ("utilization", {"utilization": 0}),
        ("utilization", {"utilization": 1.5}),
        ("n_gpus", {"n_gpus": 0}),
        ("n_gpus", {"n_gpus": 2.0}),
        ("n_gpus", {"n_gpus": True}),
    ],
)
def test_gpu_hours_rejects_bad_inputs(name, kwargs):
    args = {"peak_flops_per_s": 1e15, **kwargs}
    with pytest.raises(ValueError, match=name):
        gpu_hours(args.pop("flops", 1e20), **args)


@pytest.mark.parametrize(
    ("dtype", "expected"),
    [("fp32", 28e9), ("tf32", 28e9), ("bf16", 14e9), ("fp16", 14e9), ("int8", 7e9), ("int4", 3.5e9)],
)
def test_weight_bytes_per_dtype(dtype, expected):
    assert weight_bytes(7e9, dtype) == expected


def test_weight_bytes_defaults_to_fp32():
    assert weight_bytes(1000) == 4000


def test_weight_bytes_rejects_unknown_dtype():
    with pytest.raises(ValueError, match="dtype"):
        weight_bytes(1000, "fp64")


def test_weight_bytes_rejects_non_positive_count():
    with pytest.raises(ValueError, match="n_params"):
        weight_bytes(0)


def test_adam_mixed_precision_needs_sixteen_bytes_per_param():
    assert adam_mixed_precision_bytes_per_param() == 16
