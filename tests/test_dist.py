import json
import os
import sys
import textwrap

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from helpers import dist as hd

# ---- backend and command line ------------------------------------------------------------------


def test_pick_backend_follows_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert hd.pick_backend() == "gloo"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert hd.pick_backend() == "nccl"


def test_torchrun_command_single_node_is_standalone():
    cmd = hd.torchrun_command("train.py", ["--epochs", 3], nproc_per_node=4, python="python")
    assert cmd[:4] == ["python", "-m", "torch.distributed.run", "--nproc-per-node=4"]
    assert "--standalone" in cmd
    assert cmd[-3:] == ["train.py", "--epochs", "3"]
    assert "--role=rank" in cmd and "--tee=3" in cmd


def test_torchrun_command_multi_node_uses_the_endpoint():
    cmd = hd.torchrun_command("train.py", nnodes=2, nproc_per_node=8, rdzv_endpoint="node0:29500", rdzv_id="job7")
    assert "--standalone" not in cmd
    for part in ("--nnodes=2", "--nproc-per-node=8", "--rdzv-backend=c10d", "--rdzv-endpoint=node0:29500",
                 "--rdzv-id=job7"):
        assert part in cmd


def test_torchrun_command_rejects_bad_input():
    with pytest.raises(ValueError, match="rdzv_endpoint"):
        hd.torchrun_command("train.py", nnodes=2)
    with pytest.raises(ValueError, match="nproc_per_node"):
        hd.torchrun_command("train.py", nproc_per_node=0)
    with pytest.raises(ValueError, match="nnodes"):
        hd.torchrun_command("train.py", nnodes=True)


# ---- launch --------------------------------------------------------------------------------------


def write_script(tmp_path, body: str, name: str = "job.py"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


@pytest.mark.slow
def test_launch_returns_logs_and_results(tmp_path, capsys):
    script = write_script(tmp_path, """
        import os, sys
        from helpers.dist import save_result
        rank = int(os.environ["RANK"])
        print(f"hello from {rank} of {os.environ['WORLD_SIZE']}", flush=True)
        save_result({"rank": rank, "argv": sys.argv[1:]})
    """)
    result = hd.launch(script, ["--x", "1"], nproc_per_node=2, timeout_s=120)
    assert result.returncode == 0 and result.wall_s > 0
    assert result.results == {0: {"rank": 0, "argv": ["--x", "1"]}, 1: {"rank": 1, "argv": ["--x", "1"]}}
    assert result.lines("[rank1]:") == ["[rank1]:hello from 1 of 2"]
    assert "[rank0]:hello from 0 of 2" in capsys.readouterr().out


@pytest.mark.slow
def test_launch_names_the_failing_rank(tmp_path):
    script = write_script(tmp_path, """
        import os
        if os.environ["RANK"] == "1":
            raise SystemExit("rank one gave up")
    """)
    with pytest.raises(RuntimeError, match=r"(?s)job.py failed.*rank one gave up"):
        hd.launch(script, echo=False, timeout_s=120)


@pytest.mark.slow
def test_launch_kills_a_hung_job(tmp_path):
    script = write_script(tmp_path, """
        import time
        print("about to hang", flush=True)
        time.sleep(600)
    """)
    with pytest.raises(TimeoutError, match="timeout_s=8"):
        hd.launch(script, echo=False, timeout_s=8)


GROUP_JOB = """
    import sys
    import torch, torch.distributed as dist
    from helpers.dist import save_result
    dist.init_process_group("gloo")
    total = torch.tensor([dist.get_rank() + 1.0])
    dist.all_reduce(total)  # a collective proves each job got a working process group
    print(f"{sys.argv[1]} sum={total.item():g}", flush=True)
    save_result({"job": sys.argv[1], "sum": total.item()})
    dist.destroy_process_group()
"""


@pytest.mark.slow
def test_launch_sequence_runs_each_job_in_its_own_process_group(tmp_path):
    script = write_script(tmp_path, GROUP_JOB)
    runs = hd.launch_sequence([(script, ["first"]), (script, ["second"]), (script, ["third"])], timeout_s=120)
    assert [run.results for run in runs] == [{r: {"job": name, "sum": 3.0} for r in (0, 1)}
                                             for name in ("first", "second", "third")]
    assert [sorted(run.log) for run in runs] == [[f"[rank{r}]:{name} sum=3" for r in (0, 1)]
                                                 for name in ("first", "second", "third")]
    assert all(run.wall_s > 0 and run.returncode == 0 for run in runs)


@pytest.mark.slow
def test_launch_sequence_reports_the_failing_job(tmp_path):
    good = write_script(tmp_path, GROUP_JOB)
    bad = tmp_path / "bad.py"
    bad.write_text("raise SystemExit('the second job gave up')\n")
    with pytest.raises(RuntimeError, match=r"(?s)job.py \+ bad.py failed.*the second job gave up"):
        hd.launch_sequence([(good, ["first"]), (bad, [])], timeout_s=120)


def test_launch_sequence_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="at least one"):
        hd.launch_sequence([])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        hd.launch_sequence([(tmp_path / "missing.py", [])])


