"""Checkpoints that resume training exactly: weights, optimizer, scheduler, epoch, every random
number generator, and the state of the generator that orders the data."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn


def rng_state() -> dict[str, Any]:
    """The state of Python's, NumPy's and PyTorch's global generators (and CUDA's, when present)."""
    kind, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached_gaussian)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what ``rng_state`` captured."""
    missing = {"python", "numpy", "torch"} - set(state)
    if missing:
        raise ValueError(f"state lacks the generators {sorted(missing)}")
    random.setstate(state["python"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(
    path: str | Path,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    epoch: int,
    scheduler: Any = None,
    data_generator: torch.Generator | None = None,
) -> Path:
    """Write everything needed to continue training after ``epoch`` (the number of epochs done).

    The file is written to a temporary name and renamed, so a crash while saving never leaves a
    truncated checkpoint in place of the last good one.
    """
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        raise ValueError(f"epoch must be an int >= 0, got {epoch!r}")
    path = Path(path)
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "epoch": epoch,
        "rng": rng_state(),
        "data_generator": data_generator.get_state() if data_generator is not None else None,
    }
    partial = path.with_name(path.name + ".partial")
    torch.save(state, partial)
    os.replace(partial, path)
    return path


def load_checkpoint(
    path: str | Path,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    data_generator: torch.Generator | None = None,
) -> int:
    """Restore a ``save_checkpoint`` file into the given objects; return the number of epochs done.

    Only tensors and plain containers are unpickled (``weights_only=True``), so a checkpoint from
    an untrusted source cannot run code.
    """
    state = torch.load(Path(path), weights_only=True)
    model.load_state_dict(state["model"])
    if optimizer is not None:
        optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None:
        if state["scheduler"] is None:
            raise ValueError("the checkpoint holds no scheduler state")
        scheduler.load_state_dict(state["scheduler"])
    if data_generator is not None:
        if state["data_generator"] is None:
            raise ValueError("the checkpoint holds no data-order generator state")
        data_generator.set_state(state["data_generator"])
    set_rng_state(state["rng"])
    return state["epoch"]
