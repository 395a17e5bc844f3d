"""Attacks on a trained model and on its training data, for notebook 16.

FGSM (Goodfellow et al., 2015) and PGD (Madry et al., 2018) under an L∞ budget, a backdoor trigger stamped on
images, and the spectral-signature score that finds poisoned training examples (Tran et al., 2018). Each is a
few lines; the tests check the properties that make them what they are (FGSM raises the loss, PGD stays in
its ball, the score ranks planted examples first).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn


def _check_budget(epsilon: float, clip: tuple[float, float]) -> None:
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or epsilon < 0:
        raise ValueError(f"epsilon must be a number >= 0, got {epsilon!r}")
    if len(clip) != 2 or not clip[0] < clip[1]:
        raise ValueError(f"clip must be a (low, high) pair with low < high, got {clip!r}")


def loss_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Gradient of the mean cross-entropy with respect to the inputs (the weights' gradients untouched)."""
    x = x.detach().clone().requires_grad_(True)
    loss = nn.functional.cross_entropy(model(x), y)
    (grad,) = torch.autograd.grad(loss, x)
    return grad


def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epsilon: float, *,
         clip: tuple[float, float] = (0.0, 1.0)) -> torch.Tensor:
    """Fast gradient sign method: one step of size ``epsilon`` along the sign of the loss gradient, then back
    into the valid input range ``clip``. Uses ``model`` in whatever mode the caller set."""
    _check_budget(epsilon, clip)
    return (x + epsilon * loss_gradient(model, x, y).sign()).clamp(*clip).detach()


def pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epsilon: float, *, steps: int = 10,
        step_size: float | None = None, clip: tuple[float, float] = (0.0, 1.0), random_start: bool = True,
        generator: torch.Generator | None = None) -> torch.Tensor:
    """Projected gradient descent on the loss: ``steps`` signed-gradient steps of ``step_size`` (by default
    2.5 * epsilon / steps), each projected back into the L∞ ball of radius ``epsilon`` around ``x`` and into
    ``clip``. Starts from a uniform random point of the ball unless ``random_start`` is False."""
    _check_budget(epsilon, clip)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an int >= 1, got {steps!r}")
    step_size = 2.5 * epsilon / steps if step_size is None else step_size
    x = x.detach()
    adversarial = x
    if random_start:
        adversarial = x + (torch.rand(x.shape, generator=generator) * 2 - 1) * epsilon
    for _ in range(steps):
        adversarial = adversarial.clamp(*clip)
        stepped = adversarial + step_size * loss_gradient(model, adversarial, y).sign()
        adversarial = x + (stepped - x).clamp(-epsilon, epsilon)
    return adversarial.clamp(*clip).detach()


def add_trigger(x: torch.Tensor, *, image_shape: Sequence[int] = (8, 8), size: int = 2,
                value: float = 1.0) -> torch.Tensor:
    """Copies of the flat images ``x`` with a ``size`` x ``size`` square of ``value`` in the bottom-right
    corner."""
    height, width = image_shape
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= min(height, width):
        raise ValueError(f"size must be an int between 1 and {min(height, width)}, got {size!r}")
    if x.ndim != 2 or x.shape[1] != height * width:
        raise ValueError(f"x must be flat images of shape (n, {height * width}), got {tuple(x.shape)}")
    images = x.clone().reshape(-1, height, width)
    images[:, height - size:, width - size:] = value
    return images.reshape(len(x), -1)


def spectral_signature_scores(features: np.ndarray) -> np.ndarray:
    """Outlier score of each row: its squared projection on the top singular vector of the centred features.

    Poisoned examples relabelled into one class share a direction that the class's clean examples lack, so
    within that class they score highest (Tran et al., 2018).
    """
    features = np.asarray(features, dtype=float)
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"features must be a 2-D array with at least 2 rows, got shape {features.shape}")
    centred = features - features.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return (centred @ vt[0]) ** 2
