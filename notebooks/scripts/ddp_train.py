"""Data-parallel training done right, as one file that runs unchanged on 1 or 1000 GPUs.

DistributedDataParallel averages gradients, DistributedSampler gives each rank its own shard (and a
new shuffle each epoch through set_epoch), metrics are averaged with all_reduce, and only rank 0
prints and writes the checkpoint.

One machine, 2 processes:  torchrun --standalone --nproc-per-node=2 ddp_train.py
Two machines, 8 GPUs each: torchrun --nnodes=2 --nproc-per-node=8 --rdzv-backend=c10d \
                               --rdzv-endpoint=HOST:29500 --rdzv-id=job1 ddp_train.py   (on each node)
"""

from __future__ import annotations

import argparse

import torch
import torch.distributed as dist
import torch.nn.functional as F
from dist_common import add_backend_argument, digits_tensors, flat_params, make_model, replica_gap, setup
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from helpers.dist import save_result


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32, help="per rank; the global batch is N times it")
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--checkpoint", default="ddp_checkpoint.pt")
    add_backend_argument(parser)
    return parser.parse_args()


def evaluate(model: torch.nn.Module, X: torch.Tensor, y: torch.Tensor, device: torch.device) -> float:
    """Accuracy over the whole test set: each rank scores a disjoint slice, all_reduce adds the counts."""
    rank, world = dist.get_rank(), dist.get_world_size()
    with torch.no_grad():
        pred = model(X[rank::world].to(device)).argmax(1)
    counts = torch.tensor([(pred == y[rank::world].to(device)).sum().item(), len(pred)], device=device,
                          dtype=torch.float64)
    dist.all_reduce(counts)
    return float(counts[0] / counts[1])


def main() -> None:
    args = parse_args()
    rank, world, device = setup(args.backend)
    dtype = getattr(torch, args.dtype)
    data = digits_tensors(args.seed, dtype)
    rows = torch.arange(len(data["y_train"]))  # carried through the loader to check the shards
    dataset = TensorDataset(rows, data["X_train"], data["y_train"])
    sampler = DistributedSampler(dataset, shuffle=True, seed=args.seed, drop_last=True)
    loader = DataLoader(dataset, batch_size=args.batch_size, sampler=sampler, drop_last=True)

    model = make_model(args.seed, dtype=dtype).to(device)
    model = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)

    seen_rows, step_gaps, epoch_losses = [], [], []
    for epoch in range(args.epochs):
        sampler.set_epoch(epoch)  # a different shuffle every epoch, the same on every rank
        batches = []
        loss_sum_and_count = torch.zeros(2, dtype=torch.float64, device=device)
        for row, xb, yb in loader:
            xb, yb = xb.to(device), yb.to(device)
            loss = F.cross_entropy(model(xb), yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # DDP all-reduces (averages) the gradients here
            optimizer.step()
            batches.append(row.tolist())
            step_gaps.append(replica_gap(model.module))
            loss_sum_and_count += torch.stack([loss.detach().double() * len(yb),
                                               torch.tensor(len(yb), dtype=torch.float64, device=device)])
        dist.all_reduce(loss_sum_and_count)  # every rank now holds the global sums
        epoch_losses.append(float(loss_sum_and_count[0] / loss_sum_and_count[1]))
        if rank == 0:
            print(f"epoch {epoch}: train loss {epoch_losses[-1]:.4f} (mean over all {world} ranks)")
        seen_rows.append(batches)

    accuracy = evaluate(model.module, data["X_test"], data["y_test"], device)
    if rank == 0:
        torch.save({k: v.cpu() for k, v in model.module.state_dict().items()}, args.checkpoint)  # loads anywhere
        print(f"test accuracy {accuracy:.4f}; checkpoint written by rank 0 only: {args.checkpoint}")
    dist.barrier()  # nobody reads the checkpoint before rank 0 has finished writing it
    save_result({"rank": rank, "world": world, "backend": dist.get_backend(), "rows": seen_rows,
                 "step_gaps": step_gaps, "epoch_losses": epoch_losses, "test_accuracy": accuracy,
                 "param_checksum": float(flat_params(model.module).double().sum())})
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
