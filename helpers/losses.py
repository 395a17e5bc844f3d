"""Focal loss for binary classification (Lin et al., 2017), written from scratch in PyTorch.

The lesson of the imbalance notebook: ``FL = -α_t · (1 - p_t)^γ · log(p_t)``, where ``p_t`` is the
predicted probability of the true class. With ``γ = 0`` and no ``α`` it is binary cross-entropy;
``γ > 0`` shrinks the loss of examples the model already gets right, so the many easy negatives of
an imbalanced data set stop dominating the gradient.
"""

from __future__ import annotations

import numbers

import torch
import torch.nn.functional as F

REDUCTIONS = ("mean", "sum", "none")
LOGIT_LIMIT = 100.0  # logits are clipped here: far beyond a trained model's, and ±inf no longer gives NaN


def _check_tensors(logits: torch.Tensor, targets: torch.Tensor) -> None:
    for name, value in (("logits", logits), ("targets", targets)):
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if not logits.is_floating_point():
        raise TypeError(f"logits must be a floating-point tensor, got dtype {logits.dtype}")
    if logits.shape != targets.shape:
        raise ValueError(
            f"logits and targets must have the same shape, got {tuple(logits.shape)} and "
            f"{tuple(targets.shape)} (squeeze a trailing dimension of size 1?)"
        )
    if not ((targets == 0) | (targets == 1)).all():
        raise ValueError("targets must hold only 0 and 1 (1 = positive class)")


def _check_options(gamma: float, alpha: float | None, reduction: str) -> None:
    if isinstance(gamma, bool) or not isinstance(gamma, numbers.Real) or not gamma >= 0:
        raise ValueError(f"gamma must be a real number >= 0, got {gamma!r}")
    if alpha is not None and (
        isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not 0 <= alpha <= 1
    ):
        raise ValueError(f"alpha must be None or a number in [0, 1] (weight of the positive class), got {alpha!r}")
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")


def binary_focal_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    *,
    gamma: float = 2.0,
    alpha: float | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """Binary focal loss ``-α_t (1 - p_t)^γ log p_t`` computed from raw logits.

    ``targets`` hold 0/1 labels (any dtype) with the same shape as ``logits``. ``alpha`` is the
    weight of the positive class (negatives get ``1 - alpha``); ``None`` weights both alike.
    ``reduction`` is ``"mean"``, ``"sum"`` or ``"none"`` (per-element losses). Stable for any logit:
    ``-log p_t`` comes from ``binary_cross_entropy_with_logits`` and ``log(1 - p_t)`` from
    ``logsigmoid``, never from a probability that has rounded to 0 or 1. Logits are clipped to
    ±``LOGIT_LIMIT`` (σ(100) is 1 in float64), so ±inf gives a finite loss, not NaN.
    """
    _check_tensors(logits, targets)
    _check_options(gamma, alpha, reduction)
    targets = targets.to(logits.dtype)
    logits = logits.clamp(-LOGIT_LIMIT, LOGIT_LIMIT)  # ±inf would give inf - inf = NaN inside the BCE
    loss = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")  # -log p_t
    if gamma != 0:
        # 1 - p_t = σ(-z) for a positive and σ(z) for a negative: σ(-s·z) with s = ±1.
        signed = (2 * targets - 1) * logits
        loss = torch.exp(gamma * F.logsigmoid(-signed)) * loss
    if alpha is not None:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss
