"""Four ways to get data-parallel training wrong, each run and measured next to the right way.

no_wrapper      init_process_group is called but the model is never wrapped in DDP
no_sampler      a plain shuffled DataLoader instead of DistributedSampler
no_set_epoch    DistributedSampler without sampler.set_epoch(epoch)
loss_after_loop all_reduce of the last loss after the loop, reported as "the training loss"
every_rank_saves every rank writes the checkpoint

Launch: torchrun --standalone --nproc-per-node=2 ddp_mistakes.py
"""

from __future__ import annotations

import argparse
import os
import tempfile

import torch
import torch.distributed as dist
import torch.nn.functional as F
from dist_common import add_backend_argument, digits_tensors, make_model, replica_gap, setup
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from helpers.dist import save_result


def train(model: torch.nn.Module, loader: DataLoader, epochs: int, sampler: DistributedSampler | None = None,
          set_epoch: bool = True) -> tuple[list[list[int]], torch.Tensor]:
    """Plain SGD; returns the rows this rank saw in each epoch and its last mini-batch loss."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    rows_per_epoch, loss = [], torch.zeros(())
    for epoch in range(epochs):
        if sampler is not None and set_epoch:
            sampler.set_epoch(epoch)
        rows = []
        for row, xb, yb in loader:
            loss = F.cross_entropy(model(xb), yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            rows += row.tolist()
        rows_per_epoch.append(rows)
    return rows_per_epoch, loss.detach()


def sharded_loader(dataset: TensorDataset, seed: int) -> tuple[DataLoader, DistributedSampler]:
    sampler = DistributedSampler(dataset, shuffle=True, seed=seed, drop_last=True)
    return DataLoader(dataset, batch_size=32, sampler=sampler, drop_last=True), sampler


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    add_backend_argument(parser)
    args = parser.parse_args()
    rank, world, _ = setup(args.backend)
    data = digits_tensors(args.seed)
    dataset = TensorDataset(torch.arange(len(data["y_train"])), data["X_train"], data["y_train"])
    out: dict = {"rank": rank, "n_train": len(dataset)}

    # 1. Right: DDP + DistributedSampler + set_epoch.
    loader, sampler = sharded_loader(dataset, args.seed)
    model = DDP(make_model(args.seed))
    rows, last_loss = train(model, loader, args.epochs, sampler)
    out["right"] = {"gap": replica_gap(model.module), "rows": rows}

    # 2. Wrong: the process group exists, but nothing averages the gradients.
    loader, sampler = sharded_loader(dataset, args.seed)
    plain = make_model(args.seed)
    train(plain, loader, args.epochs, sampler)
    out["no_wrapper"] = {"gap": replica_gap(plain)}

    # 3. Wrong: no DistributedSampler. Same seed on every rank, so every rank walks the whole data set.
    torch.manual_seed(args.seed)
    loader = DataLoader(dataset, batch_size=32, shuffle=True, drop_last=True)
    rows_no_sampler, _ = train(DDP(make_model(args.seed)), loader, args.epochs)
    out["no_sampler"] = {"rows": rows_no_sampler}

    # 4. Wrong: DistributedSampler without set_epoch: the same order every epoch.
    loader, sampler = sharded_loader(dataset, args.seed)
    rows_no_epoch, _ = train(DDP(make_model(args.seed)), loader, args.epochs, sampler, set_epoch=False)
    out["no_set_epoch"] = {"rows": rows_no_epoch}

    # 5. Wrong: "collect the results" by all-reducing the last mini-batch loss (default op: SUM).
    reported = last_loss.clone()
    dist.all_reduce(reported)
    with torch.no_grad():
        full_loss = float(F.cross_entropy(model.module(data["X_train"]), data["y_train"]))
    out["loss_after_loop"] = {"reported": float(reported), "own_last_batch": float(last_loss),
                              "true_train_loss": full_loss}

    # 6. Wrong: every rank saves the checkpoint to the shared path.
    path = os.path.join(tempfile.gettempdir(), f"mllab_ckpt_{os.getppid()}.pt")
    writes = []
    for who_saves in ("every rank", "rank 0"):
        dist.barrier()
        if who_saves == "every rank" or rank == 0:
            torch.save(model.module.state_dict(), path)
            writes.append({"who": who_saves, "bytes": os.path.getsize(path)})
        dist.barrier()
    if rank == 0:
        os.remove(path)
    out["checkpoint_writes"] = writes

    save_result(out)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
