"""Training dynamics, step by step: a logged training loop, divergence and spike detection, the
learning-rate range test, per-layer gradient norms and the gradient noise scale."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from helpers.config import progress_enabled
from helpers.train import evaluate
from helpers.validation import check_int

OptimizerFactory = Callable[[Sequence[nn.Parameter], float], torch.optim.Optimizer]


def _check_factor(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 1:
        raise ValueError(f"{name} must be a number > 1, got {value!r}")


def is_diverged(losses: Sequence[float], *, factor: float = 4.0) -> bool:
    """True when a loss is NaN or infinite, or exceeds ``factor`` times the first loss."""
    _check_factor("factor", factor)
    if len(losses) == 0:
        return False
    values = np.asarray(losses, dtype=float)
    return bool(not np.all(np.isfinite(values)) or np.any(values > factor * values[0]))


def count_spikes(losses: Sequence[float], *, factor: float = 2.0, window: int = 20) -> int:
    """Number of steps whose loss exceeds ``factor`` times the median of the ``window`` steps before.

    Non-finite losses count as spikes. The first ``window`` steps are never counted: they have no
    history to compare with.
    """
    _check_factor("factor", factor)
    check_int("window", window)
    values = np.asarray(losses, dtype=float)
    spikes = 0
    for i in range(window, len(values)):
        history = values[i - window : i]
        finite = history[np.isfinite(history)]
        reference = np.median(finite) if len(finite) else math.inf
        spikes += bool(not np.isfinite(values[i]) or values[i] > factor * reference)
    return spikes


def first_reaching(values: Sequence[float], target: float, *, higher_is_better: bool = True) -> int | None:
    """Index of the first value at or beyond ``target`` (None if never reached)."""
    for i, value in enumerate(values):
        if (value >= target) if higher_is_better else (value <= target):
            return i
    return None


@dataclass
class StepLog:
    """What ``train_steps`` recorded: one entry per optimizer step, plus periodic validation."""

    loss: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    grad_norm: list[float] = field(default_factory=list)
    val_step: list[int] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    diverged_at: int | None = None

    @property
    def diverged(self) -> bool:
        return self.diverged_at is not None

    def steps_to(self, target_acc: float) -> int | None:
        """Optimizer steps until the validation accuracy first reached ``target_acc``."""
        i = first_reaching(self.val_acc, target_acc)
        return None if i is None else self.val_step[i]

    def seconds_to(self, target_acc: float) -> float | None:
        """Wall-clock seconds (training only, validation excluded) until ``target_acc`` was reached."""
        step = self.steps_to(target_acc)
        return None if step is None else self.seconds[step - 1]


def _batches(n: int, batch_size: int, generator: torch.Generator):
    """Endless mini-batch indices: a fresh permutation each epoch, drawn from ``generator``."""
    while True:
        order = torch.randperm(n, generator=generator)
        for begin in range(0, n - batch_size + 1, batch_size):
            yield order[begin : begin + batch_size]


def train_steps(
    model: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    *,
    optimizer: torch.optim.Optimizer,
    steps: int,
    batch_size: int | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    clip_norm: float | None = None,
    X_val: torch.Tensor | None = None,
    y_val: torch.Tensor | None = None,
    eval_every: int = 10,
    stop_at: float | None = None,
    seed: int = 0,
    divergence_factor: float = 4.0,
    divergence_reference: float | None = None,
    loss_fn: nn.Module | None = None,
    progress: bool | None = None,
    desc: str = "steps",
) -> StepLog:
    """Train a classifier for ``steps`` optimizer steps and log every step.

    Mini-batches are drawn without replacement, epoch by epoch, from a generator seeded with
    ``seed`` (so the data order is reproducible on its own). ``scheduler`` is stepped once per
    optimizer step. ``clip_norm`` clips the global gradient norm; the logged norm is the one
    before clipping. Training stops at the first diverged step (a non-finite loss, or a loss over
    ``divergence_factor`` times ``divergence_reference``), recorded in ``diverged_at``. The
    reference defaults to the first step's loss; pass one (ln C for C classes, say) when the call
    continues a model that is already trained, whose first loss is small. With ``stop_at``,
    training ends at the first validation that reaches that accuracy (for time-to-target runs).
    """
    check_int("steps", steps)
    check_int("eval_every", eval_every)
    _check_factor("divergence_factor", divergence_factor)
    if len(X) != len(y) or len(X) == 0:
        raise ValueError(f"X and y must be non-empty and of equal length, got {len(X)} and {len(y)}")
    if (X_val is None) != (y_val is None):
        raise ValueError("pass both X_val and y_val, or neither")
    if stop_at is not None and X_val is None:
        raise ValueError("stop_at needs validation data (X_val, y_val)")
    batch_size = len(X) if batch_size is None else batch_size
    check_int("batch_size", batch_size)
    if batch_size > len(X):
        raise ValueError(f"batch_size must be at most the number of examples ({len(X)}), got {batch_size}")
    if divergence_reference is not None and not divergence_reference > 0:
        raise ValueError(f"divergence_reference must be > 0 or None, got {divergence_reference!r}")
    if clip_norm is not None and not clip_norm > 0:
        raise ValueError(f"clip_norm must be > 0 or None, got {clip_norm!r}")
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    batches = _batches(len(X), batch_size, torch.Generator().manual_seed(seed))
    log = StepLog()
    elapsed = 0.0
    model.train()
    show = progress_enabled() if progress is None else progress
    for step in tqdm(range(1, steps + 1), desc=desc, disable=not show, leave=False):
        start = time.perf_counter()
        idx = next(batches)
        loss = loss_fn(model(X[idx]), y[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        norm = nn.utils.clip_grad_norm_(model.parameters(), clip_norm if clip_norm is not None else math.inf)
        log.lr.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        elapsed += time.perf_counter() - start
        log.loss.append(loss.item())
        log.grad_norm.append(norm.item())
        log.seconds.append(elapsed)
        reference = log.loss[0] if divergence_reference is None else divergence_reference
        if not math.isfinite(log.loss[-1]) or log.loss[-1] > divergence_factor * reference:
            log.diverged_at = step
            break
        if X_val is not None and (step % eval_every == 0 or step == steps):
            val_loss, val_acc = evaluate(model, X_val, y_val, loss_fn)
            log.val_step.append(step)
            log.val_loss.append(val_loss)
            log.val_acc.append(val_acc)
            if stop_at is not None and val_acc >= stop_at:
                break
    return log


@dataclass
class RangeTest:
    """Result of ``lr_range_test``: the learning rates tried, the raw and smoothed losses."""

    lrs: list[float]
    losses: list[float]
    smoothed: list[float]

    @property
    def lr_at_min(self) -> float:
        """The learning rate where the smoothed loss was lowest."""
        return self.lrs[int(np.argmin(self.smoothed))]

    @property
    def suggestion(self) -> float:
        """Smith's rule of thumb: a tenth of the learning rate at the minimum of the loss."""
        return self.lr_at_min / 10