def test_split_log_follows_each_ranks_markers():
    log = ["torchrun says hi", "[rank0]:=== mllab job 0: a.py", "[rank0]:a0", "[rank1]:=== mllab job 0: a.py",
           "[rank0]:=== mllab job 1: b.py", "[rank1]:a1", "[rank0]:b0", "[rank1]:=== mllab job 1: b.py", "[rank1]:b1"]
    assert hd._split_log(log, 2) == [["[rank0]:a0", "[rank1]:a1"], ["[rank0]:b0", "[rank1]:b1"]]


def test_launch_rejects_bad_input(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        hd.launch(tmp_path / "missing.py")
    script = write_script(tmp_path, "print(1)")
    with pytest.raises(ValueError, match="timeout_s"):
        hd.launch(script, timeout_s=0)


def test_stop_tolerates_a_finished_process():
    import subprocess

    proc = subprocess.Popen([sys.executable, "-c", "pass"], start_new_session=True)
    proc.wait()
    hd._stop(proc)  # already gone: no error


def test_stop_escalates_to_sigkill():
    import subprocess

    proc = subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                             "print('ready', flush=True); time.sleep(60)"],
                            start_new_session=True, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    hd._stop(proc)
    assert proc.returncode == -9


def test_save_result_without_launch_is_a_no_op(monkeypatch):
    monkeypatch.delenv(hd.RESULTS_ENV, raising=False)
    assert hd.save_result({"a": 1}) is None


def test_save_result_writes_per_rank_json(monkeypatch, tmp_path):
    monkeypatch.setenv(hd.RESULTS_ENV, str(tmp_path))
    monkeypatch.setenv("RANK", "3")
    path = hd.save_result({"a": [1, 2]})
    assert path == tmp_path / "rank3.json"
    assert json.loads(path.read_text()) == {"a": [1, 2]}
    assert hd._read_results(tmp_path) == {3: {"a": [1, 2]}}


# ---- ring all-reduce -------------------------------------------------------------------------------


def _ring_worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    results = {}
    for n in (1, 7, 1000):  # fewer elements than ranks, uneven chunks, even-ish chunks
        gen = torch.Generator().manual_seed(rank)
        ints = torch.randint(-50, 50, (n,), generator=gen)
        floats = torch.randn(3, n, generator=gen)
        ring_ints, ring_floats, ref_ints, ref_floats = ints.clone(), floats.clone(), ints.clone(), floats.clone()
        sent = hd.ring_all_reduce(ring_ints)
        hd.ring_all_reduce(ring_floats)
        dist.all_reduce(ref_ints)
        dist.all_reduce(ref_floats)
        results[n] = {"sent": sent, "nbytes": ints.numel() * ints.element_size(),
                      "ints_equal": bool(torch.equal(ring_ints, ref_ints)),
                      "floats_close": bool(torch.allclose(ring_floats, ref_floats, atol=1e-5))}
    with open(os.path.join(out_dir, f"{rank}.json"), "w") as f:
        json.dump(results, f)
    dist.destroy_process_group()


@pytest.mark.slow
def test_ring_all_reduce_matches_dist_all_reduce_on_three_ranks(tmp_path):
    world = 3
    mp.spawn(_ring_worker, args=(world, str(tmp_path / "init"), str(tmp_path)), nprocs=world, join=True)
    per_rank = [json.loads((tmp_path / f"{r}.json").read_text()) for r in range(world)]
    for results in per_rank:
        for n, r in results.items():
            assert r["ints_equal"] and r["floats_close"], n
    total_sent = {n: sum(r[n]["sent"] for r in per_rank) for n in per_rank[0]}
    nbytes = {n: per_rank[0][n]["nbytes"] for n in per_rank[0]}
    for n in total_sent:  # all ranks together send 2(N-1) buffers, whatever the chunking
        assert total_sent[n] == 2 * (world - 1) * nbytes[n]
    assert per_rank[0]["1000"]["sent"] == pytest.approx(hd.ring_bytes_per_rank(8000, world), rel=0.01)


def test_ring_all_reduce_single_rank_sends_nothing(tmp_path):
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'init'}", rank=0, world_size=1)
    try:
        t = torch.arange(5.0)
        assert hd.ring_all_reduce(t) == 0
        assert torch.equal(t, torch.arange(5.0))
        with pytest.raises(ValueError, match="contiguous"):
            hd.ring_all_reduce(torch.zeros(4, 4).t())
        with pytest.raises(ValueError, match="contiguous"):
            hd.ring_all_reduce([1.0, 2.0])
    finally:
        dist.destroy_process_group()


# ---- arithmetic --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("world", "expected"), [(1, 0.0), (2, 100.0), (4, 150.0), (8, 175.0)])
def test_ring_bytes_per_rank(world, expected):
    assert hd.ring_bytes_per_rank(100, world) == pytest.approx(expected)


def test_ring_bytes_rejects_bad_input():
    with pytest.raises(ValueError, match="nbytes"):
        hd.ring_bytes_per_rank(-1, 2)
    with pytest.raises(ValueError, match="world_size"):
        hd.ring_bytes_per_rank(10, 0)


