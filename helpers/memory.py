"""Training and inference memory from shapes: weights, gradients, optimizer state, activations, KV cache.

The estimators are arithmetic on sizes and import nothing heavy. The measuring functions at the end
(``saved_tensor_bytes``, ``cpu_peak_bytes``, ``cpu_memory_timeline``, ``cuda_peak_bytes``) import torch
when they are called; notebook 01a checks the estimators against them.

Sizes are in bytes. Dtypes are names (``"fp32"``, ``"bf16"``, ``"float16"``, ...) or ``torch.dtype``.
"""

from __future__ import annotations

import contextlib
import math
import numbers
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from helpers.compute import BYTES_PER_DTYPE

DTYPE_BYTES: dict[str, float] = {**BYTES_PER_DTYPE, "fp64": 8, "fp8": 1, "uint8": 1}
_DTYPE_ALIASES = {
    "float32": "fp32", "float": "fp32", "float16": "fp16", "half": "fp16", "bfloat16": "bf16",
    "float64": "fp64", "double": "fp64", "float8_e4m3fn": "fp8", "float8_e5m2": "fp8",
}

# Moment buffers each optimizer keeps per parameter (torch.optim defaults; Adam without amsgrad).
OPTIMIZER_STATES: dict[str, int] = {
    "sgd": 0, "sgd_momentum": 1, "rmsprop": 1, "adagrad": 1, "lion": 1, "adam": 2, "adamw": 2,
}
EIGHT_BIT_SUFFIX = "_8bit"
ABSMAX_BYTES = 4  # one fp32 scale per block of a block-wise 8-bit state

# Activations whose backward needs only their output (which is also the next Linear's saved input),
# and those that save their input (a second tensor per hidden layer).
SAVES_OUTPUT = ("relu", "tanh", "sigmoid")
SAVES_INPUT = ("gelu", "silu")
ATTENTION_KINDS = ("eager", "flash")
STEP_IMPLEMENTATIONS = ("for-loop", "foreach", "fused")


# --------------------------------------------------------------------------- input checks


def _check_number(name: str, value: Any, *, minimum: float = 0.0, strict: bool = True) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(value):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if (strict and not value > minimum) or (not strict and value < minimum):
        relation = ">" if strict else ">="
        raise ValueError(f"{name} must be {relation} {minimum}, got {value!r}")


