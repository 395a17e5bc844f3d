"""GANs that can be measured: a ring of Gaussians and its mode coverage, the training step with
logits, separate optimizers and detached fakes, minibatch standard deviation against mode
collapse, and several independent networks trained side by side in one batched matrix product.

Training several seeds at once is what makes claims about GANs affordable on a CPU: GAN training
is noisy, so a claim rests on an average over seeds, and ``stack_members`` runs K independent
networks for little more than the price of one. The tests check that the stacked networks compute
and learn exactly what the members would alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from helpers.validation import check_int, check_positive

Sampler = Callable[[tuple[int, ...]], torch.Tensor]


# --- data: a ring of Gaussians -------------------------------------------------------------------


@dataclass(frozen=True)
class Ring:
    """A mixture of ``n_modes`` equal Gaussians with standard deviation ``std`` on a circle."""

    n_modes: int = 8
    radius: float = 2.0
    std: float = 0.05

    def __post_init__(self) -> None:
        check_int("n_modes", self.n_modes, 2)
        check_positive("radius", self.radius)
        check_positive("std", self.std)

    @property
    def centers(self) -> np.ndarray:
        """The modes' centres, shape (n_modes, 2), the first on the positive x axis."""
        angles = 2 * math.pi * np.arange(self.n_modes) / self.n_modes
        return (self.radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)).astype(np.float32)

    def sample(self, shape: tuple[int, ...], generator: torch.Generator | None = None) -> torch.Tensor:
        """Samples of shape ``(*shape, 2)``: a mode chosen uniformly, plus Gaussian noise."""
        if any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in shape) or not shape:
            raise ValueError(f"shape must be a non-empty tuple of ints >= 1, got {shape!r}")
        which = torch.randint(0, self.n_modes, shape, generator=generator)
        noise = torch.randn(*shape, 2, generator=generator)
        return torch.from_numpy(self.centers)[which] + self.std * noise


@dataclass(frozen=True)
class Coverage:
    """How well samples cover a ring: modes hit, share of high-quality samples, counts per mode."""

    modes: int
    quality: float
    counts: np.ndarray


def mode_coverage(samples: np.ndarray | torch.Tensor, ring: Ring, *, n_sigma: float = 3.0,
                  min_share: float = 0.2) -> Coverage:
    """Score samples of shape (N, 2) against ``ring``.

    A sample is of high quality when it lies within ``n_sigma`` standard deviations of its nearest
    mode. A mode is hit when it holds at least ``min_share`` of its fair share (N / n_modes) of
    high-quality samples, so that a few stray points do not count as covering a mode.
    """
    if isinstance(samples, torch.Tensor):
        samples = samples.detach().cpu().numpy()
    samples = np.asarray(samples, dtype=float)
    if samples.ndim != 2 or samples.shape[1] != 2 or len(samples) == 0:
        raise ValueError(f"samples must have shape (N, 2) with N >= 1, got {samples.shape}")
    check_positive("n_sigma", n_sigma)
    if not 0 < min_share <= 1:
        raise ValueError(f"min_share must be in (0, 1], got {min_share!r}")
    distances = np.linalg.norm(samples[:, None, :] - ring.centers[None].astype(float), axis=2)
    nearest = distances.argmin(axis=1)
    good = distances.min(axis=1) < n_sigma * ring.std
    counts = np.bincount(nearest[good], minlength=ring.n_modes)
    hit = int((counts >= min_share * len(samples) / ring.n_modes).sum())
    return Coverage(modes=hit, quality=float(good.mean()), counts=counts)


# --- K independent networks in one batched matrix product ----------------------------------------


class StackedLinear(nn.Module):
    """K independent linear layers: input (K, B, in) -> output (K, B, out), one ``baddbmm``."""

    def __init__(self, linears: Sequence[nn.Linear]):
        super().__init__()
        if len(linears) == 0 or not all(isinstance(layer, nn.Linear) for layer in linears):
            raise ValueError("linears must be a non-empty sequence of nn.Linear")
        shapes = {tuple(layer.weight.shape) for layer in linears}
        if len(shapes) != 1 or any(layer.bias is None for layer in linears):
            raise ValueError("linears must all have the same shape and a bias")
        self.weight = nn.Parameter(torch.stack([layer.weight.detach().T for layer in linears]).contiguous())
        self.bias = nn.Parameter(torch.stack([layer.bias.detach()[None] for layer in linears]).contiguous())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[0] != self.weight.shape[0]:
            n_members = self.weight.shape[0]
            raise ValueError(f"input must have shape (K={n_members}, batch, features), got {tuple(x.shape)}")
        return torch.baddbmm(self.bias, x, self.weight)


def stack_members(members: Sequence[nn.Sequential]) -> nn.Sequential:
    """One network that runs K ``nn.Sequential`` members of identical architecture side by side.

    Each ``nn.Linear`` becomes a ``StackedLinear`` holding the K members' weights; the other layers
    (activations, ``MinibatchStd``) must hold no parameters and are shared. The result maps
    (K, B, in) to (K, B, out); member k sees only slice k, and its weights get only its own
    gradients, so one optimizer over the stacked parameters is K independent optimizers of an
    elementwise kind (Adam, SGD).
    """
    if len(members) == 0 or not all(isinstance(m, nn.Sequential) for m in members):
        raise ValueError("members must be a non-empty sequence of nn.Sequential")
    if len({len(m) for m in members}) != 1:
        raise ValueError("members must have the same number of layers")
    layers: list[nn.Module] = []
    for position, first in enumerate(members[0]):
        if isinstance(first, nn.Linear):
            layers.append(StackedLinear([m[position] for m in members]))
        elif any(True for _ in first.parameters()):
            name = type(first).__name__
            raise ValueError(f"layer {position} ({name}) has parameters; only nn.Linear can be stacked")
        else:
            layers.append(first)
    return nn.Sequential(*layers)


