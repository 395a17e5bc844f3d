import math

import pytest
import torch

from helpers import quant

# torch 2.13 warns that quantized-dtype tensors (quint8/qint8 from torch.quantize_per_*) are deprecated;
# they are still the reference we test against.
pytestmark = pytest.mark.filterwarnings("ignore:torch.quantize_per_tensor:UserWarning")


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def student_t(n, df=3, seed=0):
    """Heavy-tailed samples, reproducible: z / sqrt(chi2_df / df)."""
    g = torch.Generator().manual_seed(seed)
    chi2 = torch.randn(df, n, generator=g).square().sum(0)
    return torch.randn(n, generator=g) / (chi2 / df).sqrt()


def torch_dtype(qp):
    return torch.qint8 if qp.symmetric else torch.quint8


@pytest.mark.parametrize(
    "bits, symmetric, qmin, qmax, dtype",
    [
        (8, False, 0, 255, torch.uint8),
        (8, True, -127, 127, torch.int8),
        (4, False, 0, 15, torch.uint8),
        (4, True, -7, 7, torch.int8),
        (2, True, -1, 1, torch.int8),
    ],
)
def test_grid_ranges(bits, symmetric, qmin, qmax, dtype):
    qp = quant.compute_qparams(randn(10), bits=bits, symmetric=symmetric)
    assert (qp.qmin, qp.qmax, qp.code_dtype) == (qmin, qmax, dtype)
    codes = quant.quantize(randn(1000, seed=1) * 10, qp)
    assert codes.dtype == dtype and codes.min() == qmin and codes.max() == qmax


@pytest.mark.parametrize("symmetric", [False, True])
def test_per_tensor_int8_matches_torch_quantize_per_tensor(symmetric):
    x = randn(32, 64) * 3 + 0.5
    qp = quant.compute_qparams(x, symmetric=symmetric)
    assert qp.scale.ndim == 0 and qp.axis is None
    reference = torch.quantize_per_tensor(x, float(qp.scale), int(qp.zero_point), torch_dtype(qp))
    codes = quant.quantize(x, qp)
    assert torch.equal(codes, reference.int_repr())
    assert torch.equal(quant.dequantize(codes, qp), reference.dequantize())


@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_per_channel_int8_matches_torch(symmetric, axis):
    x = randn(6, 5, 7) * torch.linspace(0.1, 4, 5).reshape(1, 5, 1) - 0.3
    qp = quant.compute_qparams(x, symmetric=symmetric, axis=axis)
    assert qp.axis == axis % 3 and qp.scale.shape == (x.shape[axis],)
    reference = torch.quantize_per_channel(x, qp.scale, qp.zero_point, qp.axis, torch_dtype(qp))
    codes = quant.quantize(x, qp)
    assert torch.equal(codes, reference.int_repr())
    assert torch.equal(quant.dequantize(codes, qp), reference.dequantize())
    # signature: (input, scale, zero_point [int32], axis, quant_min, quant_max)
    fake = torch.fake_quantize_per_channel_affine(x, qp.scale, qp.zero_point, qp.axis, qp.qmin, qp.qmax)
    assert torch.equal(quant.fake_quantize(x, qp), fake)


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
@pytest.mark.parametrize("symmetric", [False, True])
def test_per_tensor_fake_quantize_matches_torch(bits, symmetric):
    x = randn(40, 50, seed=bits) * 2 + 0.7
    qp = quant.compute_qparams(x, bits=bits, symmetric=symmetric)
    fake = torch.fake_quantize_per_tensor_affine(x, qp.scale, qp.zero_point, qp.qmin, qp.qmax)
    assert torch.equal(quant.fake_quantize(x, qp), fake)


def test_ties_round_half_to_even():
    qp = quant.QParams(torch.tensor(0.5), torch.tensor(0), bits=8, symmetric=True)
    x = torch.tensor([0.25, 0.75, 1.25, -0.25, -0.75, -1.25])  # x / scale = ±0.5, ±1.5, ±2.5
    codes = quant.quantize(x, qp)
    assert codes.tolist() == [0, 2, 2, 0, -2, -2]
    assert torch.equal(codes, torch.quantize_per_tensor(x, 0.5, 0, torch.qint8).int_repr())


