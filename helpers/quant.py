"""Affine (scale + zero-point) quantization from scratch: choosing the parameters (min–max or
percentile clipping, per-tensor or per-channel), quantizing to integer codes and back, measuring the
error, and counting the bytes (the lesson of the quantization notebook; tested against
``torch.quantize_per_tensor`` / ``torch.quantize_per_channel`` / ``torch.fake_quantize_per_*_affine``).

The mapping is ``q = clamp(round(x / scale) + zero_point, qmin, qmax)`` and
``x_hat = (q - zero_point) * scale``, with two integer grids:

- asymmetric: unsigned ``[0, 2**bits - 1]`` (like ``torch.quint8``), zero-point chosen so that the
  observed range fits the grid;
- symmetric: signed *restricted* range ``[-(2**(bits-1) - 1), 2**(bits-1) - 1]`` with zero-point 0
  (int8: [-127, 127], int4: [-7, 7]); dropping the extra negative code keeps the grid symmetric
  around 0, so ``-x`` quantizes to ``-q``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Real

import torch

MIN_BITS = 2
MAX_BITS = 8
_EPS = torch.finfo(torch.float32).eps  # smallest scale, as torch's observers clamp it


def _check_bits(bits: object) -> int:
    if isinstance(bits, bool) or not isinstance(bits, int):
        raise TypeError(f"bits must be an int in [{MIN_BITS}, {MAX_BITS}], got {bits!r}")
    if not MIN_BITS <= bits <= MAX_BITS:
        raise ValueError(f"bits must be in [{MIN_BITS}, {MAX_BITS}], got {bits}")
    return bits


def _grid(bits: int, symmetric: bool) -> tuple[int, int]:
    if symmetric:
        top = 2 ** (bits - 1) - 1
        return -top, top
    return 0, 2**bits - 1


def _check_float_tensor(name: str, x: object) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if x.numel() == 0:
        raise ValueError(f"{name} must be non-empty, got shape {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    return x


def _resolve_axis(axis: object, ndim: int) -> int:
    if isinstance(axis, bool) or not isinstance(axis, int):
        raise TypeError(f"axis must be None or an int, got {axis!r}")
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis must be in [{-ndim}, {ndim}) for a {ndim}-D tensor, got {axis}")
    return axis % ndim


@dataclass(frozen=True, eq=False)
class QParams:
    """Quantization parameters: ``scale`` (float32) and ``zero_point`` (int32), 0-D per-tensor or
    1-D (one per channel along ``axis``) per-channel; ``bits`` and ``symmetric`` fix the grid
    ``[qmin, qmax]`` (see the module docstring)."""

    scale: torch.Tensor
    zero_point: torch.Tensor
    bits: int = 8
    symmetric: bool = False
    axis: int | None = None

    def __post_init__(self) -> None:
        _check_bits(self.bits)
        if not isinstance(self.symmetric, bool):
            raise TypeError(f"symmetric must be a bool, got {self.symmetric!r}")
        if self.axis is not None and (isinstance(self.axis, bool) or not isinstance(self.axis, int)):
            raise TypeError(f"axis must be None or an int, got {self.axis!r}")
        scale, zero_point = self.scale, self.zero_point
        if not (isinstance(scale, torch.Tensor) and scale.is_floating_point()):
            raise TypeError(f"scale must be a floating-point torch.Tensor, got {scale!r}")
        if (
            not isinstance(zero_point, torch.Tensor)
            or zero_point.is_floating_point()
            or zero_point.is_complex()
            or zero_point.dtype == torch.bool
        ):
            raise TypeError(f"zero_point must be an integer torch.Tensor, got {zero_point!r}")
        want_ndim = 0 if self.axis is None else 1
        if scale.ndim != want_ndim or zero_point.shape != scale.shape:
            kind = "per-tensor (axis=None): 0-D" if self.axis is None else "per-channel: 1-D"
            raise ValueError(
                f"scale and zero_point must be {kind} tensors of the same shape, "
                f"got {tuple(scale.shape)} and {tuple(zero_point.shape)}"
            )
        if not (torch.isfinite(scale).all() and (scale > 0).all()):
            raise ValueError("scale must be finite and > 0")
        if self.symmetric and (zero_point != 0).any():
            raise ValueError("zero_point must be 0 when symmetric=True")
        if ((zero_point < self.qmin) | (zero_point > self.qmax)).any():
            raise ValueError(f"zero_point must lie in [qmin, qmax] = [{self.qmin}, {self.qmax}]")
        object.__setattr__(self, "scale", scale.to(torch.float32))
        object.__setattr__(self, "zero_point", zero_point.to(torch.int32))

    @property
    def qmin(self) -> int:
        """Smallest integer code."""
        return _grid(self.bits, self.symmetric)[0]

    @property
    def qmax(self) -> int:
        """Largest integer code."""
        return _grid(self.bits, self.symmetric)[1]

    @property
    def code_dtype(self) -> torch.dtype:
        """Dtype of the codes :func:`quantize` returns: ``torch.int8`` (symmetric) or ``torch.uint8``."""
        return torch.int8 if self.symmetric else torch.uint8


def _channel_rows(x: torch.Tensor, axis: int | None) -> torch.Tensor:
    """``x`` as a 2-D (channels, values) float64 matrix; one row when per-tensor."""
    x = x.detach().to(torch.float64)
    return x.reshape(1, -1) if axis is None else x.movedim(axis, 0).reshape(x.shape[axis], -1)


def _row_quantile(rows: torch.Tensor, q: float) -> torch.Tensor:
    """Per-row quantile with linear interpolation (numpy's default); sorts, so no size limit
    (``torch.quantile`` refuses inputs over 16M elements)."""
    ordered = rows.sort(dim=1).values
    position = q * (ordered.shape[1] - 1)
    low = math.floor(position)
    high = min(low + 1, ordered.shape[1] - 1)
    frac = position - low
    return ordered[:, low] + frac * (ordered[:, high] - ordered[:, low])


def compute_qparams(
    x: torch.Tensor,
    *,
    bits: int = 8,
    symmetric: bool = False,
    axis: int | None = None,
    percentile: float | None = None,
) -> QParams:
    """Scale and zero-point covering the range of ``x`` (per channel along ``axis`` if given).

    The range is min–max, or with ``percentile`` (in (50, 100], e.g. 99.9) the ``percentile`` of
    ``|x|`` (symmetric) or the ``100 - percentile`` / ``percentile`` tails (asymmetric), clipping
    outliers. The range is always extended to include 0, so that 0 is exactly representable (zero
    padding, ReLU zeros). An all-zero tensor or channel gets the smallest scale (float32 eps, like
    torch's observers) rather than 0.
    """
    x = _check_float_tensor("x", x)
    bits = _check_bits(bits)
    if not isinstance(symmetric, bool):
        raise TypeError(f"symmetric must be a bool, got {symmetric!r}")
    if axis is not None:
        axis = _resolve_axis(axis, x.ndim)
    if percentile is not None:
        if isinstance(percentile, bool) or not isinstance(percentile, Real):
            raise TypeError(f"percentile must be None or a number in (50, 100], got {percentile!r}")
        if not 50 < percentile <= 100:
            raise ValueError(f"percentile must be in (50, 100], got {percentile}")
    qmin, qmax = _grid(bits, symmetric)
    rows = _channel_rows(x, axis)
    if symmetric:
        magnitude = rows.abs()
        amax = magnitude.amax(dim=1) if percentile is None else _row_quantile(magnitude, percentile / 100)
        scale = (amax / qmax).clamp(min=_EPS).to(torch.float32)
        zero_point = torch.zeros_like(scale, dtype=torch.int32)
    else:
        if percentile is None:
            low, high = rows.amin(dim=1), rows.amax(dim=1)
        else:
            low, high = _row_quantile(rows, 1 - percentile / 100), _row_quantile(rows, percentile / 100)
        low, high = low.clamp(max=0), high.clamp(min=0)  # 0 must be inside the range
        scale = ((high - low) / (qmax - qmin)).clamp(min=_EPS).to(torch.float32)
        zero_point = (qmin - torch.round(low / scale.double())).clamp(qmin, qmax).to(torch.int32)
    if axis is None:
        scale, zero_point = scale[0], zero_point[0]
    return QParams(scale=scale, zero_point=zero_point, bits=bits, symmetric=symmetric, axis=axis)


def _broadcast(qp: QParams, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``qp.scale`` and ``qp.zero_point`` reshaped to broadcast against ``x``."""
    if not isinstance(qp, QParams):
        raise TypeError(f"qp must be a helpers.quant.QParams, got {type(qp).__name__}")
    if qp.axis is None:
        return qp.scale, qp.zero_point
    axis = _resolve_axis(qp.axis, x.ndim)
    if x.shape[axis] != qp.scale.numel():
        raise ValueError(
            f"qp has {qp.scale.numel()} per-channel scales along axis {qp.axis}, "
            f"but x has shape {tuple(x.shape)}"
        )
    shape = [1] * x.ndim
    shape[axis] = -1
    return qp.scale.reshape(shape), qp.zero_point.reshape(shape)


def quantize(x: torch.Tensor, qp: QParams) -> torch.Tensor:
    """Integer codes ``clamp(round(x * (1 / scale)) + zero_point, qmin, qmax)``.

    Rounding is half-to-even (``torch.round``) and the division is a multiplication by the float32
    reciprocal, exactly as ``torch.fake_quantize_per_tensor_affine`` / ``..._per_channel_affine``
    compute it (bit for bit). ``torch.quantize_per_tensor`` / ``quantize_per_channel`` instead add
    the zero-point *before* rounding, in float32, so on exact .5 ties with an odd zero-point (and on
    rare float near-ties) their code is one higher; symmetric (zero-point 0) codes always agree.
    Returns ``qp.code_dtype`` codes (``torch.uint8`` asymmetric, ``torch.int8`` symmetric, like
    ``int_repr()``): cast them before doing arithmetic.
    """
    x = _check_float_tensor("x", x)
    scale, zero_point = _broadcast(qp, x)
    work = x.detach().to(torch.promote_types(x.dtype, torch.float32))
    codes = torch.round(work * (1.0 / scale)) + zero_point
    return codes.clamp(qp.qmin, qp.qmax).to(qp.code_dtype)


def dequantize(q: torch.Tensor, qp: QParams) -> torch.Tensor:
    """Float32 values ``(q - zero_point) * scale`` from integer codes."""
    if not isinstance(q, torch.Tensor) or q.is_floating_point() or q.is_complex() or q.dtype == torch.bool:
        raise TypeError(
            f"q must be an integer torch.Tensor of codes, got {getattr(q, 'dtype', type(q).__name__)}"
        )
    scale, zero_point = _broadcast(qp, q)
    codes = q.to(torch.int32)
    if q.numel() and (codes.min() < qp.qmin or codes.max() > qp.qmax):
        raise ValueError(f"q must hold codes in [qmin, qmax] = [{qp.qmin}, {qp.qmax}]")
    return (codes - zero_point).to(torch.float32) * scale


def fake_quantize(x: torch.Tensor, qp: QParams) -> torch.Tensor:
    """``dequantize(quantize(x, qp), qp)`` in ``x``'s dtype: the values the quantized model sees."""
    return dequantize(quantize(x, qp), qp).to(x.dtype)


def quantization_error(x: torch.Tensor, qp: QParams) -> dict[str, float]:
    """Error of ``fake_quantize(x, qp)`` against ``x``: ``max_abs_error``, ``rmse`` and ``sqnr_db``
    (10·log10(signal power / noise power); ``inf`` when the round trip is exact)."""
    reference = _check_float_tensor("x", x).detach().to(torch.float64)
    noise = fake_quantize(x, qp).to(torch.float64) - reference
    noise_power = float(noise.square().mean())
    signal_power = float(reference.square().mean())
    sqnr_db = math.inf if noise_power == 0 else 10 * math.log10(signal_power / noise_power)
    return {
        "max_abs_error": float(noise.abs().max()),
        "rmse": math.sqrt(noise_power),
        "sqnr_db": sqnr_db,
    }


def _check_count(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def quantized_nbytes(
    n_values: int, bits: int, *, n_scales: int = 1, scale_bytes: int = 4, zero_point_bytes: int = 0
) -> int:
    """Bytes to store ``n_values`` codes packed at ``bits`` per value (a tight bit stream rounded up
    to whole bytes: int4 packs two values per byte) plus ``n_scales`` scales of ``scale_bytes`` each
    and as many zero-points of ``zero_point_bytes`` (0 for symmetric: the zero-point is implied)."""
    n_values = _check_count("n_values", n_values, 0)
    bits = _check_bits(bits)
    n_scales = _check_count("n_scales", n_scales, 0)
    scale_bytes = _check_count("scale_bytes", scale_bytes, 0)
    zero_point_bytes = _check_count("zero_point_bytes", zero_point_bytes, 0)
    return -(-n_values * bits // 8) + n_scales * (scale_bytes + zero_point_bytes)
