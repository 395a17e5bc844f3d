"""Peak memory of one call, measured honestly: the peak resident set size (RSS) of a fresh process.

``tracemalloc`` sees only what goes through Python's allocator; pandas' CSV parser, Arrow's memory
pool and most NumPy buffers allocate outside it, so it under-reports exactly the allocations that
matter for data processing. RSS counts every resident page of the process, whoever allocated it.

The method of :func:`measure`:

1. start a fresh Python interpreter (``subprocess``; like the ``spawn`` start method of
   multiprocessing, the default on macOS and Windows, but without re-running the caller's script),
   so nothing allocated by earlier cells is counted and every measurement starts from the same state;
2. in the child, import the function's module and the ``preload`` modules, then read the RSS: the
   **baseline**;
3. reset the peak counter where the OS allows it (Linux: write ``5`` to ``/proc/self/clear_refs``,
   which resets ``VmHWM``), call the function (``repeats`` times), read the peak (``VmHWM``, or
   ``ru_maxrss`` from ``resource.getrusage`` where the counter cannot be reset, as on macOS: then
   the baseline is the high-water mark so far, and a transient peak during the imports can hide
   part of the call's);
4. report **peak − baseline**: the memory the call itself needed, in MiB, and the wall times.

The function runs in another process, so it must be importable there: define it in a module (such
as :mod:`helpers.dataproc`), not in a notebook cell, and pass arguments that can be pickled.
"""

from __future__ import annotations

import os
import pickle
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any, BinaryIO

MIB = 2**20
STATUS_FILE = "/proc/self/status"
CLEAR_REFS_FILE = "/proc/self/clear_refs"
PACKAGE_PARENT = str(Path(__file__).resolve().parent.parent)  # where `import helpers` works
METHOD_HWM = "VmHWM after resetting it through /proc/self/clear_refs (Linux)"
METHOD_MAXRSS = "ru_maxrss: high-water mark since the process started (cannot be reset)"


@dataclass(frozen=True)
class PeakRSS:
    """What :func:`measure` found: the call's result, its peak memory (MiB) and its wall times (s)."""

    result: Any
    peak_mib: float
    baseline_mib: float
    times_s: tuple[float, ...]
    method: str

    @property
    def seconds(self) -> float:
        """Median wall time of the calls."""
        return statistics.median(self.times_s)


def status_mib(field: str, path: str = STATUS_FILE) -> float | None:
    """A memory field of ``/proc/self/status`` (``"VmRSS"``, ``"VmHWM"``) in MiB; None where absent."""
    if not isinstance(field, str) or not field:
        raise TypeError(f"field must be a non-empty str such as 'VmRSS', got {field!r}")
    try:
        with open(path, encoding="ascii") as handle:
            for line in handle:
                name, _, value = line.partition(":")
                if name == field:
                    return float(value.split()[0]) / 1024  # the kernel reports kB
    except OSError:
        return None
    return None


def maxrss_mib() -> float:
    """``ru_maxrss`` of this process in MiB (kilobytes on Linux, bytes on macOS)."""
    try:
        import resource
    except ImportError as error:  # Windows
        raise RuntimeError(
            "peak RSS needs the 'resource' module (Linux, macOS); it is not available on this platform"
        ) from error
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / MIB if sys.platform == "darwin" else peak / 1024


def reset_peak(path: str = CLEAR_REFS_FILE) -> bool:
    """Reset this process's peak-RSS counter (Linux ``VmHWM``); return False where that is impossible."""
    try:
        with open(path, "w", encoding="ascii") as handle:
            handle.write("5")
    except OSError:
        return False
    return status_mib("VmHWM") is not None


def _call_and_measure(
    fn: Callable[..., Any], args: tuple, kwargs: dict, preload: tuple[str, ...], repeats: int = 1
) -> PeakRSS:
    """Runs in the child: baseline after imports, reset the peak, call ``repeats`` times, read the peak."""
    for module in preload:
        import_module(module)
    resettable = reset_peak()
    if resettable:
        baseline, method = status_mib("VmRSS") or 0.0, METHOD_HWM
    else:
        baseline, method = maxrss_mib(), METHOD_MAXRSS
    times = []
    for _ in range(repeats):
        result = None  # free the previous result before the next call
        start = time.perf_counter()
        result = fn(*args, **kwargs)
        times.append(time.perf_counter() - start)
    peak = status_mib("VmHWM") if resettable else None
    if peak is None:
        peak = maxrss_mib()
    return PeakRSS(result, max(0.0, peak - baseline), baseline, tuple(times), method)


