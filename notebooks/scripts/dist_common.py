"""What every script of notebook 10a shares: process-group set-up, the data and the model.

The notebook imports it too, so that its single-process reference starts from the same data and
the same initial weights as the launched ranks.
"""

from __future__ import annotations

import argparse
import os

import torch
import torch.distributed as dist

from helpers.data import load_digits, split
from helpers.dist import pick_backend
from helpers.models import mlp


def add_backend_argument(parser: argparse.ArgumentParser) -> None:
    """``--backend gloo|nccl``; without it ``helpers.dist.pick_backend()`` decides (nccl with CUDA)."""
    parser.add_argument("--backend", choices=["gloo", "nccl"], default=None,
                        help="process-group backend (default: nccl with CUDA GPUs, gloo otherwise)")


def setup(backend: str | None = None) -> tuple[int, int, torch.device]:
    """Join the process group that torchrun describes in the environment; return rank, world size, device.

    With ``nccl`` each rank computes on its own GPU (``LOCAL_RANK``); with ``gloo`` on the CPU, even on
    a GPU machine, so that its results compare with a reference computed on the CPU.
    """
    backend = backend or pick_backend()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device("cuda", local_rank) if backend == "nccl" else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend=backend, device_id=device if device.type == "cuda" else None)
    return dist.get_rank(), dist.get_world_size(), device


def digits_tensors(seed: int = 0, dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """Digits train/test tensors (the same split on every rank and in the notebook)."""
    X, y = load_digits()
    s = split(X, y, val_size=0.1, test_size=0.2, seed=seed)
    return {"X_train": torch.tensor(s.X_train, dtype=dtype), "y_train": torch.tensor(s.y_train),
            "X_test": torch.tensor(s.X_test, dtype=dtype), "y_test": torch.tensor(s.y_test)}


def make_model(seed: int = 0, hidden: int = 64, dtype: torch.dtype = torch.float32) -> torch.nn.Module:
    """The MLP every rank builds; the same seed gives the same initial weights everywhere."""
    torch.manual_seed(seed)
    return mlp(64, [hidden], 10).to(dtype)


def flat_params(model: torch.nn.Module) -> torch.Tensor:
    """All parameters as one detached vector."""
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def replica_gap(model: torch.nn.Module) -> float:
    """Largest difference between this rank's parameters and rank 0's, maximised over ranks."""
    mine = flat_params(model)
    rank0 = mine.clone()
    dist.broadcast(rank0, src=0)
    gap = (mine - rank0).abs().max().reshape(1).double()
    dist.all_reduce(gap, op=dist.ReduceOp.MAX)
    return float(gap)