def lr_range_test(
    model: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    *,
    make_optimizer: OptimizerFactory,
    lr_min: float = 1e-5,
    lr_max: float = 10.0,
    steps: int = 100,
    batch_size: int = 64,
    smoothing: float = 0.9,
    stop_factor: float = 4.0,
    seed: int = 0,
) -> RangeTest:
    """Raise the learning rate exponentially from ``lr_min`` to ``lr_max`` over ``steps`` mini-batches.

    The loss falls where the rate is useful and explodes where it is too large; the test stops once
    the smoothed loss passes ``stop_factor`` times its minimum (L. Smith, 2017). ``model`` is trained
    in place: pass a fresh copy.
    """
    if not 0 < lr_min < lr_max:
        raise ValueError(f"need 0 < lr_min < lr_max, got {lr_min} and {lr_max}")
    if not 0 <= smoothing < 1:
        raise ValueError(f"smoothing must be in [0, 1), got {smoothing}")
    check_int("steps", steps, minimum=2)
    _check_factor("stop_factor", stop_factor)
    optimizer = make_optimizer(list(model.parameters()), lr_min)
    growth = (lr_max / lr_min) ** (1 / (steps - 1))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: growth**i)
    batches = _batches(len(X), min(batch_size, len(X)), torch.Generator().manual_seed(seed))
    lrs, losses, smoothed = [], [], []
    average = 0.0
    for i in range(steps):
        idx = next(batches)
        loss = nn.functional.cross_entropy(model(X[idx]), y[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
        value = loss.item()
        if not math.isfinite(value):
            break
        average = smoothing * average + (1 - smoothing) * value
        losses.append(value)
        smoothed.append(average / (1 - smoothing ** (i + 1)))  # bias-corrected, as in Adam
        if smoothed[-1] > stop_factor * min(smoothed):
            break
    return RangeTest(lrs[: len(losses)], losses, smoothed)


def layer_grad_norms(model: nn.Module) -> dict[str, float]:
    """L2 norm of the gradient of every weight matrix or kernel (parameters with 2+ dimensions), in order."""
    norms = {name: p.grad.norm().item() for name, p in model.named_parameters() if p.dim() > 1 and p.grad is not None}
    if not norms:
        raise ValueError("the model has no weight gradients: call backward() first")
    return norms


def layer_output_stds(model: nn.Module, X: torch.Tensor, layer_type: type[nn.Module] = nn.Linear) -> list[float]:
    """Standard deviation of the output of every ``layer_type`` module in one forward pass of ``X``."""
    stds: list[float] = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: stds.append(out.detach().float().std().item()))
             for m in model.modules() if isinstance(m, layer_type)]
    if not hooks:
        raise ValueError(f"the model has no {layer_type.__name__} modules")
    try:
        with torch.no_grad():
            model(X)
    finally:
        for hook in hooks:
            hook.remove()
    return stds


def per_example_gradients(model: nn.Module, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The cross-entropy gradient of every example, flattened: shape (len(X), number of parameters)."""
    from torch.func import functional_call, grad, vmap

    params = {name: p.detach() for name, p in model.named_parameters()}

    def loss_of_one(p: dict, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(functional_call(model, p, (x[None],)), target[None])

    grads = vmap(grad(loss_of_one), in_dims=(None, 0, 0))(params, X, y)
    return torch.cat([g.reshape(len(X), -1) for g in grads.values()], dim=1)


def gradient_noise_scale(model: nn.Module, X: torch.Tensor, y: torch.Tensor) -> float:
    """The simple noise scale B = tr(Σ) / |G|² (McCandlish et al., 2018) from per-example gradients.

    Σ is the covariance of one example's gradient and G the mean gradient; both are estimated
    without bias from the examples given. Batches much smaller than B are dominated by noise (a
    larger batch helps almost linearly); batches much larger than B waste examples.
    """
    if len(X) < 2 or len(X) != len(y):
        raise ValueError(f"need at least 2 examples and one label each, got {len(X)} and {len(y)}")
    g = per_example_gradients(model, X, y).double()
    n = len(g)
    trace_cov = g.var(dim=0, unbiased=True).sum().item()
    mean_sq = g.mean(dim=0).pow(2).sum().item() - trace_cov / n  # E|mean|² = |G|² + tr(Σ)/n
    if mean_sq <= 0:
        return math.inf
    return trace_cov / mean_sq
