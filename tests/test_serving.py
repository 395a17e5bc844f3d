import os
import signal
import subprocess
import sys
import time

import pytest

from helpers import service_app, serving
from helpers.models import mlp

APP = "helpers.service_app:app"


@pytest.fixture(scope="module")
def model_env(tmp_path_factory):
    path = service_app.save_model(mlp(64, [16], 10), tmp_path_factory.mktemp("m") / "m.safetensors", version="s1")
    return {service_app.MODEL_PATH_ENV: str(path)}


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    with open(f"/proc/{pid}/stat") as f:  # a zombie has exited; only its parent has not reaped it
        return f.read().split()[2] == "Z"


def test_server_starts_serves_a_load_and_stops(model_env):
    payloads = [{"features": [float(i % 17)] * 64} for i in range(40)]
    with serving.start_server(APP, env=model_env) as server:
        assert 0 < server.alive_s <= server.ready_s
        result = serving.load_test(server.url + "/predict", payloads, concurrency=4)
        port, pid = server.port, server.pid
    assert len(result.latencies_s) == 40 and (result.latencies_s > 0).all()
    assert result.status_counts == {200: 40} and result.error_rate == 0
    summary = result.summary()
    assert summary["p50_ms"] <= summary["p95_ms"] <= summary["p99_ms"]
    assert not serving.port_in_use(port) and _gone(pid)


def test_server_stops_when_the_block_raises(model_env):
    with pytest.raises(RuntimeError, match="boom"), serving.start_server(APP, env=model_env) as server:
        raise RuntimeError("boom")
    assert server.process.poll() is not None and not serving.port_in_use(server.port)


def test_server_dies_with_a_killed_parent(model_env, tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(
        "import sys, time\nfrom helpers import serving\n"
        f"s = serving.start_server({APP!r}, env={model_env!r})\n"
        "print(s.pid, s.port, flush=True)\ntime.sleep(60)\n")
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    child_pid, port = map(int, parent.stdout.readline().split())
    assert serving.port_in_use(port)
    parent.send_signal(signal.SIGKILL)  # no atexit, no finally: only the kernel's death signal is left
    parent.wait()
    deadline = time.time() + 15
    while time.time() < deadline and not _gone(child_pid):
        time.sleep(0.1)
    assert _gone(child_pid) and not serving.port_in_use(port)


def test_a_crashing_app_reports_its_log():
    with pytest.raises(RuntimeError, match="exited"):
        serving.start_server("helpers.no_such_module:app", timeout_s=30)


@pytest.mark.parametrize("kwargs", [{"app": "no-colon"}, {"app": APP, "timeout_s": 0}])
def test_start_server_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        serving.start_server(**kwargs)


def test_load_test_rejects_bad_arguments():
    with pytest.raises(ValueError):
        serving.load_test("http://127.0.0.1:1/", [{}], concurrency=0)
    with pytest.raises(ValueError):
        serving.load_test("http://127.0.0.1:1/", [], concurrency=1)


def test_free_port_is_free():
    assert not serving.port_in_use(serving.free_port())
