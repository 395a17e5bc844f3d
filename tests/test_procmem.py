import io
import os
import pickle
import sys

import numpy as np
import pytest

from helpers import procmem
from helpers.procmem import PeakRSS, measure, peak_rss_mb

LINUX_PROC = os.path.exists("/proc/self/status")


def allocate_and_touch(mib: int) -> float:
    """Module-level, so a fresh process can import it: touches `mib` MiB and frees them."""
    block = np.ones(mib * procmem.MIB // 8)
    return float(block.sum())


def returns_a_lambda():
    return lambda: None


# ---- reading the counters --------------------------------------------------------------------------


def test_status_mib_reads_a_status_file(tmp_path):
    status = tmp_path / "status"
    status.write_text("Name:\tpython\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\n", encoding="ascii")
    assert procmem.status_mib("VmRSS", str(status)) == 100.0
    assert procmem.status_mib("VmHWM", str(status)) == 200.0
    assert procmem.status_mib("VmSwap", str(status)) is None


def test_status_mib_is_none_without_the_file(tmp_path):
    assert procmem.status_mib("VmRSS", str(tmp_path / "missing")) is None


@pytest.mark.parametrize("field", ["", None, 3])
def test_status_mib_rejects_bad_fields(field):
    with pytest.raises(TypeError, match="field"):
        procmem.status_mib(field)


@pytest.mark.skipif(not LINUX_PROC, reason="/proc/self/status exists on Linux only")
def test_status_mib_of_this_process_is_positive():
    assert procmem.status_mib("VmRSS") > 1
    assert procmem.process_rss_mib() > 1


def test_maxrss_mib_is_positive():
    assert procmem.maxrss_mib() > 1


def test_maxrss_mib_units_on_macos(monkeypatch):
    linux_value = procmem.maxrss_mib()
    monkeypatch.setattr(sys, "platform", "darwin")  # macOS reports bytes, Linux kilobytes
    assert procmem.maxrss_mib() == pytest.approx(linux_value / 1024, rel=0.05)


def test_maxrss_mib_without_resource_module(monkeypatch):
    monkeypatch.setitem(sys.modules, "resource", None)  # `import resource` now raises ImportError
    with pytest.raises(RuntimeError, match="resource"):
        procmem.maxrss_mib()


def test_process_rss_falls_back_to_the_peak(monkeypatch):
    monkeypatch.setattr(procmem, "status_mib", lambda field, path=procmem.STATUS_FILE: None)
    assert procmem.process_rss_mib() == pytest.approx(procmem.maxrss_mib(), rel=0.05)


def test_reset_peak_fails_where_the_file_cannot_be_written(tmp_path):
    assert procmem.reset_peak(str(tmp_path)) is False  # a directory cannot be opened for writing


def test_reset_peak_needs_a_vmhwm_counter(tmp_path, monkeypatch):
    monkeypatch.setattr(procmem, "status_mib", lambda field, path=procmem.STATUS_FILE: None)
    assert procmem.reset_peak(str(tmp_path / "clear_refs")) is False


@pytest.mark.skipif(not LINUX_PROC, reason="the peak counter can be reset on Linux only")
def test_reset_peak_on_linux_lowers_the_high_water_mark():
    allocate_and_touch(64)
    before = procmem.status_mib("VmHWM")
    assert procmem.reset_peak() is True
    assert procmem.status_mib("VmHWM") < before


# ---- the child side, run in this process --------------------------------------------------------------


def test_call_and_measure_counts_the_call_not_the_baseline():
    report = procmem._call_and_measure(allocate_and_touch, (32,), {}, ("json",), 2)
    assert isinstance(report, PeakRSS)
    assert report.result == 32 * procmem.MIB // 8
    assert len(report.times_s) == 2
    assert report.seconds == pytest.approx(sum(report.times_s) / 2)  # the median of two
    assert report.baseline_mib > 0
    if LINUX_PROC:
        assert report.method == procmem.METHOD_HWM
        assert report.peak_mib > 28


def test_call_and_measure_falls_back_to_maxrss(monkeypatch):
    monkeypatch.setattr(procmem, "reset_peak", lambda path=procmem.CLEAR_REFS_FILE: False)
    report = procmem._call_and_measure(sum, ([1, 2, 3],), {}, ())
    assert report.result == 6
    assert report.method == procmem.METHOD_MAXRSS
    assert report.peak_mib >= 0


def _run_child(fn, args=(), kwargs=None):
    stdin = io.BytesIO(pickle.dumps((list(sys.path), pickle.dumps((fn, args, kwargs or {}, (), 1)))))
    stdout = io.BytesIO()
    procmem.child_main(stdin, stdout)
    return pickle.loads(stdout.getvalue())


def test_child_main_reports_the_result():
    status, report = _run_child(max, (3, 7))
    assert status == "ok"
    assert report.result == 7


def test_child_main_reports_exceptions():
    status, error, trace = _run_child(int, ("not a number",))
    assert status == "error"
    assert isinstance(error, ValueError)
    assert "ValueError" in trace


def test_child_main_reports_an_unpicklable_result():
    status, error, _ = _run_child(returns_a_lambda)
    assert status == "error"
    assert isinstance(error, TypeError)
    assert "could not be pickled" in str(error)


# ---- measure in a fresh process ---------------------------------------------------------------------


def test_measure_runs_in_a_fresh_process_and_sees_the_allocation():
    report = measure(allocate_and_touch, (48,), preload=["json"], repeats=2)
    assert report.result == 48 * procmem.MIB // 8
    assert len(report.times_s) == 2
    assert report.seconds > 0
    assert report.peak_mib > 40  # 48 MiB of ones, seen whoever allocated them


def test_peak_rss_mb_returns_result_and_peak():
    result, peak = peak_rss_mb(allocate_and_touch, 16)
    assert result == 16 * procmem.MIB // 8
    assert peak > 12


def test_measure_reraises_the_functions_exception():
    with pytest.raises(ValueError, match="invalid literal"):
        measure(int, ("not a number",))


def test_measure_reports_a_crashed_process():
    with pytest.raises(RuntimeError, match="exited with code 3"):
        measure(os._exit, (3,))


def test_measure_rejects_functions_from_main():
    def local():
        return 1

    local.__module__ = "__main__"
    with pytest.raises(ValueError, match="__main__"):
        measure(local)


def test_measure_rejects_unpicklable_calls():
    with pytest.raises(TypeError, match="picklable"):
        measure(len, (lambda: 0,))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"fn": 3}, TypeError, "callable"),
        ({"fn": len, "kwargs": [("a", 1)]}, TypeError, "kwargs"),
        ({"fn": len, "preload": "numpy"}, TypeError, "preload"),
        ({"fn": len, "preload": ["numpy", ""]}, TypeError, "preload"),
        ({"fn": len, "repeats": 0}, ValueError, "repeats"),
        ({"fn": len, "repeats": True}, ValueError, "repeats"),
    ],
)
def test_measure_validates_its_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        measure(**kwargs)
