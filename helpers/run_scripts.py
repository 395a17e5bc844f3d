"""Inside a torchrun rank: run several scripts one after another, as if each had been launched alone.

``helpers.dist.launch_sequence`` starts this file under ``torchrun`` so that a notebook pays the
process start-up (Python, torch, the rendezvous) once for all its jobs. Each script runs as
``__main__`` with its own ``sys.argv``, joins and leaves the process group itself, and stores its
``save_result`` under its own folder. Each job gets a fresh rendezvous store on a new port (rank 0
picks it, the others read it from torchrun's store): a second ``init_process_group`` on the same
store could read the first one's stale addresses and hang. If the launcher gives a deadline
(``MLLAB_DIST_STACKS_AT``), every rank prints its Python stacks just before it, so that a job killed
for running too long says where each rank was waiting. Usage: ``run_scripts.py SPEC.json`` where the spec is a list
of ``{"script": path, "args": [...]}``.
"""

from __future__ import annotations

import faulthandler
import json
import os
import runpy
import socket
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

RESULTS_ENV = "MLLAB_DIST_RESULTS"  # the folder where save_result writes each rank's result
JOB_MARKER = "=== mllab job "
STACKS_AT_ENV = "MLLAB_DIST_STACKS_AT"  # a time.time() at which each rank dumps its stacks (to stderr)


def job_dir(results_dir: str | Path, index: int) -> Path:
    """Where job ``index`` of a sequence keeps its per-rank results."""
    return Path(results_dir) / f"job{index}"


def fresh_rendezvous(agent: Any, index: int, rank: int) -> None:
    """Point ``env://`` at a new store for job ``index``: rank 0 serves it on a free port.

    ``agent`` is a client of torchrun's own store, through which rank 0 tells the others the port.
    """
    key = f"mllab/job{index}/port"
    if rank == 0:
        with socket.socket() as probe:
            probe.bind((os.environ["MASTER_ADDR"], 0))
            port = probe.getsockname()[1]
        agent.set(key, str(port))
    os.environ["MASTER_PORT"] = agent.get(key).decode()
    os.environ["TORCHELASTIC_USE_AGENT_STORE"] = "False"


def run_sequence(spec_path: str | Path, results_dir: str | Path) -> None:
    """Run every job of the spec in order; rank 0 records each job's wall time (``wall_s`` file)."""
    from torch.distributed import TCPStore

    jobs = json.loads(Path(spec_path).read_text())
    rank = int(os.environ.get("RANK", "0"))
    if os.environ.get(STACKS_AT_ENV):
        faulthandler.dump_traceback_later(max(float(os.environ[STACKS_AT_ENV]) - time.time(), 0.1), exit=False)
    agent = TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), is_master=False,
                     timeout=timedelta(seconds=120))
    for index, job in enumerate(jobs):
        script = Path(job["script"]).resolve()
        folder = job_dir(results_dir, index)
        folder.mkdir(parents=True, exist_ok=True)
        os.environ[RESULTS_ENV] = str(folder)
        sys.argv = [str(script), *job["args"]]
        if str(script.parent) not in sys.path:
            sys.path.insert(0, str(script.parent))
        fresh_rendezvous(agent, index, rank)
        print(f"{JOB_MARKER}{index}: {script.name}", flush=True)
        start = time.perf_counter()
        runpy.run_path(str(script), run_name="__main__")
        if rank == 0:
            (folder / "wall_s").write_text(f"{time.perf_counter() - start:.6f}")


if __name__ == "__main__":
    run_sequence(sys.argv[1], os.environ[RESULTS_ENV])
