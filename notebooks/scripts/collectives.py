"""Communication under data parallelism, measured: a hand-written ring all-reduce, all-reduce cost by
message size, DDP's gradient buckets, no_sync gradient accumulation, and step time as the model grows.

Launch: torchrun --standalone --nproc-per-node=2 collectives.py [--only ring] [--fast]
"""

from __future__ import annotations

import argparse

import torch
import torch.distributed as dist
import torch.nn.functional as F
from dist_common import add_backend_argument, setup
from torch.distributed.algorithms.ddp_comm_hooks import default_hooks
from torch.nn.parallel import DistributedDataParallel as DDP

from helpers.bench import time_fn
from helpers.dist import ring_all_reduce, save_result
from helpers.models import mlp


def ring_check(rank: int, n_elements: int) -> dict:
    """The hand-written ring against dist.all_reduce: values, bytes sent, time."""
    gen = torch.Generator().manual_seed(100 + rank)
    data = torch.randn(n_elements, generator=gen)
    mine, reference = data.clone(), data.clone()
    sent = ring_all_reduce(mine)
    dist.all_reduce(reference)
    ints = torch.randint(-1000, 1000, (n_elements,), generator=gen)
    ints_ring, ints_ref = ints.clone(), ints.clone()
    ring_all_reduce(ints_ring)
    dist.all_reduce(ints_ref)
    return {"n_elements": n_elements, "buffer_bytes": data.numel() * data.element_size(), "bytes_sent": sent,
            "max_abs_diff_float": float((mine - reference).abs().max()),
            "int_equal": bool(torch.equal(ints_ring, ints_ref)),
            "ring_s": time_fn(lambda: ring_all_reduce(data.clone()), warmup=2, repeats=5).median_s,
            "gloo_s": time_fn(lambda: dist.all_reduce(data.clone()), warmup=2, repeats=5).median_s}


def allreduce_cost(sizes: list[int], repeats: int) -> list[dict]:
    """Median time of dist.all_reduce by message size (to fit latency + bytes / bandwidth)."""
    out = []
    for n in sizes:
        buf = torch.zeros(n)
        t = time_fn(lambda buf=buf: dist.all_reduce(buf), warmup=2, repeats=repeats).median_s
        out.append({"bytes": n * 4, "s": t})
    return out


def counted_ddp(model: torch.nn.Module, **ddp_kwargs) -> tuple[DDP, dict]:
    """DDP whose communication hook counts the all-reduce calls (one per gradient bucket per step)."""
    ddp = DDP(model, **ddp_kwargs)
    state = {"calls": 0}

    def counting_allreduce(state, bucket):  # DDP checks these annotations at run time: leave them out
        state["calls"] += 1
        return default_hooks.allreduce_hook(None, bucket)

    ddp.register_comm_hook(state, counting_allreduce)
    return ddp, state


