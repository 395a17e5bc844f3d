import os
import platform
import random
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from helpers import device

no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the behaviour without a CUDA GPU")


@pytest.fixture
def fake_cuda(monkeypatch):
    synced = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "synchronize", synced.append)
    return synced


@pytest.fixture
def no_torch(monkeypatch):
    def missing():
        raise ImportError("No module named 'torch'")

    monkeypatch.setattr(device, "_torch", missing)


def draws():
    return torch.rand(3), np.random.rand(3), random.random()


def test_seed_everything_makes_draws_reproducible(monkeypatch):
    monkeypatch.setenv("PYTHONHASHSEED", "unset")
    device.seed_everything(7)
    first = draws()
    device.seed_everything(7)
    second = draws()
    assert torch.equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    assert first[2] == second[2]
    assert os.environ["PYTHONHASHSEED"] == "7"


def test_seed_everything_different_seeds_differ():
    device.seed_everything(1)
    first = draws()
    device.seed_everything(2)
    assert not torch.equal(first[0], draws()[0])


def test_seed_everything_seeds_keras_on_tensorflow_with_its_own_function(monkeypatch):
    seeds = []
    fake_keras = SimpleNamespace(
        utils=SimpleNamespace(set_random_seed=seeds.append), backend=SimpleNamespace(backend=lambda: "tensorflow")
    )
    monkeypatch.setitem(sys.modules, "keras", fake_keras)
    device.seed_everything(3)
    assert seeds == [3]


SEED_KERAS_ON_TORCH = """
import os, sys
os.environ["KERAS_BACKEND"] = "torch"
import keras
from helpers.device import seed_everything

def draw():
    seed_everything(5)
    layer = keras.layers.Dense(4)
    layer.build((None, 3))
    return keras.ops.convert_to_numpy(layer.kernel), keras.ops.convert_to_numpy(keras.random.normal((3,)))

first, second = draw(), draw()
assert all((a == b).all() for a, b in zip(first, second)), "not reproducible"
print("tensorflow imported:", "tensorflow" in sys.modules)
"""


def test_seed_everything_seeds_keras_on_torch_without_importing_tensorflow():
    """keras.utils.set_random_seed would import TensorFlow here; seed_everything does not, and still seeds."""
    import subprocess

    result = subprocess.run([sys.executable, "-c", SEED_KERAS_ON_TORCH], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "tensorflow imported: False" in result.stdout


def test_seed_everything_seeds_tensorflow_without_keras(monkeypatch):
    seeds = []
    monkeypatch.delitem(sys.modules, "keras", raising=False)
    monkeypatch.setitem(
        sys.modules, "tensorflow", SimpleNamespace(random=SimpleNamespace(set_seed=seeds.append))
    )
    device.seed_everything(4)
    assert seeds == [4]


@pytest.mark.parametrize("seed", ["1", 1.0, True, None])
def test_seed_everything_rejects_non_int(seed):
    with pytest.raises(TypeError, match="seed"):
        device.seed_everything(seed)


@pytest.mark.parametrize("seed", [-1, 2**32])
def test_seed_everything_rejects_out_of_range(seed):
    with pytest.raises(ValueError, match="seed"):
        device.seed_everything(seed)


@no_gpu
def test_without_gpu_pick_device_is_cpu_and_cuda_is_refused():
    assert not device.cuda_available()
    assert device.pick_device() == torch.device("cpu")
    assert device.pick_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="prefer='cuda'"):
        device.pick_device("cuda")


@no_gpu
def test_without_gpu_skip_reason_is_a_sentence():
    reason = device.gpu_skip_reason()
    assert isinstance(reason, str)
    assert "no CUDA GPU" in reason


def test_pick_device_rejects_unknown_kind():
    with pytest.raises(ValueError, match="prefer"):
        device.pick_device("tpu")


def test_pick_device_prefers_cuda_when_present(fake_cuda):
    assert device.cuda_available()
    assert device.pick_device() == torch.device("cuda")
    assert device.gpu_skip_reason() is None


def test_gpu_skip_reason_without_torch(no_torch):
    assert "PyTorch is not installed" in device.gpu_skip_reason()


@no_gpu
def test_synchronize_is_a_no_op_on_cpu():
    assert device.synchronize() is None
    assert device.synchronize("cpu") is None


def test_synchronize_without_torch_imported(monkeypatch):
    monkeypatch.delitem(sys.modules, "torch")
    assert device.synchronize() is None


