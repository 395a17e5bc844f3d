"""A small, readable PyTorch training loop: mini-batches, validation, history, early stopping."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
from torch import nn
from tqdm.auto import tqdm

from helpers.config import progress_enabled

Penalty = Callable[[nn.Module], torch.Tensor]
Augment = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class History:
    """Per-epoch metrics of one ``fit`` call. The accuracy lists stay empty for regression targets."""

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    best_epoch: int | None = None
    seconds: float = 0.0
    epoch_end_seconds: list[float] = field(default_factory=list)

    @property
    def epochs_run(self) -> int:
        return len(self.train_loss)

    def as_dict(self) -> dict:
        return asdict(self)


class EarlyStopping:
    """Stop when the validation loss has not improved by ``min_delta`` for ``patience`` epochs.

    With ``restore_best_weights`` the model ends with the weights of its best epoch, not its last.
    """

    def __init__(self, patience: int = 10, *, min_delta: float = 0.0, restore_best_weights: bool = True):
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            raise ValueError(f"patience must be an int >= 1, got {patience!r}")
        if min_delta < 0:
            raise ValueError(f"min_delta must be >= 0, got {min_delta}")
        self.patience = patience
        self.min_delta = min_delta
        self.restore_best_weights = restore_best_weights
        self.best_loss = math.inf
        self.best_epoch: int | None = None
        self.best_state: dict | None = None
        self._bad_epochs = 0

    def update(self, epoch: int, val_loss: float, model: nn.Module) -> bool:
        """Record one epoch's validation loss; return True when training should stop."""
        if val_loss < self.best_loss - self.min_delta:
            self.best_loss, self.best_epoch, self._bad_epochs = val_loss, epoch, 0
            if self.restore_best_weights:
                self.best_state = copy.deepcopy(model.state_dict())
            return False
        self._bad_epochs += 1
        return self._bad_epochs >= self.patience

    def restore(self, model: nn.Module) -> None:
        if self.restore_best_weights and self.best_state is not None:
            model.load_state_dict(self.best_state)


def _is_classification(y: torch.Tensor) -> bool:
    return not torch.is_floating_point(y)


@torch.inference_mode()
def evaluate(model: nn.Module, X: torch.Tensor, y: torch.Tensor, loss_fn: nn.Module) -> tuple[float, float | None]:
    """Mean loss and accuracy (None for regression) of ``model`` on ``(X, y)``, in eval mode."""
    was_training = model.training
    model.eval()
    output = model(X)
    loss = loss_fn(output, y).item()
    accuracy = (output.argmax(dim=1) == y).float().mean().item() if _is_classification(y) else None
    model.train(was_training)
    return loss, accuracy


def _check_inputs(X: torch.Tensor, y: torch.Tensor, name: str) -> None:
    if not isinstance(X, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise TypeError(f"X_{name} and y_{name} must be torch tensors")
    if len(X) != len(y) or len(X) == 0:
        raise ValueError(f"X_{name} and y_{name} must be non-empty and of equal length, got {len(X)} and {len(y)}")


def fit(
    model: nn.Module,
    X_train: torch.Tensor,
    y_train: torch.Tensor,
    *,
    epochs: int,
    optimizer: torch.optim.Optimizer | None = None,
    loss_fn: nn.Module | None = None,
    batch_size: int | None = None,
    X_val: torch.Tensor | None = None,
    y_val: torch.Tensor | None = None,
    penalty: Penalty | None = None,
    augment: Augment | None = None,
    early_stopping: EarlyStopping | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    progress: bool | None = None,
    desc: str = "training",
) -> History:
    """Train ``model`` on tensors and return its ``History``.

    - ``batch_size=None`` uses the whole training set per step (full-batch).
    - ``penalty(model)`` is added to each mini-batch loss (an explicit L1 term, say); the recorded
      train loss is the data loss only, so runs with and without a penalty stay comparable.
    - ``augment(X_batch)`` transforms each training batch (fresh randomness every step).
    - ``early_stopping`` needs validation data; it restores the best weights when asked to.
    - ``scheduler`` is stepped once per epoch (build it in epochs: ``T_max=epochs``).
    - ``history.epoch_end_seconds`` holds the wall-clock time at the end of each epoch, so the
      time to the best epoch can be read off exactly.
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be an int >= 1, got {epochs!r}")
    _check_inputs(X_train, y_train, "train")
    has_val = X_val is not None and y_val is not None
    if (X_val is None) != (y_val is None):
        raise ValueError("pass both X_val and y_val, or neither")
    if has_val:
        _check_inputs(X_val, y_val, "val")
    if early_stopping is not None and not has_val:
        raise ValueError("early_stopping needs validation data (X_val, y_val): without it nothing is monitored")
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise ValueError(f"batch_size must be an int >= 1 or None, got {batch_size!r}")

    classification = _is_classification(y_train)
    loss_fn = loss_fn or (nn.CrossEntropyLoss() if classification else nn.MSELoss())
    optimizer = optimizer or torch.optim.AdamW(model.parameters(), lr=1e-3)
    n = len(X_train)
    batch_size = batch_size or n
    history = History()
    show = progress_enabled() if progress is None else progress
    start = time.perf_counter()

    for epoch in tqdm(range(epochs), desc=desc, disable=not show, leave=False):
        model.train()
        order = torch.randperm(n, device=X_train.device)
        total_loss, correct = 0.0, 0
        for begin in range(0, n, batch_size):
            idx = order[begin : begin + batch_size]
            xb, yb = X_train[idx], y_train[idx]
            if augment is not None:
                xb = augment(xb)
            output = model(xb)
            data_loss = loss_fn(output, yb)
            loss = data_loss + penalty(model) if penalty is not None else data_loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total_loss += data_loss.item() * len(idx)  # .item(): keep a float, not the graph
            if classification:
                correct += (output.argmax(dim=1) == yb).sum().item()
        if scheduler is not None:
            scheduler.step()
        history.train_loss.append(total_loss / n)
        if classification:
            history.train_acc.append(correct / n)
        if has_val:
            val_loss, val_acc = evaluate(model, X_val, y_val, loss_fn)
            history.val_loss.append(val_loss)
            if val_acc is not None:
                history.val_acc.append(val_acc)
        history.epoch_end_seconds.append(time.perf_counter() - start)
        if has_val and early_stopping is not None and early_stopping.update(epoch, history.val_loss[-1], model):
            break

    if early_stopping is not None:
        early_stopping.restore(model)
        history.best_epoch = early_stopping.best_epoch
    elif history.val_loss:
        history.best_epoch = min(range(len(history.val_loss)), key=history.val_loss.__getitem__)
    history.seconds = time.perf_counter() - start
    return history