def test_torch_quantize_per_tensor_rounds_after_adding_zero_point():
    """Documented difference: torch.quantize_per_tensor rounds (x / scale + zp), so an odd zero-point
    moves a .5 tie; fake_quantize_per_tensor_affine (and helpers.quant) round x / scale first."""
    qp = quant.QParams(torch.tensor(1.0), torch.tensor(11), bits=8)
    x = torch.tensor([0.5, 1.5, -0.5])
    assert quant.quantize(x, qp).tolist() == [11, 13, 11]  # round(x) + 11: 0, 2, -0
    assert torch.equal(quant.fake_quantize(x, qp), torch.fake_quantize_per_tensor_affine(x, 1.0, 11, 0, 255))
    assert torch.quantize_per_tensor(x, 1.0, 11, torch.quint8).int_repr().tolist() == [12, 12, 10]


@pytest.mark.parametrize("bits", [2, 4, 8])
@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("axis", [None, 0])
@pytest.mark.parametrize("shift", [0.0, 3.0])
def test_min_max_round_trip_error_is_at_most_half_a_step(bits, symmetric, axis, shift):
    x = randn(8, 300, seed=bits) + shift  # shift=3: range [~0.5, ~6.5], extended to include 0
    qp = quant.compute_qparams(x, bits=bits, symmetric=symmetric, axis=axis)
    scale = qp.scale if axis is None else qp.scale[:, None]
    error = (quant.fake_quantize(x, qp) - x).abs()
    assert (error <= scale / 2 + 1e-6).all()


@pytest.mark.parametrize("symmetric", [False, True])
def test_rmse_halves_and_sqnr_gains_6db_per_bit(symmetric):
    x = torch.rand(20_000, generator=torch.Generator().manual_seed(0)) * 2 - 1
    # from 4 bits on: below that the restricted symmetric grid (1, 3, 7 levels a side) grows faster than 2x
    errors = [
        quant.quantization_error(x, quant.compute_qparams(x, bits=b, symmetric=symmetric))
        for b in range(4, 9)
    ]
    for fewer, more in zip(errors, errors[1:], strict=False):
        assert 1.7 < fewer["rmse"] / more["rmse"] < 2.3
        assert more["sqnr_db"] - fewer["sqnr_db"] == pytest.approx(20 * math.log10(2), abs=0.75)


def test_per_channel_rescues_channels_next_to_an_outlier_channel():
    w = randn(16, 64)
    w[3] *= 100
    others = torch.arange(16) != 3
    rmse = {}
    for axis in (None, 0):
        qp = quant.compute_qparams(w, symmetric=True, axis=axis)
        rmse[axis] = quant.quantization_error(w[others], _rows(qp, others))["rmse"]
    assert rmse[None] > 20 * rmse[0]
    whole = {
        axis: quant.quantization_error(w, quant.compute_qparams(w, axis=axis))["rmse"] for axis in (None, 0)
    }
    assert whole[None] > 2 * whole[0]


def _rows(qp, keep):
    """The per-channel parameters of the kept rows (per-tensor parameters unchanged)."""
    if qp.axis is None:
        return qp
    return quant.QParams(
        qp.scale[keep], qp.zero_point[keep], bits=qp.bits, symmetric=qp.symmetric, axis=qp.axis
    )


@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("percentile", [99.0, 99.9])
def test_percentile_clipping_lowers_rmse_on_heavy_tails_at_4_bits(symmetric, percentile):
    x = student_t(20_000)
    min_max = quant.quantization_error(x, quant.compute_qparams(x, bits=4, symmetric=symmetric))
    clipped_qp = quant.compute_qparams(x, bits=4, symmetric=symmetric, percentile=percentile)
    clipped = quant.quantization_error(x, clipped_qp)
    assert clipped["rmse"] < 0.8 * min_max["rmse"]
    assert clipped["max_abs_error"] > min_max["max_abs_error"]  # the outliers pay for it


