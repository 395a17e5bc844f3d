"""Distributed training for notebook 10a: launch ``torchrun`` jobs, collectives written by hand, and
the arithmetic of data-parallel memory and scaling.

The launch side runs in the notebook's process; ``save_result`` and ``ring_all_reduce`` run inside the
launched ranks. Importing this module does not import torch.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helpers.run_scripts import JOB_MARKER, RESULTS_ENV, STACKS_AT_ENV, job_dir
from helpers.validation import check_int

ZERO_STAGES = (0, 1, 2, 3)
STACK_LINE = re.compile(r'^\[rank\d+\]:(Timeout \(|Thread 0x|Current thread|  File ")')  # faulthandler's dump


def pick_backend() -> str:
    """The default process-group backend: ``nccl`` with CUDA GPUs, ``gloo`` otherwise.

    A script that must run on the CPU (to compare with a CPU reference) asks for ``gloo`` explicitly;
    ``plan_launch`` says which job gets which.
    """
    import torch

    return "nccl" if torch.cuda.is_available() else "gloo"


@dataclass(frozen=True)
class Job:
    """One torchrun job: its process-group backend, how many ranks, and where each rank computes."""

    backend: str
    nproc: int
    device: str


@dataclass(frozen=True)
class LaunchPlan:
    """Which of notebook 10a's jobs run where, decided from the device facts alone.

    ``cpu_demos`` run on gloo with CPU tensors everywhere, GPUs or not: they are compared with
    single-process references computed on the CPU. ``gpu_demo`` runs one rank per GPU on NCCL
    (NCCL refuses two ranks on one GPU); it is ``None`` without CUDA, with ``gpu_skip`` saying why.
    """

    cpu_demos: Job
    gpu_demo: Job | None
    gpu_skip: str | None


def plan_launch(n_gpus: int, *, cpu_ranks: int = 2) -> LaunchPlan:
    """The launch plan for ``n_gpus`` visible CUDA devices (``torch.cuda.device_count()``)."""
    check_int("n_gpus", n_gpus, minimum=0)
    check_int("cpu_ranks", cpu_ranks)
    cpu = Job("gloo", cpu_ranks, "cpu")
    if n_gpus == 0:
        return LaunchPlan(cpu, None, "no CUDA GPU is visible, so there is nothing for NCCL to connect")
    return LaunchPlan(cpu, Job("nccl", n_gpus, "cuda"), None)


def torchrun_command(
    script: str | Path,
    args: Sequence[str] = (),
    *,
    nproc_per_node: int = 2,
    nnodes: int = 1,
    rdzv_endpoint: str | None = None,
    rdzv_id: str = "mllab",
    python: str = sys.executable,
) -> list[str]:
    """The ``torchrun`` command line (as ``python -m torch.distributed.run``) for ``script``.

    One node and no endpoint gives ``--standalone`` (a local rendezvous on a free port). Several nodes
    need ``rdzv_endpoint="host:port"`` of one node that every node can reach; run the same command on
    each node. Output lines are prefixed with the local rank (``[rank0]:``).
    """
    check_int("nproc_per_node", nproc_per_node)
    check_int("nnodes", nnodes)
    if nnodes > 1 and not rdzv_endpoint:
        raise ValueError("rdzv_endpoint ('host:port' of one node) is required when nnodes > 1")
    cmd = [python, "-m", "torch.distributed.run", f"--nproc-per-node={nproc_per_node}"]
    if rdzv_endpoint:
        cmd += [f"--nnodes={nnodes}", "--rdzv-backend=c10d", f"--rdzv-endpoint={rdzv_endpoint}",
                f"--rdzv-id={rdzv_id}"]
    else:
        cmd.append("--standalone")
    cmd += ["--tee=3", "--role=rank", str(script), *map(str, args)]
    return cmd


@dataclass
class LaunchResult:
    """What a finished ``torchrun`` job left behind."""

    returncode: int
    wall_s: float
    log: list[str] = field(repr=False)
    results: dict[int, Any] = field(default_factory=dict)

    def lines(self, prefix: str) -> list[str]:
        """Log lines that start with ``prefix`` (for example ``"[rank0]:"``)."""
        return [line for line in self.log if line.startswith(prefix)]


def launch(
    script: str | Path,
    args: Sequence[str] = (),
    *,
    nproc_per_node: int = 2,
    timeout_s: float = 180.0,
    echo: bool = True,
    env: dict[str, str] | None = None,
) -> LaunchResult:
    """Run ``script`` under ``torchrun`` on this machine and return its logs and per-rank results.

    Log lines stream as they come, prefixed with the rank. Each rank's ``save_result(...)`` comes back
    in ``LaunchResult.results[rank]``. Raises ``RuntimeError`` when any rank fails (with the last log
    lines) and ``TimeoutError`` when the job runs past ``timeout_s`` (its processes are killed).
    """
    script = _existing_script(script)
    _check_timeout(timeout_s)
    with tempfile.TemporaryDirectory(prefix="mllab-dist-") as tmp:
        cmd = torchrun_command(script, args, nproc_per_node=nproc_per_node)
        returncode, wall_s, log = _run_torchrun(cmd, script.name, tmp, timeout_s, echo, env)
        return LaunchResult(returncode, wall_s, log, _read_results(Path(tmp)))


def launch_sequence(
    jobs: Sequence[tuple[str | Path, Sequence[str]]],
    *,
    nproc_per_node: int = 2,
    timeout_s: float = 300.0,
    echo: bool = False,
    env: dict[str, str] | None = None,
) -> list[LaunchResult]:
    """Run several ``(script, args)`` jobs one after another inside ONE ``torchrun`` launch.

    Each script runs in the same rank processes as if launched alone (as ``__main__``, with its own
    arguments, joining and leaving the process group itself), so the start-up of Python, torch and
    the rendezvous is paid once. Returns one ``LaunchResult`` per job, with that job's log lines and
    results; its ``wall_s`` is the job's own run time on rank 0, without the shared start-up.
    """
    if not jobs:
        raise ValueError("jobs must name at least one (script, args) pair")
    _check_timeout(timeout_s)
    spec = [{"script": str(_existing_script(script)), "args": [str(a) for a in args]} for script, args in jobs]
    with tempfile.TemporaryDirectory(prefix="mllab-dist-") as tmp:
        spec_path = Path(tmp) / "jobs.json"
        spec_path.write_text(json.dumps(spec))
        cmd = torchrun_command(Path(__file__).with_name("run_scripts.py"), [str(spec_path)],
                               nproc_per_node=nproc_per_node)
        names = " + ".join(Path(job["script"]).name for job in spec)
        stacks_at = time.time() + timeout_s - min(5.0, 0.2 * timeout_s)  # the ranks' stacks, just before a kill
        returncode, _, log = _run_torchrun(cmd, names, tmp, timeout_s, echo, {STACKS_AT_ENV: f"{stacks_at:.3f}", **(env or {})})
        logs = _split_log(log, len(spec))
        results = []
        for index in range(len(spec)):
            folder = job_dir(tmp, index)
            wall_s = float((folder / "wall_s").read_text())
            results.append(LaunchResult(returncode, wall_s, logs[index], _read_results(folder)))
        return results


def _existing_script(script: str | Path) -> Path:
    script = Path(script)
    if not script.is_file():
        raise FileNotFoundError(f"script {script} does not exist")
    return script


def _check_timeout(timeout_s: float) -> None:
    if not timeout_s > 0:
        raise ValueError(f"timeout_s must be > 0, got {timeout_s!r}")


def _run_torchrun(cmd: list[str], name: str, results_dir: str, timeout_s: float, echo: bool,
                  env: dict[str, str] | None) -> tuple[int, float, list[str]]:
    """Run a torchrun command line, streaming its output; return (exit code, wall seconds, log lines)."""
    run_env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", **(env or {}),
               RESULTS_ENV: results_dir}
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=run_env, start_new_session=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_stream, args=(proc.stdout, lines), daemon=True).start()
    log: list[str] = []
    deadline = start + timeout_s
    while True:
        try:
            line = lines.get(timeout=max(deadline - time.perf_counter(), 0.0))
        except queue.Empty:
            _stop(proc)
            tail = "\n".join(log[-20:])
            stacks = [line for line in log if STACK_LINE.search(line)]
            where = "\n".join(["", "where each rank was (Python stacks):", *stacks[:80]]) if stacks else ""
            raise TimeoutError(f"{name} ran past timeout_s={timeout_s} s and was killed; "
                               f"last log lines:\n{tail}{where}") from None
        if line is None:
            break
        log.append(line)
        if echo:
            print(line, flush=True)
    returncode = proc.wait()
    wall_s = time.perf_counter() - start
    if returncode != 0:
        from_ranks = [line for line in log if line.startswith("[rank")][-15:]
        tail = "\n".join([*from_ranks, "...", *log[-8:]])
        raise RuntimeError(f"{name} failed (torchrun exit code {returncode}); last log lines:\n{tail}")
    return returncode, wall_s, log


def _split_log(log: list[str], n_jobs: int) -> list[list[str]]:
    """Cut a sequence's log into one list per job, following each rank's job markers."""
    per_job: list[list[str]] = [[] for _ in range(n_jobs)]
    current: dict[str, int] = {}
    for line in log:
        prefix = line.split(":", 1)[0] if line.startswith("[rank") else ""
        _, marker, rest = line.partition(JOB_MARKER)
        if marker and prefix:
            current[prefix] = int(rest.split(":", 1)[0])
        elif prefix in current:
            per_job[current[prefix]].append(line)
    return per_job


def _stream(pipe: Any, lines: queue.Queue) -> None:
    for line in iter(pipe.readline, ""):
        lines.put(line.rstrip("\n"))
    lines.put(None)


def _stop(proc: subprocess.Popen) -> None:
    """Terminate the launcher and its ranks (they share one process group)."""
    for sig, wait_s in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=wait_s)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


def _read_results(results_dir: Path) -> dict[int, Any]:
    return {int(p.stem.removeprefix("rank")): json.loads(p.read_text()) for p in results_dir.glob("rank*.json")}


def save_result(result: Any) -> Path | None:
    """Inside a launched rank: store a JSON-serialisable ``result`` for ``launch`` to return.

    Returns the file written, or None when the script was not started by ``launch`` (run by hand).
    """
    results_dir = os.environ.get(RESULTS_ENV)
    if not results_dir:
        return None
    rank = int(os.environ.get("RANK", "0"))
    path = Path(results_dir) / f"rank{rank}.json"
    path.write_text(json.dumps(result))
    return path


def ring_all_reduce(tensor: Any) -> int:
    """Sum ``tensor`` in place across all ranks with a ring of ``send``/``recv``; return bytes sent here.

    Reduce-scatter then all-gather, as NCCL's ring does: the flat buffer is cut into N chunks, each
    rank sends N-1 chunks in each phase, so it moves 2(N-1)/N of the buffer whatever N is.
    """
    import torch
    import torch.distributed as dist

    if not isinstance(tensor, torch.Tensor) or not tensor.is_contiguous():
        raise ValueError("tensor must be a contiguous torch.Tensor")
    world, rank = dist.get_world_size(), dist.get_rank()
    chunks = list(torch.tensor_split(tensor.view(-1), world))
    right, left = (rank + 1) % world, (rank - 1) % world
    sent = 0

    def exchange(send_idx: int, recv_idx: int) -> torch.Tensor:
        nonlocal sent
        incoming = torch.empty_like(chunks[recv_idx])
        # one batched call: NCCL may deadlock on separate isend/irecv pairs that every rank posts at once
        ops = [dist.P2POp(dist.isend, chunks[send_idx], right), dist.P2POp(dist.irecv, incoming, left)]
        for request in dist.batch_isend_irecv(ops):
            request.wait()
        sent += chunks[send_idx].numel() * chunks[send_idx].element_size()
        return incoming

    for step in range(world - 1):  # reduce-scatter: afterwards rank r owns the full sum of chunk r+1
        recv_idx = (rank - step - 1) % world
        chunks[recv_idx].add_(exchange((rank - step) % world, recv_idx))
    for step in range(world - 1):  # all-gather: pass the finished chunks around the ring
        recv_idx = (rank - step) % world
        chunks[recv_idx].copy_(exchange((rank + 1 - step) % world, recv_idx))
    return sent


def ring_bytes_per_rank(nbytes: float, world_size: int) -> float:
    """Bytes each rank sends in a ring all-reduce of an ``nbytes`` buffer: 2(N-1)/N · nbytes."""
    if nbytes < 0:
        raise ValueError(f"nbytes must be >= 0, got {nbytes!r}")
    check_int("world_size", world_size)
    return 2 * (world_size - 1) / world_size * nbytes


def zero_bytes_per_gpu(n_params: float, world_size: int, stage: int) -> dict[str, float]:
    """Per-GPU bytes of mixed-precision Adam training under ZeRO ``stage`` (0 = plain DDP).

    The ZeRO paper's account of 16 bytes per parameter (``helpers.memory.bytes_per_param`` for AdamW
    in ``bf16_mixed``): 2 (bf16/fp16 weights) + 2 (gradients) + 12 (fp32 master weights, Adam m and
    v). Stage 1 shards the optimizer state, stage 2 also the gradients, stage 3 also the weights
    (FSDP's ``fully_shard``). Activations are not included.
    """
    from helpers.memory import bytes_per_param

    if not n_params > 0:
        raise ValueError(f"n_params must be > 0, got {n_params!r}")
    check_int("world_size", world_size)
    if stage not in ZERO_STAGES:
        raise ValueError(f"stage must be one of {ZERO_STAGES}, got {stage!r}")
    per_param, n = bytes_per_param("adamw", "bf16_mixed"), world_size
    weights = per_param["weights"] * n_params / (n if stage >= 3 else 1)
    grads = per_param["gradients"] * n_params / (n if stage >= 2 else 1)
    optimizer = (per_param["master_weights"] + per_param["optimizer"]) * n_params / (n if stage >= 1 else 1)
    return {"weights": weights, "gradients": grads, "optimizer": optimizer,
            "total": weights + grads + optimizer}


def data_parallel_step_s(
    compute_s: float,
    grad_bytes: float,
    world_size: int,
    *,
    bandwidth_bytes_per_s: float,
    latency_s: float = 0.0,
    overlap: float = 0.0,
) -> float:
    """Modelled time of one data-parallel step: each rank's compute plus the gradient all-reduce.

    ``compute_s`` is one rank's forward + backward time for its share of the batch (divide one GPU's
    time by N for a fixed global batch, keep it for a fixed per-GPU batch). The ring all-reduce costs
    2(N-1)·latency + 2(N-1)/N·bytes/bandwidth. ``overlap`` (0 to 1) is the share of the compute time
    that communication can hide behind: DDP all-reduces gradient buckets while the backward pass
    (about 2/3 of compute) is still running.
    """
    if compute_s < 0 or grad_bytes < 0 or latency_s < 0:
        raise ValueError("compute_s, grad_bytes and latency_s must be >= 0")
    if not bandwidth_bytes_per_s > 0:
        raise ValueError(f"bandwidth_bytes_per_s must be > 0, got {bandwidth_bytes_per_s!r}")
    if not 0.0 <= overlap <= 1.0:
        raise ValueError(f"overlap must be in [0, 1], got {overlap!r}")
    check_int("world_size", world_size)
    comm = 2 * (world_size - 1) * latency_s + ring_bytes_per_rank(grad_bytes, world_size) / bandwidth_bytes_per_s
    return compute_s + max(0.0, comm - overlap * compute_s)


def scaling_efficiency(t1_s: float, tn_s: float, world_size: int) -> float:
    """Strong-scaling efficiency T1 / (N · TN): 1.0 is a perfect N-fold speed-up."""
    if not (t1_s > 0 and tn_s > 0):
        raise ValueError(f"t1_s and tn_s must be > 0, got {t1_s!r} and {tn_s!r}")
    check_int("world_size", world_size)
    return t1_s / (world_size * tn_s)
