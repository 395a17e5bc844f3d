"""Image augmentation on batches of small grayscale images, in PyTorch, and mixup.

Every random draw comes from an explicit ``torch.Generator``, so a pipeline is reproducible when
seeded and different at every call otherwise. Images are tensors of shape (batch, height, width)
with values in [0, 1]; flat inputs (batch, height * width) are accepted and returned flat.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F


def _as_images(batch: torch.Tensor) -> tuple[torch.Tensor, bool]:
    if not isinstance(batch, torch.Tensor) or not batch.is_floating_point():
        raise TypeError("batch must be a floating-point torch tensor")
    if batch.dim() == 2:
        side = math.isqrt(batch.shape[1])
        if side * side != batch.shape[1]:
            raise ValueError(f"flat images must have a square number of pixels, got {batch.shape[1]}")
        return batch.view(-1, side, side), True
    if batch.dim() == 3:
        return batch, False
    raise ValueError(f"batch must have shape (batch, h, w) or (batch, h*w), got {tuple(batch.shape)}")


@dataclass(frozen=True)
class Augmenter:
    """A random affine transform (rotation, shift, zoom) plus a brightness change, per image.

    ``max_rotation`` is in degrees, ``max_shift`` in pixels, ``zoom`` and ``brightness`` are
    (low, high) ranges of factors; ``flip_probability`` flips images left-right (which changes
    the label of most digits: it is here to show that harm, not as a default).
    """

    max_rotation: float = 0.0
    max_shift: float = 0.0
    zoom: tuple[float, float] = (1.0, 1.0)
    brightness: tuple[float, float] = (1.0, 1.0)
    flip_probability: float = 0.0

    def __post_init__(self) -> None:
        if self.max_rotation < 0 or self.max_shift < 0:
            raise ValueError("max_rotation and max_shift must be >= 0")
        for name in ("zoom", "brightness"):
            low, high = getattr(self, name)
            if not 0 < low <= high:
                raise ValueError(f"{name} must be a range (low, high) with 0 < low <= high, got {(low, high)}")
        if not 0 <= self.flip_probability <= 1:
            raise ValueError(f"flip_probability must be in [0, 1], got {self.flip_probability}")

    def __call__(self, batch: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        images, flat = _as_images(batch)
        n, height, width = images.shape

        def uniform(low: float, high: float) -> torch.Tensor:
            return low + (high - low) * torch.rand(n, generator=generator)

        angle = torch.deg2rad(uniform(-self.max_rotation, self.max_rotation))
        scale = 1 / uniform(*self.zoom)  # sampling coordinates shrink when the image grows
        flip = torch.where(torch.rand(n, generator=generator) < self.flip_probability, -1.0, 1.0)
        shift_x = uniform(-self.max_shift, self.max_shift) * 2 / width  # pixels to [-1, 1] grid units
        shift_y = uniform(-self.max_shift, self.max_shift) * 2 / height
        cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
        theta = torch.stack([torch.stack([cos * flip, -sin, shift_x], dim=1),
                             torch.stack([sin * flip, cos, shift_y], dim=1)], dim=1)
        grid = F.affine_grid(theta, (n, 1, height, width), align_corners=False)
        moved = F.grid_sample(images[:, None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)[:, 0]
        out = (moved * uniform(*self.brightness)[:, None, None]).clamp(0.0, 1.0)
        return out.reshape(n, -1) if flat else out


def mixup(
    X: torch.Tensor, y: torch.Tensor, n_classes: int, *, alpha: float = 0.2, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixup (Zhang et al., 2018): convex combinations of random pairs of examples and of their
    one-hot labels, with weights drawn from Beta(alpha, alpha). Returns inputs and soft labels."""
    if alpha <= 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    if len(X) != len(y):
        raise ValueError(f"X and y must have the same length, got {len(X)} and {len(y)}")
    # torch has no seeded Beta sampler: draw a seed from the generator and let NumPy sample.
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
    lam = torch.from_numpy(np.random.default_rng(seed).beta(alpha, alpha, len(X))).float()
    partner = torch.randperm(len(X), generator=generator)
    soft = F.one_hot(y, n_classes).float()
    shape = (-1,) + (1,) * (X.dim() - 1)
    return lam.view(shape) * X + (1 - lam.view(shape)) * X[partner], lam[:, None] * soft + (1 - lam[:, None]) * soft[partner]

