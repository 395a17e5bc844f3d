"""Beyond plain data parallelism: FSDP (ZeRO-3) memory per rank against DDP, and a two-stage pipeline
written with send/recv, checked against torch.distributed.pipelining.

Launch: torchrun --standalone --nproc-per-node=2 sharding.py [--fast]
"""

from __future__ import annotations

import argparse

import torch
import torch.distributed as dist
import torch.nn.functional as F
from dist_common import add_backend_argument, setup
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard
from torch.distributed.pipelining import PipelineStage, ScheduleGPipe
from torch.distributed.tensor import DTensor
from torch.nn.parallel import DistributedDataParallel as DDP

from helpers.bench import time_fn
from helpers.dist import save_result
from helpers.models import mlp


def local_bytes(tensors) -> int:
    """Bytes this rank stores: a DTensor counts only its local shard."""
    total = 0
    for t in tensors:
        t = t.to_local() if isinstance(t, DTensor) else t
        total += t.numel() * t.element_size()
    return total


def memory_report(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    params = list(model.parameters())
    states = [v for s in optimizer.state.values() for v in s.values() if torch.is_tensor(v) and v.dim() > 0]
    return {"parameters": local_bytes(params), "gradients": local_bytes(p.grad for p in params),
            "optimizer": local_bytes(states)}


def adamw_steps(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int) -> torch.optim.Optimizer:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=False)
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
    return optimizer


def fsdp_vs_ddp(rank: int, world: int, hidden: list[int], steps: int) -> dict:
    gen = torch.Generator().manual_seed(rank)
    x, y = torch.randn(32, 64, generator=gen), torch.randint(0, 10, (32,), generator=gen)
    torch.manual_seed(0)
    ddp = DDP(mlp(64, hidden, 10))
    ddp_opt = adamw_steps(ddp, x, y, steps)

    torch.manual_seed(0)
    sharded = mlp(64, hidden, 10)
    mesh = init_device_mesh("cpu", (world,))
    for layer in sharded:
        if isinstance(layer, torch.nn.Linear):
            fully_shard(layer, mesh=mesh)  # each layer's weights are gathered only while it runs
    fully_shard(sharded, mesh=mesh)
    fsdp_opt = adamw_steps(sharded, x, y, steps)
    gap = max(float((a.full_tensor() - b).detach().abs().max())
              for a, b in zip(sharded.parameters(), ddp.module.parameters(), strict=True))
    return {"n_params": sum(p.numel() for p in ddp.module.parameters()),
            "ddp": memory_report(ddp, ddp_opt), "fsdp": memory_report(sharded, fsdp_opt),
            "max_param_diff_after_steps": gap}


def two_stage_model(width: int) -> torch.nn.Sequential:
    torch.manual_seed(0)
    return mlp(64, [width] * 4, 10, activation=torch.nn.Tanh)


def pipeline_by_hand(stage: torch.nn.Module, rank: int, x: torch.Tensor, y: torch.Tensor, micro: int,
                     act_shape: tuple[int, int]) -> None:
    """GPipe-style: stage 0 streams micro-batch activations to stage 1, which sends back their gradients."""
    if rank == 0:
        outputs, requests = [], []
        for xb in x.chunk(micro):
            out = stage(xb)
            outputs.append(out)
            requests.append(dist.isend(out.detach(), dst=1))
        for out in outputs:
            grad = torch.empty_like(out)
            dist.recv(grad, src=1)
            out.backward(grad)  # finish the backward pass through stage 0
        for r in requests:
            r.wait()
    else:
        requests = []
        for yb in y.chunk(micro):
            act = torch.empty(act_shape[0] // micro, act_shape[1])
            dist.recv(act, src=0)
            act.requires_grad_(True)
            (F.cross_entropy(stage(act), yb) / micro).backward()  # mean over the whole batch
            requests.append(dist.isend(act.grad, dst=0))
        for r in requests:
            r.wait()


def pipeline(rank: int, width: int, batch: int, micro_counts: list[int], repeats: int) -> dict:
    gen = torch.Generator().manual_seed(5)
    x, y = torch.randn(batch, 64, generator=gen), torch.randint(0, 10, (batch,), generator=gen)
    full = two_stage_model(width)
    F.cross_entropy(full(x), y).backward()
    split = len(full) // 2
    reference = [p.grad.clone() for p in (full[:split] if rank == 0 else full[split:]).parameters()]

    stage = two_stage_model(width)
    stage = stage[:split] if rank == 0 else stage[split:]
    pipeline_by_hand(stage, rank, x, y, 4, (batch, width))
    by_hand_diff = max(float((p.grad - r).abs().max()) for p, r in zip(stage.parameters(), reference, strict=True))

    lib_stage_module = two_stage_model(width)
    lib_stage_module = lib_stage_module[:split] if rank == 0 else lib_stage_module[split:]
    lib_stage = PipelineStage(lib_stage_module, rank, 2, torch.device("cpu"))
    schedule = ScheduleGPipe(lib_stage, n_microbatches=4, loss_fn=F.cross_entropy)
    if rank == 0:
        schedule.step(x)
    else:
        schedule.step(target=y)
    library_diff = max(float((p.grad - r).abs().max())
                       for p, r in zip(lib_stage_module.parameters(), reference, strict=True))

    times = {}
    for micro in micro_counts:
        def step(micro: int = micro) -> None:
            stage.zero_grad(set_to_none=True)
            pipeline_by_hand(stage, rank, x, y, micro, (batch, width))
        times[micro] = time_fn(step, warmup=1, repeats=repeats).median_s
    return {"by_hand_vs_single_process": by_hand_diff, "library_vs_single_process": library_diff,
            "step_s_by_micro": times}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fast", action="store_true")
    add_backend_argument(parser)
    args = parser.parse_args()
    rank, world, _ = setup(args.backend)
    out = {"rank": rank, "fsdp": fsdp_vs_ddp(rank, world, [512, 512, 512], steps=3),
           "pipeline": pipeline(rank, 512, 256, [1, 8] if args.fast else [1, 2, 4, 8], 3 if args.fast else 7)}
    save_result(out)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