def test_synchronize_waits_only_for_cuda_devices(fake_cuda):
    cuda0 = torch.device("cuda", 0)
    for target in (None, "cpu", cuda0, "cuda:1", torch.device("cpu")):
        device.synchronize(target)
    assert fake_cuda == [None, cuda0, "cuda:1"]


def test_describe_hardware_reports_strings():
    info = device.describe_hardware()
    assert {"python", "cpu", "logical_cores", "torch", "numpy", "device", "gpu"} <= set(info)
    assert all(isinstance(value, str) for value in info.values())
    assert info["python"] == platform.python_version()
    assert info["logical_cores"] == str(os.cpu_count())
    assert info["torch"] == torch.__version__
    assert info["memory"].endswith(" GiB")


def test_describe_hardware_with_a_gpu(fake_cuda, monkeypatch):
    props = SimpleNamespace(name="Fake GPU", total_memory=80 * 2**30)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: props)
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    info = device.describe_hardware()
    assert (info["device"], info["gpu"], info["cuda"]) == ("cuda", "Fake GPU, 80 GiB", "12.8")


def test_describe_hardware_without_torch(no_torch):
    info = device.describe_hardware()
    assert "torch" not in info
    assert "python" in info


def test_describe_hardware_falls_back_without_cpuinfo_or_sysconf(monkeypatch):
    def unreadable(*args, **kwargs):
        raise OSError("no /proc here")

    def unsupported(name):
        raise ValueError(name)

    monkeypatch.setattr(device, "open", unreadable, raising=False)
    monkeypatch.setattr(os, "sysconf", unsupported)
    info = device.describe_hardware()
    assert info["cpu"] == (platform.processor() or platform.machine())
    assert "memory" not in info


def test_cpu_flags_reads_proc_cpuinfo(monkeypatch, tmp_path):
    fake = tmp_path / "cpuinfo"
    fake.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx512_bf16\nbugs\t: none\n")
    real_open = open
    monkeypatch.setattr(device, "open", lambda path, *a, **k: real_open(fake, *a, **k), raising=False)
    assert device.cpu_flags() == {"fpu", "sse2", "avx512_bf16"}


def test_cpu_flags_empty_without_cpuinfo(monkeypatch):
    def unreadable(*args, **kwargs):
        raise OSError("no /proc here")

    monkeypatch.setattr(device, "open", unreadable, raising=False)
    assert device.cpu_flags() == set()


def test_cpu_flags_empty_when_no_flags_line(monkeypatch, tmp_path):
    fake = tmp_path / "cpuinfo"
    fake.write_text("processor\t: 0\n")
    real_open = open
    monkeypatch.setattr(device, "open", lambda path, *a, **k: real_open(fake, *a, **k), raising=False)
    assert device.cpu_flags() == set()


def test_use_threads_sets_torch_and_blas_pools():
    from threadpoolctl import threadpool_info, threadpool_limits

    before = torch.get_num_threads()
    with threadpool_limits(limits=None):  # restores the BLAS pools on exit
        try:
            device.use_threads(1)
            assert torch.get_num_threads() == 1
            assert all(pool["num_threads"] == 1 for pool in threadpool_info())
        finally:
            torch.set_num_threads(before)


@pytest.mark.parametrize("n", [0, -1, 1.0, True, "2"])
def test_use_threads_rejects_bad_counts(n):
    with pytest.raises(ValueError, match="n must be"):
        device.use_threads(n)


def test_derive_seeds_keeps_seed_zero_and_moves_other_seeds():
    assert device.derive_seeds(0, 3) == [0, 1, 2]
    assert device.derive_seeds(0, 2, offset=1000) == [1000, 1001]
    assert device.derive_seeds(2, 2, offset=1000) == [21000, 21001]
    assert not set(device.derive_seeds(1, 50)) & set(device.derive_seeds(2, 50))


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [((-1, 2), {}, "seed"), ((0, 2.0), {}, "n"), ((0, 2), {"offset": -5}, "offset"),
     ((0, 2), {"offset": 9_999}, "below"), ((True, 2), {}, "seed")],
)
def test_derive_seeds_rejects_bad_arguments(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        device.derive_seeds(*args, **kwargs)


def test_cpp_compiler_follows_the_path(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("CXX", raising=False)
    assert device.cpp_compiler() is None
    fake = tmp_path / "clang++"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    assert device.cpp_compiler() == str(fake)