def test_zero_bytes_7b_on_8_gpus():
    gb = {s: hd.zero_bytes_per_gpu(7e9, 8, s)["total"] / 1e9 for s in hd.ZERO_STAGES}
    assert gb[0] == pytest.approx(112.0)
    assert gb[1] == pytest.approx(28 + 84 / 8)
    assert gb[2] == pytest.approx(14 + 98 / 8)
    assert gb[3] == pytest.approx(112 / 8)
    parts = hd.zero_bytes_per_gpu(1, 4, 2)
    assert parts == {"weights": 2.0, "gradients": 0.5, "optimizer": 3.0, "total": 5.5}


@pytest.mark.parametrize(("kwargs", "match"), [({"n_params": 0}, "n_params"), ({"world_size": 0}, "world_size"),
                                               ({"stage": 4}, "stage")])
def test_zero_bytes_rejects_bad_input(kwargs, match):
    args = {"n_params": 1e9, "world_size": 8, "stage": 1, **kwargs}
    with pytest.raises(ValueError, match=match):
        hd.zero_bytes_per_gpu(**args)


def test_data_parallel_step_by_hand():
    # 2(N-1)/N of 1 GB over 10 GB/s with N = 4: 0.15 s, plus 2·3·1 ms latency
    t = hd.data_parallel_step_s(1.0, 1e9, 4, bandwidth_bytes_per_s=1e10, latency_s=1e-3)
    assert t == pytest.approx(1.0 + 0.15 + 0.006)
    assert hd.data_parallel_step_s(1.0, 1e9, 4, bandwidth_bytes_per_s=1e10, overlap=0.1) == pytest.approx(1.05)
    assert hd.data_parallel_step_s(1.0, 1e9, 4, bandwidth_bytes_per_s=1e10, overlap=0.5) == pytest.approx(1.0)
    assert hd.data_parallel_step_s(1.0, 1e9, 1, bandwidth_bytes_per_s=1e10) == 1.0


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"compute_s": -1}, "compute_s"), ({"bandwidth_bytes_per_s": 0}, "bandwidth"),
    ({"overlap": 1.5}, "overlap"), ({"world_size": 0}, "world_size"),
])
def test_data_parallel_step_rejects_bad_input(kwargs, match):
    args = {"compute_s": 1.0, "grad_bytes": 1e6, "world_size": 2, "bandwidth_bytes_per_s": 1e9, **kwargs}
    with pytest.raises(ValueError, match=match):
        hd.data_parallel_step_s(**args)


def test_scaling_efficiency():
    assert hd.scaling_efficiency(10.0, 5.0, 2) == 1.0
    assert hd.scaling_efficiency(10.0, 10.0, 2) == 0.5
    with pytest.raises(ValueError, match="t1_s"):
        hd.scaling_efficiency(0.0, 1.0, 2)
    with pytest.raises(ValueError, match="world_size"):
        hd.scaling_efficiency(1.0, 1.0, -2)


@pytest.mark.parametrize(
    ("n_gpus", "gpu_job"),
    [(0, None), (1, ("nccl", 1, "cuda")), (2, ("nccl", 2, "cuda")), (8, ("nccl", 8, "cuda"))],
)
def test_launch_plan_by_gpu_count(n_gpus, gpu_job):
    plan = hd.plan_launch(n_gpus)
    assert (plan.cpu_demos.backend, plan.cpu_demos.nproc, plan.cpu_demos.device) == ("gloo", 2, "cpu")
    if gpu_job is None:
        assert plan.gpu_demo is None and "no CUDA GPU" in plan.gpu_skip
    else:
        assert (plan.gpu_demo.backend, plan.gpu_demo.nproc, plan.gpu_demo.device) == gpu_job
        assert plan.gpu_skip is None


def test_launch_plan_never_puts_two_nccl_ranks_on_one_gpu():
    for n_gpus in range(1, 9):
        assert hd.plan_launch(n_gpus).gpu_demo.nproc <= n_gpus


@pytest.mark.parametrize(("n_gpus", "cpu_ranks"), [(-1, 2), (1.0, 2), (True, 2), (0, 0)])
def test_launch_plan_rejects_bad_counts(n_gpus, cpu_ranks):
    with pytest.raises(ValueError):
        hd.plan_launch(n_gpus, cpu_ranks=cpu_ranks)


@pytest.mark.slow
def test_a_sequence_killed_for_time_says_where_each_rank_was(tmp_path):
    fine = write_script(tmp_path, """
        print("done", flush=True)
    """, name="fine.py")
    stuck = write_script(tmp_path, """
        import time

        def wait_for_a_peer_that_never_comes():
            time.sleep(600)

        wait_for_a_peer_that_never_comes()
    """, name="stuck.py")
    with pytest.raises(TimeoutError) as error:
        hd.launch_sequence([(fine, []), (stuck, [])], echo=False, timeout_s=15)
    message = str(error.value)
    assert "where each rank was" in message
    for rank in (0, 1):
        assert f'[rank{rank}]:  File "{stuck}", line 5 in wait_for_a_peer_that_never_comes' in message
