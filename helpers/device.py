"""One place that picks the device, seeds every framework, and describes the hardware."""

from __future__ import annotations

import os
import platform
import random
import sys
from typing import Any

import numpy as np

DEVICE_ORDER = ("cuda", "mps", "cpu")


def _torch():
    import torch

    return torch


def cuda_available() -> bool:
    """True when PyTorch sees a CUDA GPU."""
    return bool(_torch().cuda.is_available())


def pick_device(prefer: str | None = None) -> Any:
    """Return a ``torch.device``: CUDA, then Apple MPS, then CPU.

    ``prefer`` forces one of ``"cuda"``, ``"mps"`` or ``"cpu"``; asking for one that is not there
    raises ``ValueError`` rather than silently falling back.
    """
    torch = _torch()
    available = {
        "cuda": torch.cuda.is_available(),
        "mps": bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()),
        "cpu": True,
    }
    if prefer is not None:
        if prefer not in available:
            raise ValueError(f"prefer must be one of {DEVICE_ORDER} or None, got {prefer!r}")
        if not available[prefer]:
            raise ValueError(f"prefer={prefer!r} but no {prefer} device is available here")
        return torch.device(prefer)
    return torch.device(next(name for name in DEVICE_ORDER if available[name]))


def gpu_skip_reason() -> str | None:
    """None when a CUDA GPU is present, otherwise a sentence saying why GPU cells are skipped."""
    if not _torch_importable():
        return "PyTorch is not installed, so no CUDA GPU can be used"
    if cuda_available():
        return None
    return "no CUDA GPU is visible (torch.cuda.is_available() is False); running the CPU counterpart"


def _torch_importable() -> bool:
    try:
        _torch()
    except ImportError:
        return False
    return True


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy, and PyTorch / TensorFlow when they are imported.

    Frameworks are seeded only if the notebook has already imported them, so seeding never pays for
    importing TensorFlow. Call it again after a late framework import.
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if not 0 <= seed < 2**32:
        raise ValueError(f"seed must be in [0, 2**32), got {seed}")
    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed)
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        torch.manual_seed(seed)  # seeds CPU and every CUDA device
    if "keras" in sys.modules:
        _seed_keras(sys.modules["keras"], seed)
    elif "tensorflow" in sys.modules:
        sys.modules["tensorflow"].random.set_seed(seed)


def _seed_keras(keras: Any, seed: int) -> None:
    """What ``keras.utils.set_random_seed`` does, without importing TensorFlow for another backend.

    Keras's function seeds TensorFlow whenever it is installed, so on the torch backend it would
    import TensorFlow (seconds, and hundreds of MB) only to seed a library the notebook never uses.
    Python, NumPy and torch are seeded by the caller; here Keras drops its global seed generator,
    which is then recreated from the freshly seeded ``random`` (Keras's function does the same).
    """
    if keras.backend.backend() == "tensorflow" or "tensorflow" in sys.modules:
        keras.utils.set_random_seed(seed)
        return
    from keras.src.backend.common import global_state
    from keras.src.random.seed_generator import GLOBAL_SEED_GENERATOR

    global_state.set_global_attribute(GLOBAL_SEED_GENERATOR, None)


def cpp_compiler() -> str | None:
    """Path of the C++ compiler ``torch.compile``'s CPU backend (Inductor) would use, or None.

    Looks for ``$CXX``, then ``g++``, ``c++``, ``clang++`` and ``cl`` on the PATH. Without one, a CPU
    ``torch.compile`` fails at its first call, so notebooks check first and fall back to eager.
    """
    import shutil

    for name in (os.environ.get("CXX", "g++"), "g++", "c++", "clang++", "cl"):
        found = shutil.which(name) if name else None
        if found:
            return found
    return None


SEED_STRIDE = 10_000


def derive_seeds(seed: int, n: int, *, offset: int = 0) -> list[int]:
    """``n`` seeds for repeated runs, derived from the notebook's ``SEED``.

    ``SEED = 0`` gives ``offset, offset + 1, ...``; every other ``SEED`` moves the whole block
    (``seed * 10_000 + offset + i``), so that a run with another ``SEED`` repeats every experiment
    on fresh draws instead of the same ones.
    """
    for name, value in (("seed", seed), ("n", n), ("offset", offset)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be an int >= 0, got {value!r}")
    if offset + n > SEED_STRIDE:
        raise ValueError(f"offset + n must stay below {SEED_STRIDE} so that blocks of different seeds never overlap")
    return [seed * SEED_STRIDE + offset + i for i in range(n)]


def use_threads(n: int = 1) -> None:
    """Run PyTorch and the NumPy/SciPy/scikit-learn thread pools (BLAS, OpenMP) on ``n`` threads.

    The course's models are small: one thread is about as fast as two, and it stays fast when the
    other core is busy (another notebook, a browser) instead of two threads fighting over one
    core. Notebooks that measure threading itself set their thread counts explicitly.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an int >= 1, got {n!r}")
    from threadpoolctl import threadpool_limits

    _torch().set_num_threads(n)
    threadpool_limits(limits=n)  # process-wide until changed again


def synchronize(device: Any = None) -> None:
    """Wait for queued GPU work (no-op on CPU); call before reading a clock."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return
    if device is None or getattr(device, "type", str(device)).startswith("cuda"):
        torch.cuda.synchronize(device)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> set[str]:
    """The CPU's instruction-set flags from /proc/cpuinfo (for example ``avx512_bf16``, ``amx_bf16``).

    Empty where /proc/cpuinfo is missing (macOS, Windows): callers must treat "unknown" as "absent".
    """
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _memory_gib() -> float | None:
    try:
        pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None
    return pages * page_size / 2**30


def describe_hardware() -> dict[str, str]:
    """Hardware and library versions as a flat dict of strings (for a table or a run report)."""
    info = {
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "cpu": _cpu_model(),
        "logical_cores": str(os.cpu_count()),
        "numpy": np.__version__,
    }
    memory = _memory_gib()
    if memory is not None:
        info["memory"] = f"{memory:.1f} GiB"
    if _torch_importable():
        torch = _torch()
        info["torch"] = torch.__version__
        info["torch_threads"] = str(torch.get_num_threads())
        info["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
        info["device"] = str(pick_device())
        if torch.cuda.is_available():
            props = torch.cuda.get_device_properties(0)
            info["gpu"] = f"{props.name}, {props.total_memory / 2**30:.0f} GiB"
            info["cuda"] = str(torch.version.cuda)
        else:
            info["gpu"] = "none"
    return info