def child_main(stdin: BinaryIO, stdout: BinaryIO) -> None:
    """Entry point of the child process: read the pickled call from ``stdin``, write the outcome to ``stdout``.

    The payload is ``(sys.path, pickled (fn, args, kwargs, preload, repeats))``: the parent's import
    path is set first, so the function's module imports here as it did there. The outcome is
    ``("ok", PeakRSS)`` or ``("error", exception, traceback text)``.
    """
    search_path, call = pickle.load(stdin)
    sys.path[:] = [entry for entry in search_path if entry not in sys.path] + sys.path
    try:
        outcome: tuple = ("ok", _call_and_measure(*pickle.loads(call)))
    except BaseException as error:  # report everything, KeyboardInterrupt included, to the parent
        outcome = ("error", error, traceback.format_exc())
    try:
        payload = pickle.dumps(outcome)
    except Exception as error:  # an unpicklable result or exception
        payload = pickle.dumps(("error", TypeError(f"the outcome could not be pickled: {error}"), ""))
    stdout.write(payload)
    stdout.flush()


_CHILD_CODE = (
    "import os, sys\n"
    "out = os.fdopen(os.dup(1), 'wb')\n"
    "os.dup2(2, 1)  # anything the function prints goes to stderr, not into the result\n"
    "sys.stdout = sys.stderr\n"
    "from helpers.procmem import child_main\n"
    "child_main(sys.stdin.buffer, out)\n"
)


def _check_callable(fn: Any) -> None:
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    if getattr(fn, "__module__", None) == "__main__":
        raise ValueError(
            f"fn {getattr(fn, '__qualname__', fn)!r} is defined in __main__ (a notebook or script); a fresh "
            "process cannot import it. Define it in a module, e.g. helpers.dataproc"
        )


def measure(
    fn: Callable[..., Any],
    args: Iterable[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    *,
    preload: Iterable[str] = (),
    repeats: int = 1,
) -> PeakRSS:
    """Call ``fn(*args, **kwargs)`` in a fresh Python process; return its result, peak RSS and times.

    ``peak_mib`` is the peak RSS during the calls minus the RSS before them (after importing
    ``fn``'s module and the ``preload`` modules), so library imports are not counted. With
    ``repeats > 1`` the call is repeated in the same process (the peak is that of the largest call,
    the time the median). Exceptions raised by ``fn`` are re-raised here.
    """
    _check_callable(fn)
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be an int >= 1, got {repeats!r}")
    if kwargs is None:
        kwargs = {}
    if not isinstance(kwargs, Mapping):
        raise TypeError(f"kwargs must be a mapping or None, got {type(kwargs).__name__}")
    if isinstance(preload, str):
        raise TypeError("preload must be an iterable of module names, not one str (wrap it in a list)")
    preload = tuple(preload)
    if not all(isinstance(module, str) and module for module in preload):
        raise TypeError(f"preload must hold non-empty module names (str), got {preload!r}")
    try:
        call = pickle.dumps((fn, tuple(args), dict(kwargs), preload, repeats))
    except (pickle.PicklingError, AttributeError, TypeError) as error:
        raise TypeError(
            "fn and its arguments must be picklable (a module-level function, not a lambda or a nested "
            f"function): {error}"
        ) from error
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [PACKAGE_PARENT, os.environ.get("PYTHONPATH")]))}
    child = subprocess.run(
        [sys.executable, "-c", _CHILD_CODE], input=pickle.dumps((list(sys.path), call)),
        capture_output=True, env=env, check=False,
    )
    if child.returncode != 0 or not child.stdout:
        tail = child.stderr.decode(errors="replace")[-2000:]
        raise RuntimeError(f"the measuring process exited with code {child.returncode}:\n{tail}")
    outcome = pickle.loads(child.stdout)
    if outcome[0] == "error":
        _, error, trace = outcome
        raise error from RuntimeError(f"raised in the measuring process:\n{trace}")
    return outcome[1]


def peak_rss_mb(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, float]:
    """``(fn(*args, **kwargs), peak RSS of the call in MiB)``, measured in a fresh process (see :func:`measure`)."""
    report = measure(fn, args, kwargs)
    return report.result, report.peak_mib


def process_rss_mib() -> float:
    """This process's current RSS in MiB (Linux), or its peak RSS where the current one is not exposed."""
    current = status_mib("VmRSS")
    return current if current is not None else maxrss_mib()

