"""Continual learning, the building blocks: a reservoir replay buffer, elastic weight consolidation
(EWC, Kirkpatrick et al., 2017), a training loop that mixes both in, and the forgetting metrics.

Written by hand because the methods are the lesson and each is a few lines: the tests check the
reservoir's uniformity, the Fisher diagonal against a loop over single examples, the gradient of
the EWC penalty against its formula, and that both remedies keep a first task alive while a
second, conflicting one is learned.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from helpers.validation import check_int


class ReplayBuffer:
    """A fixed-size memory of past examples filled by reservoir sampling (Vitter's algorithm R).

    After t examples have streamed past, every one of them is in the buffer with the same
    probability capacity / t, whatever batch it came in: a uniform sample of the whole stream,
    kept without knowing its length in advance.
    """

    def __init__(self, capacity: int, *, seed: int = 0) -> None:
        check_int("capacity", capacity, 1)
        self.capacity = capacity
        self.seen = 0
        self._rng = np.random.default_rng(seed)
        self._X: torch.Tensor | None = None
        self._y: torch.Tensor | None = None

    def __len__(self) -> int:
        return min(self.seen, self.capacity)

    def add(self, X: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor) -> None:
        """Offer a batch: the t-th example seen is kept with probability capacity / t (always while the
        buffer fills), in a slot drawn at random, evicting the example there."""
        X, y = torch.as_tensor(X), torch.as_tensor(y)
        if len(X) != len(y) or len(X) == 0:
            raise ValueError(f"X and y must be non-empty and of equal length, got {len(X)} and {len(y)}")
        if self._X is None:
            self._X = torch.zeros((self.capacity, *X.shape[1:]), dtype=X.dtype)
            self._y = torch.zeros((self.capacity, *y.shape[1:]), dtype=y.dtype)
        elif X.shape[1:] != self._X.shape[1:]:
            raise ValueError(f"X rows must have shape {tuple(self._X.shape[1:])}, got {tuple(X.shape[1:])}")
        t = self.seen + np.arange(len(X))  # each example's position in the stream
        draws = np.floor(self._rng.random(len(X)) * (t + 1)).astype(int)
        slots = np.where(t < self.capacity, t, draws)
        kept = {slot: i for i, slot in enumerate(slots.tolist()) if slot < self.capacity}  # later ones win
        index = torch.tensor(list(kept), dtype=torch.long)
        source = torch.tensor(list(kept.values()), dtype=torch.long)
        self._X[index], self._y[index] = X[source].to(self._X.dtype), y[source].to(self._y.dtype)
        self.seen += len(X)

    def data(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Everything in the buffer (copies), in slot order."""
        if self._X is None:
            raise ValueError("the buffer is empty")
        return self._X[: len(self)].clone(), self._y[: len(self)].clone()

    def sample(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` distinct examples drawn uniformly from the buffer."""
        check_int("n", n, 1)
        if n > len(self):
            raise ValueError(f"cannot sample {n} examples from a buffer holding {len(self)}")
        index = torch.from_numpy(self._rng.choice(len(self), size=n, replace=False))
        return self._X[index].clone(), self._y[index].clone()


def fisher_diagonal(
    model: nn.Module, X: torch.Tensor, y: torch.Tensor, *, chunk_size: int = 256
) -> dict[str, torch.Tensor]:
    """Diagonal of the empirical Fisher information: the mean over examples of the squared gradient
    of log p(y_i | x_i) (the observed labels) for every parameter that requires a gradient.

    Per-example gradients come from ``torch.func`` (vmap of grad, ``chunk_size`` examples at a
    time), not from a loop. The model is evaluated in eval mode (no dropout, running batch-norm
    statistics) and its mode restored afterwards.
    """
    from torch.func import functional_call, grad, vmap

    if len(X) != len(y) or len(X) == 0:
        raise ValueError(f"X and y must be non-empty and of equal length, got {len(X)} and {len(y)}")
    check_int("chunk_size", chunk_size, 1)
    params = {name: p.detach() for name, p in model.named_parameters() if p.requires_grad}
    buffers = dict(model.named_buffers())

    def nll_of_one(p: dict[str, torch.Tensor], x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = functional_call(model, {**p, **buffers}, (x[None],))
        return nn.functional.cross_entropy(logits, target[None])

    was_training = model.training
    model.eval()
    try:
        grads = vmap(grad(nll_of_one), in_dims=(None, 0, 0), chunk_size=chunk_size)(params, X, y)
    finally:
        model.train(was_training)
    return {name: g.pow(2).mean(dim=0) for name, g in grads.items()}


class EWC:
    """Elastic weight consolidation: a quadratic pull towards the parameters θ* the model has now,
    (strength / 2) · Σ F_i (θ_i − θ*_i)², stiff where the Fisher F says the old task is sensitive."""

    def __init__(self, model: nn.Module, fisher: dict[str, torch.Tensor], *, strength: float) -> None:
        if not strength >= 0:
            raise ValueError(f"strength must be a number >= 0, got {strength!r}")
        if not fisher:
            raise ValueError("fisher must hold at least one parameter's diagonal")
        params = dict(model.named_parameters())
        for name, f in fisher.items():
            if name not in params or f.shape != params[name].shape:
                raise ValueError(f"fisher entry {name!r} matches no parameter of the model of the same shape")
        self.strength = strength
        self.params = {name: params[name] for name in fisher}
        self.fisher = {name: f.detach().clone() for name, f in fisher.items()}
        self.anchor = {name: p.detach().clone() for name, p in self.params.items()}

    def penalty(self) -> torch.Tensor:
        """The EWC term for the model's current parameters (differentiable)."""
        terms = [(self.fisher[name] * (p - self.anchor[name]) ** 2).sum() for name, p in self.params.items()]
        return self.strength / 2 * torch.stack(terms).sum()


def train_on(
    model: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int,
    lr: float,
    batch_size: int = 64,
    penalty: Callable[[], torch.Tensor] | None = None,
    replay: ReplayBuffer | None = None,
    replay_fraction: float = 0.5,
    seed: int = 0,
) -> list[float]:
    """Train a classifier with Adam and cross-entropy; returns the mean objective of every epoch.

    Each mini-batch of ``batch_size`` new examples is joined by examples drawn from ``replay``
    (when given and not empty) so that they make up ``replay_fraction`` of the combined batch:
    the number of steps per epoch does not depend on the replay. ``penalty`` (an ``EWC.penalty``,
    say) is added to every step's loss. The buffer is not updated here: add the task's data after
    training on it. The batch order comes from ``seed``.
    """
    check_int("epochs", epochs, 1)
    check_int("batch_size", batch_size, 1)
    if len(X) != len(y) or len(X) == 0:
        raise ValueError(f"X and y must be non-empty and of equal length, got {len(X)} and {len(y)}")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr!r}")
    if not 0 <= replay_fraction < 1:
        raise ValueError(f"replay_fraction must lie in [0, 1), got {replay_fraction!r}")
    n_replay = round(batch_size * replay_fraction / (1 - replay_fraction))
    n_replay = 0 if replay is None else min(len(replay), n_replay)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    losses = []
    for _ in range(epochs):
        epoch_losses = []
        for index in torch.randperm(len(X), generator=generator).split(batch_size):
            inputs, targets = X[index], y[index]
            if n_replay:
                old_inputs, old_targets = replay.sample(n_replay)
                inputs = torch.cat([inputs, old_inputs.to(inputs.dtype)])
                targets = torch.cat([targets, old_targets.to(targets.dtype)])
            loss = nn.functional.cross_entropy(model(inputs), targets)
            if penalty is not None:
                loss = loss + penalty()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            epoch_losses.append(loss.item())
        losses.append(float(np.mean(epoch_losses)))
    return losses


def _check_accuracy_matrix(acc_matrix: np.ndarray) -> np.ndarray:
    R = np.asarray(acc_matrix, dtype=float)
    if R.ndim != 2 or R.shape[0] != R.shape[1] or R.shape[0] < 2:
        raise ValueError(f"acc_matrix must be square (tasks x tasks), at least 2 x 2, got shape {R.shape}")
    return R


def forgetting(acc_matrix: np.ndarray) -> float:
    """Average forgetting (Chaudhry et al., 2018): for every task but the last, the best accuracy it
    ever had before the final task minus its accuracy at the end, averaged.

    ``acc_matrix[i, j]`` is the accuracy on task j after training on task i (tasks in order).
    """
    R = _check_accuracy_matrix(acc_matrix)
    last = len(R) - 1
    return float(np.mean(R[:last, :last].max(axis=0) - R[last, :last]))


def backward_transfer(acc_matrix: np.ndarray) -> float:
    """Backward transfer (Lopez-Paz & Ranzato, 2017): mean over earlier tasks of the final accuracy
    minus the accuracy just after learning that task. Negative means forgetting."""
    R = _check_accuracy_matrix(acc_matrix)
    last = len(R) - 1
    return float(np.mean(R[last, :last] - np.diag(R)[:last]))
