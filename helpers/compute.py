"""Back-of-the-envelope compute and memory arithmetic for training a model.

These are the formulas interviewers expect; the notebooks check them against measurements.
"""

from __future__ import annotations

from helpers.validation import check_int, check_positive

BYTES_PER_DTYPE = {"fp32": 4, "tf32": 4, "bf16": 2, "fp16": 2, "int8": 1, "int4": 0.5}


def training_flops(n_params: float, n_tokens: float) -> float:
    """≈ 6·N·D: 2 FLOPs per parameter per token forward, 4 backward (dense layers, no attention term)."""
    check_positive("n_params", n_params)
    check_positive("n_tokens", n_tokens)
    return 6.0 * n_params * n_tokens


def gpu_hours(flops: float, *, peak_flops_per_s: float, utilization: float = 0.4, n_gpus: int = 1) -> float:
    """Wall-clock hours on ``n_gpus`` running at ``utilization`` of ``peak_flops_per_s`` each, times n_gpus."""
    check_positive("flops", flops)
    check_positive("peak_flops_per_s", peak_flops_per_s)
    if not 0 < utilization <= 1:
        raise ValueError(f"utilization must be in (0, 1], got {utilization!r}")
    check_int("n_gpus", n_gpus)
    seconds_on_all = flops / (peak_flops_per_s * utilization * n_gpus)
    return seconds_on_all * n_gpus / 3600.0


def weight_bytes(n_params: float, dtype: str = "fp32") -> float:
    """Bytes to store ``n_params`` weights in ``dtype`` (fp32, tf32, bf16, fp16, int8, int4)."""
    check_positive("n_params", n_params)
    if dtype not in BYTES_PER_DTYPE:
        raise ValueError(f"dtype must be one of {sorted(BYTES_PER_DTYPE)}, got {dtype!r}")
    return n_params * BYTES_PER_DTYPE[dtype]


def adam_mixed_precision_bytes_per_param() -> int:
    """16 bytes: bf16 weights (2) + bf16 grads (2) + fp32 master weights (4) + Adam m and v (4 + 4).

    The short form of ``helpers.memory.bytes_per_param("adamw", "bf16_mixed")``, which has the parts.
    """
    from helpers.memory import bytes_per_param  # helpers.memory imports this module

    return int(bytes_per_param("adamw", "bf16_mixed")["total"])