def batch(rows: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(rows, 64, generator=gen), torch.randint(0, 10, (rows,), generator=gen)


def step_fn(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor):
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
    return step


def bucketing(rank: int, hidden: list[int], caps_mb: list[float], repeats: int) -> list[dict]:
    """Number of gradient buckets (all-reduce calls per step) and step time by DDP's bucket_cap_mb."""
    x, y = batch(64, rank)
    out = []
    for cap in caps_mb:
        torch.manual_seed(0)
        ddp, state = counted_ddp(mlp(64, hidden, 10), bucket_cap_mb=cap)
        step = step_fn(ddp, x, y)
        for _ in range(2):  # DDP rebuilds its buckets in the order the first step produced gradients
            step()
        state["calls"] = 0
        step()
        calls = state["calls"]
        out.append({"cap_mb": cap, "buckets": calls,
                    "step_s": time_fn(step, warmup=1, repeats=repeats).median_s})
    return out


def accumulation(rank: int, micro: int, micro_batch: int) -> dict:
    """K micro-batches under no_sync, then one synchronised backward == one big batch, one all-reduce."""
    x, y = batch(micro * micro_batch, 10 + rank)
    models = {}
    for name in ("big", "no_sync", "no_sync_backward_only"):
        torch.manual_seed(0)
        models[name] = counted_ddp(mlp(64, [128], 10))
    big, _ = models["big"]
    F.cross_entropy(big(x), y).backward()
    micro_batches = list(zip(x.split(micro_batch), y.split(micro_batch), strict=True))
    acc, _ = models["no_sync"]
    for xb, yb in micro_batches[:-1]:
        with acc.no_sync():  # forward AND backward inside: gradients pile up locally, no communication
            (F.cross_entropy(acc(xb), yb) / micro).backward()
    (F.cross_entropy(acc(micro_batches[-1][0]), micro_batches[-1][1]) / micro).backward()  # one all-reduce
    wrong, _ = models["no_sync_backward_only"]
    for xb, yb in micro_batches[:-1]:
        loss = F.cross_entropy(wrong(xb), yb) / micro  # forward outside no_sync: DDP already armed the sync
        with wrong.no_sync():
            loss.backward()
    (F.cross_entropy(wrong(micro_batches[-1][0]), micro_batches[-1][1]) / micro).backward()
    gap = max(float((a.grad - b.grad).abs().max()) for a, b in zip(big.parameters(), acc.parameters(), strict=True))
    return {"max_grad_diff": gap, "micro": micro, **{f"calls_{k}": v[1]["calls"] for k, v in models.items()}}


def scaling(rank: int, world: int, widths: list[int], global_batch: int, repeats: int) -> list[dict]:
    """T1 (rank 0 alone, 1 and `world` threads), TN (DDP on all ranks), and the all-reduce alone."""
    out = []
    for width in widths:
        row: dict = {"width": width}
        torch.manual_seed(0)
        model = mlp(64, [width, width], 10)
        row["params"] = sum(p.numel() for p in model.parameters())
        if rank == 0:  # the other ranks wait in the barrier below (gloo's barrier sleeps, it does not spin)
            x, y = batch(global_batch, 0)
            for threads in (1, world):
                torch.set_num_threads(threads)
                timing = time_fn(step_fn(model, x, y), warmup=3, repeats=repeats)
                row[f"t1_{threads}thr_s"], row[f"t1_{threads}thr_min_s"] = timing.median_s, min(timing.times_s)
            torch.set_num_threads(1)
        dist.barrier()
        x, y = batch(global_batch // world, rank)
        ddp = DDP(model)
        timing = time_fn(step_fn(ddp, x, y), warmup=3, repeats=repeats)
        row["tn_s"], row["tn_min_s"] = timing.median_s, min(timing.times_s)
        dist.barrier()
        with ddp.no_sync():
            row["tn_compute_s"] = time_fn(step_fn(ddp, x, y), warmup=3, repeats=repeats).median_s
        dist.barrier()
        flat = torch.zeros(row["params"])
        allreduce = time_fn(lambda flat=flat: dist.all_reduce(flat), warmup=3, repeats=repeats)
        row["allreduce_s"] = min(allreduce.times_s)  # its floor: one late rank inflates single calls
        out.append(row)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", choices=["ring"], default=None)
    parser.add_argument("--fast", action="store_true")
    add_backend_argument(parser)
    args = parser.parse_args()
    rank, world, _ = setup(args.backend)
    repeats = 7 if args.fast else 15
    out: dict = {"rank": rank, "world": world,
                 "ring": [ring_check(rank, n) for n in (12, 1000, 1 << 20)]}
    if args.only != "ring":
        out["allreduce_cost"] = allreduce_cost([1 << k for k in range(8, 23, 2)], repeats)
        out["bucketing"] = bucketing(rank, [256] * 12, [0.1, 1.0, 25.0], repeats)
        out["accumulation"] = accumulation(rank, micro=4, micro_batch=16)
        widths = [64, 1024] if args.fast else [64, 256, 512, 1024, 2048]
        out["scaling"] = scaling(rank, world, widths, 256, repeats)
    save_result(out)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