def _check_count(name: str, value: Any, *, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


def _check_choice(name: str, value: Any, choices: Iterable[str]) -> None:
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


# --------------------------------------------------------------------------- dtypes and state


def dtype_bytes(dtype: Any) -> float:
    """Bytes per element: ``"fp32"`` → 4, ``"bf16"`` → 2, ``torch.float16`` → 2, ``"int4"`` → 0.5."""
    if not isinstance(dtype, str):
        text = str(dtype)
        if not text.startswith("torch."):
            raise TypeError(f"dtype must be a name such as 'fp32' or a torch.dtype, got {dtype!r}")
        dtype = text.removeprefix("torch.")
    name = _DTYPE_ALIASES.get(dtype, dtype)
    if name not in DTYPE_BYTES:
        raise ValueError(f"dtype must be one of {sorted(DTYPE_BYTES)} (or an alias), got {dtype!r}")
    return DTYPE_BYTES[name]


def optimizer_state_bytes_per_param(optimizer: str, *, state_dtype: Any = "fp32", block_size: int = 256) -> float:
    """Bytes of optimizer state per parameter: number of moment buffers × bytes per element.

    ``"sgd"`` keeps nothing, ``"sgd_momentum"`` one buffer, ``"adam"``/``"adamw"`` two (m and v).
    A ``_8bit`` suffix (``"adamw_8bit"``) stores each buffer block-wise in 8 bits with one fp32 scale
    per ``block_size`` values: 1 + 4/block_size bytes per buffer (bitsandbytes uses 256; the 8-bit
    optimizers paper used 2048; tensors under 4096 elements stay in fp32 there, ignored here).
    """
    if not isinstance(optimizer, str):
        raise TypeError(f"optimizer must be a str such as 'adamw', got {optimizer!r}")
    base = optimizer.lower().removesuffix(EIGHT_BIT_SUFFIX)
    _check_choice("optimizer", base, OPTIMIZER_STATES)
    if optimizer.lower().endswith(EIGHT_BIT_SUFFIX):
        _check_count("block_size", block_size)
        return OPTIMIZER_STATES[base] * (1 + ABSMAX_BYTES / block_size)
    return OPTIMIZER_STATES[base] * dtype_bytes(state_dtype)


@dataclass(frozen=True)
class Precision:
    """Bytes per parameter that a numeric-precision recipe keeps, besides the optimizer's moments."""

    name: str
    weights: float  # the weights the model computes with
    gradients: float  # the gradients backward writes
    master_weights: float = 0.0  # fp32 copy the optimizer updates (mixed precision)
    gradient_copy: float = 0.0  # fp32 copy of 16-bit gradients made for the update
    weight_copy: float = 0.0  # 16-bit copy of fp32 weights cached by autocast during the step
    description: str = ""


PRECISIONS: dict[str, Precision] = {
    p.name: p
    for p in (
        Precision("fp32", 4, 4, description="plain fp32 training"),
        Precision("amp", 4, 4, weight_copy=2,
                  description="torch.autocast: fp32 weights and gradients, 16-bit weight copies cached in the step"),
        Precision("bf16_mixed", 2, 2, master_weights=4,
                  description="16-bit weights and gradients, fp32 master weights (the ZeRO paper's account)"),
        Precision("bf16_fp32_grads", 2, 4, master_weights=4,
                  description="16-bit weights, gradients accumulated in fp32 (Megatron-LM's bf16 main_grad)"),
        Precision("fp16_mixed", 2, 2, master_weights=4, gradient_copy=4,
                  description="fp16 weights and gradients plus fp32 copies of both (Megatron-LM fp16)"),
        Precision("bf16_pure", 2, 2, description="bf16 everywhere, no master copy (small updates round away)"),
    )
}


def _precision(precision: str | Precision) -> Precision:
    if isinstance(precision, Precision):
        return precision
    if not isinstance(precision, str):
        raise TypeError(f"precision must be a name or a Precision, got {precision!r}")
    _check_choice("precision", precision, PRECISIONS)
    return PRECISIONS[precision]


def bytes_per_param(
    optimizer: str = "adamw",
    precision: str | Precision = "bf16_mixed",
    *,
    state_dtype: Any = "fp32",
    block_size: int = 256,
) -> dict[str, float]:
    """Bytes per parameter of the training state, by part, with ``"total"``.

    The accounts that circulate, each right for its recipe (Adam/AdamW, fp32 moments):
    ``fp32`` 4 + 4 + 8 = 16; ``bf16_mixed`` 2 + 2 + 4 master + 8 = 16 (ZeRO); ``amp`` 4 + 4 + 2
    autocast copy + 8 = 18 (Hugging Face's account); ``bf16_fp32_grads`` 2 + 4 + 4 + 8 = 18 and
    ``fp16_mixed`` 2 + 2 + 4 + 4 grad copy + 8 = 20 (Megatron-LM). Activations are not included.
    """
    recipe = _precision(precision)
    parts = {
        "weights": float(recipe.weights),
        "weight_copy": float(recipe.weight_copy),
        "gradients": float(recipe.gradients),
        "gradient_copy": float(recipe.gradient_copy),
        "master_weights": float(recipe.master_weights),
        "optimizer": float(optimizer_state_bytes_per_param(optimizer, state_dtype=state_dtype, block_size=block_size)),
    }
    parts["total"] = sum(parts.values())
    return parts


def training_state_bytes(
    n_params: float,
    optimizer: str = "adamw",
    precision: str | Precision = "bf16_mixed",
    *,
    state_dtype: Any = "fp32",
    block_size: int = 256,
) -> dict[str, float]:
    """``bytes_per_param`` × ``n_params``: weights, gradients, copies, master weights, optimizer state, total."""
    _check_number("n_params", n_params)
    per_param = bytes_per_param(optimizer, precision, state_dtype=state_dtype, block_size=block_size)
    return {part: n_params * value for part, value in per_param.items()}


# --------------------------------------------------------------------------- activations


def _check_widths(widths: Sequence[int]) -> None:
    if isinstance(widths, (str, bytes)) or not isinstance(widths, Sequence):
        raise TypeError(f"widths must be a sequence of ints [in, hidden..., out], got {widths!r}")
    if len(widths) < 2:
        raise ValueError(f"widths must hold at least [in, out], got {list(widths)}")
    for width in widths:
        _check_count("widths[...]", width)


def mlp_activation_bytes(batch: int, widths: Sequence[int], *, dtype: Any = "fp32", activation: str = "relu") -> float:
    """Bytes autograd saves for backward in ``Linear → activation → ... → Linear`` (``helpers.models.mlp``).

    ``widths`` is ``[in, hidden..., out]``. Which tensors are saved: a Linear saves its input (for the
    weight gradient); ReLU, tanh and sigmoid save their output, which is the same tensor as the next
    Linear's input, so each hidden layer costs batch × width once; GELU and SiLU save their input as
    well, so twice. Not counted: the model input (the batch, held by the caller) and the loss's own
    saved tensors (see ``logits_bytes``).
    """
    _check_count("batch", batch)
    _check_widths(widths)
    _check_choice("activation", activation, SAVES_OUTPUT + SAVES_INPUT)
    tensors_per_layer = 1 if activation in SAVES_OUTPUT else 2
    return batch * sum(widths[1:-1]) * tensors_per_layer * dtype_bytes(dtype)


def transformer_layer_activation_bytes(
    batch: int,
    seq_len: int,
    hidden: int,
    n_heads: int,
    *,
    dtype: Any = "bf16",
    ffn_mult: int = 4,
    attention: str = "eager",
    dropout: bool = False,
    layernorm_stats: bool = True,
) -> float:
    """Bytes one pre-LayerNorm transformer layer saves for backward (Korthikanti et al. 2022, generalised).

    Saved, in units of s·b·h elements of ``dtype`` (s = ``seq_len``, b = ``batch``, h = ``hidden``):
    the two LayerNorm inputs (2), the QKV projection's input (1), Q, K and V (3), the output
    projection's input (1), the MLP's input (1), the GELU input (``ffn_mult``) and the second MLP
    matmul's input (``ffn_mult``): 8 + 2·ffn_mult = 16. Attention adds:

    - ``"eager"`` (softmax materialised): the softmax output, a·s²·b elements (a = ``n_heads``);
    - ``"flash"`` (fused kernels, also PyTorch's SDPA on CPU): no s² term, a log-sum-exp of a·s·b fp32.

    ``dropout`` adds 1-byte masks (a·s²·b on the attention probabilities in eager mode, 2·s·b·h on
    the two residual branches) and, in eager mode, the dropped-out probabilities (a·s²·b elements).
    ``layernorm_stats`` adds each LayerNorm's mean and 1/std (2 × 2 × s·b fp32), which the paper
    ignores. With fp16, eager, dropout and no statistics this is the paper's s·b·h·(34 + 5·a·s/h).
    """
    for name, value in (("batch", batch), ("seq_len", seq_len), ("hidden", hidden), ("n_heads", n_heads),
                        ("ffn_mult", ffn_mult)):
        _check_count(name, value)
    if hidden % n_heads:
        raise ValueError(f"hidden ({hidden}) must be divisible by n_heads ({n_heads})")
    _check_choice("attention", attention, ATTENTION_KINDS)
    p = dtype_bytes(dtype)
    sbh = seq_len * batch * hidden
    scores = n_heads * seq_len * seq_len * batch
    total = (8 + 2 * ffn_mult) * sbh * p
    if attention == "eager":
        total += scores * p + (scores * (1 + p) if dropout else 0)
    else:
        total += n_heads * seq_len * batch * 4
    if dropout:
        total += 2 * sbh
    if layernorm_stats:
        total += 2 * 2 * seq_len * batch * 4
    return total


def transformer_activation_bytes(
    batch: int,
    seq_len: int,
    hidden: int,
    n_heads: int,
    n_layers: int,
    *,
    checkpoint: bool = False,
    dtype: Any = "bf16",
    **layer_options: Any,
) -> float:
    """Peak activation bytes of ``n_layers`` layers in backward, with or without activation checkpointing.

    Without checkpointing every layer keeps what ``transformer_layer_activation_bytes`` counts. With
    checkpointing of every layer only the layer inputs are kept (s·b·h each) and, during backward,
    one layer at a time is recomputed, so one layer's full activations are added on top.
    """
    _check_count("n_layers", n_layers)
    per_layer = transformer_layer_activation_bytes(batch, seq_len, hidden, n_heads, dtype=dtype, **layer_options)
    if not checkpoint:
        return n_layers * per_layer
    return n_layers * seq_len * batch * hidden * dtype_bytes(dtype) + per_layer


def logits_bytes(n_tokens: int, vocab_size: int, *, dtype: Any = "fp32") -> float:
    """Bytes of one logits tensor, ``n_tokens × vocab_size``.

    Cross-entropy keeps a log-softmax of the same shape for backward, and mixed-precision code often
    up-casts the logits to fp32 first, so the loss can briefly hold two or three such tensors: for a
    large vocabulary this is the single largest activation.
    """
    _check_count("n_tokens", n_tokens)
    _check_count("vocab_size", vocab_size)
    return n_tokens * vocab_size * dtype_bytes(dtype)


def kv_cache_bytes(
    *, batch: int, seq_len: int, n_layers: int, n_kv_heads: int, head_dim: int, dtype: Any = "fp16"
) -> float:
    """Bytes of the KV cache at inference: K and V for every layer, KV head and cached token.

    2 × n_layers × n_kv_heads × head_dim × bytes × batch × seq_len. Multi-head attention has one KV
    head per query head; grouped-query attention (GQA) shares each KV head among a group of query
    heads, which divides the cache by n_heads / n_kv_heads; multi-query attention has one KV head.
    """
    for name, value in (("batch", batch), ("seq_len", seq_len), ("n_layers", n_layers),
                        ("n_kv_heads", n_kv_heads), ("head_dim", head_dim)):
        _check_count(name, value)
    return 2 * n_layers * n_kv_heads * head_dim * dtype_bytes(dtype) * batch * seq_len


# --------------------------------------------------------------------------- totals and peaks


def estimate_training_memory(
    n_params: float,
    *,
    optimizer: str = "adamw",
    precision: str | Precision = "bf16_mixed",
    activations: float = 0.0,
    logits: float = 0.0,
    state_dtype: Any = "fp32",
) -> dict[str, float]:
    """Training memory by part: the state of ``training_state_bytes`` plus activations and logits, with a total.

    A sum of parts is not the peak of a step: it leaves out temporaries (Adam's out-of-place update,
    the gradients backward allocates while activations are still alive) and ignores that activations
    are freed as gradients appear. Measured on MLPs it came out below the peak in every case;
    ``mlp_training_peak`` follows one step in time instead.
    """
    _check_number("activations", activations, strict=False)
    _check_number("logits", logits, strict=False)
    parts = training_state_bytes(n_params, optimizer, precision, state_dtype=state_dtype)
    parts.pop("total")
    parts["activations"] = float(activations)
    parts["logits"] = float(logits)
    parts["total"] = sum(parts.values())
    return parts


def optimizer_step_temporary_bytes(
    optimizer: str, *, param_bytes: float, largest_param_bytes: float, implementation: str = "for-loop"
) -> float:
    """Temporary bytes ``optimizer.step()`` allocates on top of the state (torch.optim, steady state).

    Adam/AdamW compute sqrt(v)/bias-correction + eps out of place: the for-loop implementation (CPU
    default) holds two such tensors of the current parameter, so 2 × the largest one; ``foreach``
    (CUDA default) computes it for all parameters at once, 1 × all of them; ``fused`` none. SGD, with
    or without momentum, updates in place. Adam with ``weight_decay`` adds a copy of the gradients
    (not counted here); AdamW decays in place.
    """
    if not isinstance(optimizer, str):
        raise TypeError(f"optimizer must be a str such as 'adam', got {optimizer!r}")
    _check_choice("optimizer", optimizer, OPTIMIZER_STATES)
    _check_choice("implementation", implementation, STEP_IMPLEMENTATIONS)
    _check_number("param_bytes", param_bytes, strict=False)
    _check_number("largest_param_bytes", largest_param_bytes, strict=False)
    if largest_param_bytes > param_bytes:
        raise ValueError(f"largest_param_bytes ({largest_param_bytes}) cannot exceed param_bytes ({param_bytes})")
    if optimizer not in ("adam", "adamw") or implementation == "fused":
        return 0.0
    return 2 * largest_param_bytes if implementation == "for-loop" else float(param_bytes)


def mlp_training_peak(
    batch: int,
    widths: Sequence[int],
    *,
    optimizer: str = "adam",
    dtype: Any = "fp32",
    implementation: str = "for-loop",
) -> dict[str, float]:
    """Peak bytes of one training step of a ReLU MLP with cross-entropy, followed in time.

    The step is ``loss = cross_entropy(model(x), y); loss.backward(); opt.step(); opt.zero_grad(set_to_none=True)``
    in steady state (optimizer state exists, no gradients during forward). Resident: weights and
    optimizer state. Then, phase by phase: the forward pass saves the hidden activations; at the loss,
    logits and their log-softmax coexist; backward walks the layers from the last, freeing each saved
    activation once both its users are done while the gradients appear, with the gradient of a layer's
    output and of its input alive at once; the optimizer step adds its temporaries to the gradients.
    Not counted: the input batch, scalars, library workspaces. Returns the resident bytes, the
    transient peak of each phase, ``"transient"`` (their maximum) and ``"peak"`` (resident + transient).
    """
    _check_count("batch", batch)
    _check_widths(widths)
    if not isinstance(optimizer, str):
        raise TypeError(f"optimizer must be a str such as 'adam', got {optimizer!r}")
    state_per_param = optimizer_state_bytes_per_param(optimizer, state_dtype=dtype)
    p = dtype_bytes(dtype)
    acts = [batch * w * p for w in widths[1:-1]]  # saved output of hidden layer i (1-based i = index + 1)
    grads = [(w_in * w_out + w_out) * p for w_in, w_out in zip(widths[:-1], widths[1:], strict=False)]
    logits = batch * widths[-1] * p
    n_hidden = len(acts)

    saved = sum(acts)
    forward = saved + 2 * logits  # logits and their log-softmax, before the logits are dropped
    backward = saved + 3 * logits  # log-softmax, its incoming gradient and the logits' gradient
    grad_total = 0.0
    grad_out = logits
    for layer in range(n_hidden, -1, -1):  # Linear layers from the last; index = number of layers before it
        grad_total += grads[layer]
        grad_in = acts[layer - 1] if layer else 0.0
        backward = max(backward, saved + grad_total + grad_out + grad_in)
        if layer:  # the ReLU in front: gradient of its output and of its input, then its saved output is freed
            backward = max(backward, saved + grad_total + 2 * grad_in)
            saved -= acts[layer - 1]
            grad_out = grad_in
    param_bytes = sum(grads)
    step = param_bytes + optimizer_step_temporary_bytes(
        optimizer.removesuffix(EIGHT_BIT_SUFFIX), param_bytes=param_bytes, largest_param_bytes=max(grads),
        implementation=implementation)
    resident = param_bytes + param_bytes / p * state_per_param
    transient = max(forward, backward, step)
    return {"resident": resident, "forward": forward, "backward": backward, "step": step,
            "transient": transient, "peak": resident + transient}


# --------------------------------------------------------------------------- measuring (imports torch)


def tensor_bytes(tensors: Iterable[Any]) -> int:
    """Bytes of the distinct storages behind ``tensors`` (views of one storage count once)."""
    storages: dict[int, int] = {}
    for tensor in tensors:
        if not hasattr(tensor, "untyped_storage"):
            raise TypeError(f"tensors must hold torch tensors, got {type(tensor).__name__}")
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
    return sum(storages.values())


def saved_tensor_bytes(fn: Callable[[], Any], *, exclude: Iterable[Any] = ()) -> tuple[Any, int]:
    """Run ``fn()`` and return ``(its result, bytes autograd saved for backward)``.

    Method: ``torch.autograd.graph.saved_tensors_hooks`` sees every tensor an operation saves; the
    bytes of their distinct storages are summed, leaving out the storages of ``exclude`` (pass the
    parameters and the input batch, which exist anyway). Only what is *saved* is counted: temporaries
    freed during the forward pass and the gradients of backward are not.
    """
    import torch

    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    skip = {t.untyped_storage().data_ptr() for t in exclude}
    saved: dict[int, int] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in skip:
            saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        result = fn()
    return result, sum(saved.values())


class PeakMemory(NamedTuple):
    """What a measuring call found: the function's result and bytes relative to the start of the call."""

    result: Any
    peak: int  # highest bytes allocated during the call, above what was allocated when it started
    retained: int  # bytes still allocated when it returned, above the same baseline
    before: int | None  # bytes allocated when it started, where the device reports it (CUDA), else None


def _allocation_events(prof: Any) -> list[tuple[int, int]]:
    """(time, signed bytes) of every allocator event a finished ``torch.profiler.profile`` recorded."""
    events: list[tuple[int, int]] = []
    stack = list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        node = stack.pop()
        if type(node.extra_fields).__name__ == "_ExtraFields_Allocation":
            events.append((node.start_time_ns, int(node.extra_fields.alloc_size)))
        stack.extend(node.children)
    return sorted(events)


@contextlib.contextmanager
def _memory_profiler() -> Iterator[Any]:
    """A started ``torch.profiler.profile`` that records CPU allocations, stopped when the block ends."""
    from torch.profiler import ProfilerActivity, profile

    prof = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
    with _quiet_native_stderr():
        prof.start()
    try:
        yield prof
    finally:
        with _quiet_native_stderr():
            prof.stop()


@contextlib.contextmanager
def _quiet_native_stderr() -> Iterator[None]:
    """Point file descriptor 2 at /dev/null for the block.

    The profiler's C++ back end (kineto) prints start/stop banners straight to descriptor 2, where a
    Jupyter kernel captures them into the notebook's output; Python's own warnings are unaffected.
    """
    try:
        saved = os.dup(2)
    except OSError:  # no descriptor 2 (some embedded interpreters): nothing to silence
        yield
        return
    sys.stderr.flush()
    try:
        with open(os.devnull, "w", encoding="ascii") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def cpu_peak_bytes(fn: Callable[[], Any]) -> PeakMemory:
    """Run ``fn()`` under ``torch.profiler``; return its result and the bytes it allocated on the CPU.

    Method: with ``profile_memory=True`` the profiler records every allocation and free of PyTorch's
    CPU allocator; the running sum of those events, in time order, gives ``peak`` (its maximum) and
    ``retained`` (its final value). It is the CPU counterpart of ``torch.cuda.max_memory_allocated()``
    minus ``memory_allocated()`` before the call: tensors that existed before (parameters, optimizer
    state, the batch) are not in it, so add them. Free what the call would free before it starts (call
    ``zero_grad`` first), or the profiler warns about blocks of unknown size. Allocations outside
    PyTorch's allocator (NumPy, Python objects, autograd nodes) are not seen.
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    with _memory_profiler() as prof:
        result = fn()
    running = peak = 0
    for _, nbytes in _allocation_events(prof):
        running += nbytes
        peak = max(peak, running)
    return PeakMemory(result, peak, running, None)


@dataclass(frozen=True)
class MemoryTimeline:
    """Bytes allocated on the CPU over time, relative to the start, with the phases that ran.

    ``times_ms[i]`` is the time of the i-th allocator event after the first phase began, and
    ``allocated[i]`` the running sum of allocations minus frees just after it. ``phases`` holds
    ``(name, start_ms, end_ms)`` for each phase, on the same clock.
    """

    times_ms: list[float]
    allocated: list[int]
    phases: list[tuple[str, float, float]]

    @property
    def peak(self) -> int:
        """Highest bytes allocated at any moment (0 when nothing was allocated)."""
        return max(self.allocated, default=0)

    @property
    def peak_phase(self) -> str:
        """The phase during which the peak was reached."""
        at = self.times_ms[self.allocated.index(self.peak)] if self.allocated else 0.0
        return next((name for name, start, end in self.phases if start <= at <= end), self.phases[-1][0])

    def level_at_end(self, phase: str) -> int:
        """Bytes allocated when ``phase`` ended."""
        end = next(end for name, _, end in self.phases if name == phase)
        level = 0
        for t, value in zip(self.times_ms, self.allocated, strict=True):
            if t > end:
                break
            level = value
        return level

    def time_above(self, fraction: float) -> float:
        """Milliseconds during which the allocation was at or above ``fraction`` of the peak."""
        if not 0 < fraction <= 1:
            raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
        end = self.phases[-1][2]
        edges = [*self.times_ms[1:], end]
        return sum(max(0.0, stop - t) for t, stop, value in zip(self.times_ms, edges, self.allocated, strict=True)
                   if value >= fraction * self.peak)


def cpu_memory_timeline(phases: Sequence[tuple[str, Callable[[], Any]]]) -> MemoryTimeline:
    """Run named phases in order under ``torch.profiler``; return the CPU allocation curve over time.

    Same method as ``cpu_peak_bytes`` (the profiler's allocation events, summed in time order); each
    phase runs inside ``torch.profiler.record_function(name)``, whose start and end come from the
    same clock. Tensors that existed before the first phase are not counted.
    """
    from torch.profiler import record_function

    if not phases:
        raise ValueError("phases must name at least one (name, function) pair")
    names = [name for name, _ in phases]
    if len(set(names)) != len(names):
        raise ValueError(f"phase names must be unique, got {names}")
    for name, fn in phases:
        if not callable(fn):
            raise TypeError(f"phase {name!r}: expected a callable, got {type(fn).__name__}")
    with _memory_profiler() as prof:
        for name, fn in phases:
            with record_function(name):
                fn()
    spans = {}
    stack = list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        node = stack.pop()
        if node.name in names and node.name not in spans:
            spans[node.name] = (node.start_time_ns, node.end_time_ns)
        stack.extend(node.children)
    origin = spans[names[0]][0]
    times, allocated, running = [], [], 0
    for t, nbytes in _allocation_events(prof):
        running += nbytes
        times.append((t - origin) / 1e6)
        allocated.append(running)
    return MemoryTimeline(times, allocated,
                          [(name, (spans[name][0] - origin) / 1e6, (spans[name][1] - origin) / 1e6) for name in names])


def cuda_peak_bytes(fn: Callable[[], Any], device: Any = None) -> PeakMemory:
    """Run ``fn()`` on a CUDA device; return its result and the bytes it allocated there.

    Method: ``torch.cuda.reset_peak_memory_stats``, then ``torch.cuda.max_memory_allocated`` after a
    synchronize. ``peak`` and ``retained`` are relative to ``before``, the bytes allocated when the call
    started (parameters, optimizer state, library workspaces such as cuBLAS's), as on the CPU.
    """
    import torch

    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    if not torch.cuda.is_available():
        raise RuntimeError("cuda_peak_bytes needs a CUDA GPU (torch.cuda.is_available() is False)")
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    result = fn()
    torch.cuda.synchronize(device)
    peak = torch.cuda.max_memory_allocated(device) - before
    return PeakMemory(result, peak, torch.cuda.memory_allocated(device) - before, before)