def unstack_member(stacked: nn.Sequential, k: int) -> nn.Sequential:
    """Member ``k`` of a network built by ``stack_members``, as a plain ``nn.Sequential`` (a copy)."""
    layers: list[nn.Module] = []
    for layer in stacked:
        if isinstance(layer, StackedLinear):
            n_members = layer.weight.shape[0]
            if not 0 <= k < n_members:
                raise ValueError(f"k must be in 0 .. {n_members - 1}, got {k}")
            linear = nn.Linear(layer.weight.shape[1], layer.weight.shape[2])
            with torch.no_grad():
                linear.weight.copy_(layer.weight[k].T)
                linear.bias.copy_(layer.bias[k, 0])
            layers.append(linear)
        else:
            layers.append(layer)
    return nn.Sequential(*layers)


def seeded_members(build: Callable[[], nn.Sequential], seeds: Sequence[int]) -> nn.Sequential:
    """Build one member per seed (``torch.manual_seed(seed)`` before each ``build()``) and stack them."""
    if len(seeds) == 0:
        raise ValueError("seeds must be non-empty")
    members = []
    for seed in seeds:
        torch.manual_seed(seed)
        members.append(build())
    return stack_members(members)


class MinibatchStd(nn.Module):
    """Append the minibatch's average standard deviation as one more feature (Karras et al., 2018).

    Input (..., B, F) -> (..., B, F + 1). A discriminator that sees how varied its batch is can
    reject a generator that puts every sample in the same place: the cheapest form of minibatch
    discrimination (Salimans et al., 2016). Needs B >= 2.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 2 or x.shape[-2] < 2:
            raise ValueError(f"input must have shape (..., batch >= 2, features), got {tuple(x.shape)}")
        spread = x.std(dim=-2, keepdim=True).mean(dim=-1, keepdim=True)
        return torch.cat([x, spread.expand(*x.shape[:-1], 1)], dim=-1)


# --- the training step ---------------------------------------------------------------------------


def discriminator_step(generator: nn.Module, discriminator: nn.Module, opt_d: torch.optim.Optimizer,
                       real: torch.Tensor, z: torch.Tensor) -> tuple[float, torch.Tensor]:
    """One update of D on real samples (label 1) and generated ones (label 0); returns (loss, fakes).

    D outputs logits and the loss is ``BCEWithLogitsLoss`` (the sigmoid inside the loss, computed
    stably). The fakes are detached, so this step neither computes nor leaves gradients in G.
    """
    bce = nn.BCEWithLogitsLoss()
    fake = generator(z)
    real_logits = discriminator(real)
    fake_logits = discriminator(fake.detach())
    loss = bce(real_logits, torch.ones_like(real_logits)) + bce(fake_logits, torch.zeros_like(fake_logits))
    opt_d.zero_grad(set_to_none=True)
    loss.backward()
    opt_d.step()
    return loss.item(), fake


def generator_step(discriminator: nn.Module, opt_g: torch.optim.Optimizer, fake: torch.Tensor) -> float:
    """One update of G through the (just updated) D with the non-saturating loss -log D(G(z)).

    ``fake`` must still carry G's graph. D's parameters receive gradients too, but ``opt_g`` only
    steps G's parameters, and the next ``discriminator_step`` clears D's.
    """
    bce = nn.BCEWithLogitsLoss()
    logits = discriminator(fake)
    loss = bce(logits, torch.ones_like(logits))
    opt_g.zero_grad(set_to_none=True)
    loss.backward()
    opt_g.step()
    return loss.item()


def gan_step(generator: nn.Module, discriminator: nn.Module, opt_g: torch.optim.Optimizer,
             opt_d: torch.optim.Optimizer, real: torch.Tensor, z: torch.Tensor) -> tuple[float, float]:
    """A discriminator step, then a generator step on the same fakes; returns (d_loss, g_loss)."""
    d_loss, fake = discriminator_step(generator, discriminator, opt_d, real, z)
    return d_loss, generator_step(discriminator, opt_g, fake)


def sliced_wasserstein(a: np.ndarray, b: np.ndarray, *, n_projections: int = 64, seed: int = 0) -> float:
    """Sliced Wasserstein-1 distance between two equal-size samples of shape (N, d).

    The average, over random unit directions, of the 1-D Wasserstein distance between the two
    projected samples (mean absolute difference of the sorted projections).
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.ndim != 2 or a.shape != b.shape or len(a) == 0:
        raise ValueError(f"a and b must be non-empty 2-D arrays of one shape, got {a.shape} and {b.shape}")
    check_int("n_projections", n_projections, 1)
    directions = np.random.default_rng(seed).standard_normal((a.shape[1], n_projections))
    directions /= np.linalg.norm(directions, axis=0, keepdims=True)
    return float(np.abs(np.sort(a @ directions, axis=0) - np.sort(b @ directions, axis=0)).mean())
