"""A training job that survives being killed: it checkpoints after every epoch and resumes.

Run it as a process, kill it with SIGKILL at any moment, run it again with the same arguments::

    python -m helpers.resumable runs/job --epochs 20 --seed 0

The second run continues from the last complete checkpoint (``helpers.checkpoint``: weights,
optimizer, every random generator, the data order) and produces exactly the per-step losses an
uninterrupted run would. ``resume="weights"`` restores the weights alone, the common mistake: the
optimizer's moments and the data order start over, and the trajectory departs from the
uninterrupted one.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from helpers.checkpoint import load_checkpoint, save_checkpoint
from helpers.data import load_digits
from helpers.device import seed_everything
from helpers.models import mlp

CHECKPOINT = "checkpoint.pt"
LOSSES = "losses.json"
RESUME_MODES = ("full", "weights")


def _write_atomically(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    os.replace(partial, path)


def run(directory: str | Path, *, epochs: int, seed: int = 0, hidden: int = 256, lr: float = 1e-3,
        batch_size: int = 32, resume: str = "full") -> list[float]:
    """Train a dropout MLP on the digits for ``epochs`` epochs, checkpointing into ``directory`` after
    each; continue from a checkpoint found there. Return the per-step training losses of the whole run."""
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be an int >= 1, got {epochs!r}")
    if resume not in RESUME_MODES:
        raise ValueError(f"resume must be one of {RESUME_MODES}, got {resume!r}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    seed_everything(seed)
    X, y = (torch.from_numpy(a) for a in load_digits())
    model = mlp(X.shape[1], [hidden], 10, dropout=0.2)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    order = torch.Generator().manual_seed(seed)
    steps_per_epoch = -(-len(y) // batch_size)
    done, losses = 0, []
    if (directory / CHECKPOINT).exists():
        if resume == "full":
            done = load_checkpoint(directory / CHECKPOINT, model=model, optimizer=optimizer, data_generator=order)
        else:
            state = torch.load(directory / CHECKPOINT, weights_only=True)
            model.load_state_dict(state["model"])
            done = state["epoch"]
        losses = json.loads((directory / LOSSES).read_text())[: done * steps_per_epoch]
    model.train()
    for epoch in range(done, epochs):
        for batch in torch.randperm(len(y), generator=order).split(batch_size):
            loss = nn.functional.cross_entropy(model(X[batch]), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        _write_atomically(directory / LOSSES, json.dumps(losses))  # first the losses, then the checkpoint:
        save_checkpoint(directory / CHECKPOINT, model=model, optimizer=optimizer, epoch=epoch + 1,
                        data_generator=order)  # a kill in between leaves losses ahead, never behind
    return losses


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m helpers.resumable", description=__doc__.split("\n")[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", choices=RESUME_MODES, default="full")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    run(args.directory, epochs=args.epochs, seed=args.seed, resume=args.resume)


if __name__ == "__main__":
    main()