@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("axis", [None, 1])
def test_percentile_100_is_min_max_and_percentile_matches_torch_quantile(symmetric, axis):
    x = randn(5, 101)
    plain = quant.compute_qparams(x, symmetric=symmetric, axis=axis)
    full = quant.compute_qparams(x, symmetric=symmetric, axis=axis, percentile=100)
    assert torch.equal(plain.scale, full.scale) and torch.equal(plain.zero_point, full.zero_point)
    qp = quant.compute_qparams(x, bits=8, symmetric=True, percentile=99.3)
    expected = torch.quantile(x.abs().double().flatten(), 0.993) / 127
    assert float(qp.scale) == pytest.approx(float(expected), rel=1e-6)


@pytest.mark.parametrize("low, high", [(2.0, 5.0), (-5.0, -2.0), (-1.3, 0.4), (-0.001, 7.0)])
@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("bits", [4, 8])
def test_zero_is_exactly_representable(low, high, symmetric, bits):
    x = torch.linspace(low, high, 50)
    qp = quant.compute_qparams(x, bits=bits, symmetric=symmetric)
    assert quant.fake_quantize(torch.zeros(3), qp).tolist() == [0.0, 0.0, 0.0]
    if not symmetric and low > 0:
        assert int(qp.zero_point) == qp.qmin  # range extended down to 0
    if not symmetric and high < 0:
        assert int(qp.zero_point) == qp.qmax


@pytest.mark.parametrize("value", [3.0, -2.5, 1e-3])
@pytest.mark.parametrize("symmetric", [False, True])
def test_constant_tensors(value, symmetric):
    x = torch.full((4, 6), value)
    for axis in (None, 0):
        qp = quant.compute_qparams(x, bits=4, symmetric=symmetric, axis=axis)
        assert (qp.scale > 0).all()
        assert torch.allclose(quant.fake_quantize(x, qp), x, rtol=1e-6, atol=0)


def test_all_zero_tensor_gets_a_positive_scale_and_exact_round_trip():
    x = torch.zeros(3, 4)
    for symmetric in (False, True):
        qp = quant.compute_qparams(x, symmetric=symmetric, axis=1)
        assert (qp.scale == torch.finfo(torch.float32).eps).all()
        error = quant.quantization_error(x, qp)
        assert error == {"max_abs_error": 0.0, "rmse": 0.0, "sqnr_db": math.inf}


def test_quantization_error_values():
    qp = quant.QParams(torch.tensor(1.0), torch.tensor(0, dtype=torch.int32), symmetric=True)
    x = torch.tensor([0.25, -2.0, 3.5, 1.0])  # round -> 0, -2, 4, 1: errors 0.25, 0, 0.5, 0
    error = quant.quantization_error(x, qp)
    noise_power = (0.25**2 + 0.5**2) / 4
    signal_power = (0.25**2 + 4 + 3.5**2 + 1) / 4
    assert error["max_abs_error"] == 0.5
    assert error["rmse"] == pytest.approx(math.sqrt(noise_power))
    assert error["sqnr_db"] == pytest.approx(10 * math.log10(signal_power / noise_power))


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16, torch.float16])
def test_other_float_dtypes(dtype):
    x = randn(4, 8).to(dtype)
    qp = quant.compute_qparams(x, axis=-1)
    assert quant.fake_quantize(x, qp).dtype == dtype
    assert quant.dequantize(quant.quantize(x, qp), qp).dtype == torch.float32
    assert quant.quantization_error(x, qp)["sqnr_db"] > 30


def test_qparams_accepts_other_integer_dtypes_and_stores_int32_float32():
    qp = quant.QParams(torch.tensor([0.1, 0.2], dtype=torch.float64), torch.tensor([3, 4]), bits=4, axis=0)
    assert qp.scale.dtype == torch.float32 and qp.zero_point.dtype == torch.int32
    codes = torch.tensor([[3, 5], [6, 4]], dtype=torch.int64)  # row 0: scale 0.1, zp 3; row 1: 0.2, 4
    assert torch.allclose(quant.dequantize(codes, qp), torch.tensor([[0.0, 0.2], [0.4, 0.0]]))


def test_quantized_nbytes():
    n = 4096 * 4096
    assert quant.quantized_nbytes(n, 4, n_scales=0) * 2 == quant.quantized_nbytes(n, 8, n_scales=0) == n
    assert quant.quantized_nbytes(5, 4, n_scales=0) == 3  # 20 bits round up to 3 bytes
    assert quant.quantized_nbytes(8, 3, n_scales=0) == 3
    assert quant.quantized_nbytes(0, 8) == 4
    # per-channel int8, 4096 channels, float32 scales + int32 zero-points
    assert quant.quantized_nbytes(n, 8, n_scales=4096, zero_point_bytes=4) == n + 4096 * 8
    # int4 with group size 128 and fp16 scales: 4.125 bits per weight
    assert quant.quantized_nbytes(n, 4, n_scales=n // 128, scale_bytes=2) * 8 / n == 4.125


BAD_QPARAMS_INPUTS = [
    ({"x": [1.0, 2.0]}, TypeError, "x must be a torch.Tensor"),
    ({"x": torch.arange(4)}, TypeError, "x must be a floating-point"),
    ({"x": torch.zeros(0)}, ValueError, "x must be non-empty"),
    ({"x": torch.tensor([1.0, math.nan])}, ValueError, "x must be finite"),
    ({"bits": 1}, ValueError, r"bits must be in \[2, 8\]"),
    ({"bits": 9}, ValueError, r"bits must be in \[2, 8\]"),
    ({"bits": 16}, ValueError, "bits"),
    ({"bits": True}, TypeError, "bits must be an int"),
    ({"bits": 4.0}, TypeError, "bits must be an int"),
    ({"symmetric": 1}, TypeError, "symmetric must be a bool"),
    ({"axis": 2}, ValueError, r"axis must be in \[-2, 2\)"),
    ({"axis": -3}, ValueError, "axis"),
    ({"axis": 1.0}, TypeError, "axis must be None or an int"),
    ({"axis": True}, TypeError, "axis"),
    ({"percentile": 50}, ValueError, r"percentile must be in \(50, 100\]"),
    ({"percentile": 100.1}, ValueError, "percentile"),
    ({"percentile": 0.999}, ValueError, "percentile"),
    ({"percentile": "99"}, TypeError, "percentile must be None or a number"),
    ({"percentile": True}, TypeError, "percentile"),
]


@pytest.mark.parametrize("kwargs, error, match", BAD_QPARAMS_INPUTS)
def test_compute_qparams_rejects_bad_input(kwargs, error, match):
    kwargs = {"x": randn(3, 4), **kwargs}
    with pytest.raises(error, match=match):
        quant.compute_qparams(**kwargs)


def _qp(**overrides):
    fields = {"scale": torch.tensor(0.1), "zero_point": torch.tensor(0, dtype=torch.int32), "bits": 8}
    return {**fields, **overrides}


@pytest.mark.parametrize(
    "fields, error, match",
    [
        (_qp(bits=12), ValueError, "bits"),
        (_qp(bits=False), TypeError, "bits"),
        (_qp(symmetric="no"), TypeError, "symmetric"),
        (_qp(axis=0.5), TypeError, "axis"),
        (_qp(scale=0.1), TypeError, "scale must be a floating-point torch.Tensor"),
        (_qp(scale=torch.tensor(1)), TypeError, "scale"),
        (_qp(zero_point=0), TypeError, "zero_point must be an integer torch.Tensor"),
        (_qp(zero_point=torch.tensor(0.0)), TypeError, "zero_point"),
        (_qp(zero_point=torch.tensor(False)), TypeError, "zero_point"),
        (_qp(scale=torch.tensor([0.1])), ValueError, "per-tensor"),
        (_qp(axis=0), ValueError, "per-channel: 1-D"),
        (_qp(scale=torch.tensor([0.1, 0.2]), zero_point=torch.tensor([0]), axis=0), ValueError, "same shape"),
        (_qp(scale=torch.tensor(0.0)), ValueError, "scale must be finite and > 0"),
        (_qp(scale=torch.tensor(math.inf)), ValueError, "scale"),
        (_qp(zero_point=torch.tensor(3), symmetric=True), ValueError, "zero_point must be 0"),
        (
            _qp(zero_point=torch.tensor(256)),
            ValueError,
            r"zero_point must lie in \[qmin, qmax\] = \[0, 255\]",
        ),
        (_qp(zero_point=torch.tensor(-1)), ValueError, "zero_point"),
        (_qp(zero_point=torch.tensor(16), bits=4), ValueError, r"\[0, 15\]"),
    ],
)
def test_qparams_rejects_bad_fields(fields, error, match):
    with pytest.raises(error, match=match):
        quant.QParams(**fields)


PER_CHANNEL = quant.QParams(torch.tensor([0.1, 0.2, 0.3]), torch.tensor([0, 10, 20]), axis=0)


@pytest.mark.parametrize(
    "func, args, error, match",
    [
        (quant.quantize, (torch.ones(3), (0.1, 0)), TypeError, "qp must be a helpers.quant.QParams"),
        (
            quant.quantize,
            (torch.ones(3, 2, dtype=torch.int32), PER_CHANNEL),
            TypeError,
            "x must be a floating",
        ),
        (
            quant.quantize,
            (torch.ones(4, 2), PER_CHANNEL),
            ValueError,
            r"3 per-channel scales.*shape \(4, 2\)",
        ),
        (quant.quantize, (torch.ones(0, 2), PER_CHANNEL), ValueError, "x must be non-empty"),
        (quant.fake_quantize, (torch.ones(2, 3), PER_CHANNEL), ValueError, "per-channel scales"),
        (quant.quantization_error, (torch.ones(2, 3), PER_CHANNEL), ValueError, "per-channel scales"),
        (quant.quantization_error, ("x", PER_CHANNEL), TypeError, "x must be a torch.Tensor"),
        (quant.dequantize, (torch.ones(3, 2), PER_CHANNEL), TypeError, "q must be an integer torch.Tensor"),
        (
            quant.dequantize,
            (torch.ones(3, 2, dtype=torch.bool), PER_CHANNEL),
            TypeError,
            "q must be an integer",
        ),
        (quant.dequantize, ([1, 2], PER_CHANNEL), TypeError, "q must be an integer"),
        (quant.dequantize, (torch.ones(3, 2, dtype=torch.int32), "qp"), TypeError, "qp must be"),
        (quant.dequantize, (torch.ones(2, 3, dtype=torch.int32), PER_CHANNEL), ValueError, "per-channel"),
        (
            quant.dequantize,
            (torch.full((3, 2), 256), PER_CHANNEL),
            ValueError,
            r"q must hold codes in \[qmin",
        ),
        (quant.dequantize, (torch.full((3, 2), -1), PER_CHANNEL), ValueError, "q must hold codes"),
    ],
)
def test_quantize_and_dequantize_reject_bad_input(func, args, error, match):
    with pytest.raises(error, match=match):
        func(*args)


def test_per_channel_axis_beyond_x_dims_is_rejected():
    qp = quant.QParams(torch.tensor([0.1, 0.2]), torch.tensor([0, 0]), axis=1)
    with pytest.raises(ValueError, match=r"axis must be in \[-1, 1\)"):
        quant.quantize(torch.ones(2), qp)


@pytest.mark.parametrize(
    "args, kwargs, error, match",
    [
        ((-1, 8), {}, ValueError, "n_values must be >= 0"),
        ((10.0, 8), {}, TypeError, "n_values must be an int"),
        ((True, 8), {}, TypeError, "n_values"),
        ((10, 1), {}, ValueError, "bits"),
        ((10, 32), {}, ValueError, "bits"),
        ((10, 8), {"n_scales": -1}, ValueError, "n_scales"),
        ((10, 8), {"scale_bytes": 1.5}, TypeError, "scale_bytes"),
        ((10, 8), {"zero_point_bytes": -4}, ValueError, "zero_point_bytes"),
    ],
)
def test_quantized_nbytes_rejects_bad_input(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        quant.quantized_nbytes(*args, **kwargs)
