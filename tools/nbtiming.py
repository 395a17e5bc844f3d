"""pytest plugin for the nbval run: per-notebook wall time, a JSON report, and a runaway cap.

Load with ``-p tools.nbtiming``. Run times are a benchmark, not a test: they are written to
``--nb-durations`` with a single-core speed index of the machine (``helpers.bench.matmul_gflops``),
and compared with the target by ``python -m tools.bench_report``. A notebook fails on time only when
its cells (kernel start-up included) take longer than ``--nb-cap`` seconds: a runaway, not a slow
machine. Works under pytest-xdist: each notebook runs in one worker (``--dist loadfile``) and the
controller collects the reports.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest

_worker_seconds: dict[str, float] = defaultdict(float)  # what this process ran (the cap's clock)
_last_item: dict[str, str] = {}
_report_seconds: dict[str, float] = defaultdict(float)  # every notebook's reports (the controller's view)
_failed: set[str] = set()
_speed_index: dict[str, float] = {}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("nbtiming")
    group.addoption("--nb-cap", type=float, default=None,
                    help="fail a notebook whose cells take longer than this many seconds (a runaway)")
    group.addoption("--nb-durations", type=Path, default=None, help="write per-notebook seconds here")


def _is_notebook(path: object) -> bool:
    return str(path).split("::")[0].endswith(".ipynb")


def _notebook(nodeid: str) -> str:
    return Path(nodeid.split("::")[0]).stem


def _is_controller(config: pytest.Config) -> bool:
    return not hasattr(config, "workerinput")


def pytest_sessionstart(session: pytest.Session) -> None:
    if _is_controller(session.config) and session.config.getoption("--nb-durations") is not None:
        from helpers.bench import matmul_gflops

        _speed_index["gflops"] = round(matmul_gflops(), 1)  # before the notebooks load the CPU


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _is_notebook(item.fspath):
            _last_item[_notebook(item.nodeid)] = item.nodeid


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    if not _is_notebook(item.fspath):
        return
    name = _notebook(item.nodeid)
    _worker_seconds[name] += report.duration
    cap = item.config.getoption("--nb-cap")
    is_last = _last_item.get(name) == item.nodeid and report.when == "call"
    if cap is not None and is_last and report.passed and _worker_seconds[name] > cap:
        report.outcome = "failed"
        report.longrepr = (
            f"{name} took {_worker_seconds[name]:.1f} s in fast mode, over the {cap:.0f} s cap for a "
            "runaway notebook (the target is 30 s: make the FAST sizes smaller)"
        )


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if not _is_notebook(report.nodeid):
        return
    name = _notebook(report.nodeid)
    _report_seconds[name] += report.duration
    if report.failed:
        _failed.add(name)


def pytest_sessionfinish(session: pytest.Session) -> None:
    path = session.config.getoption("--nb-durations")
    if path is None or not _report_seconds or not _is_controller(session.config):
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(path.read_text()) if path.is_file() else {}
    seconds = previous.get("seconds", {}) if "seconds" in previous else {}
    seconds.update({name: round(s, 1) for name, s in _report_seconds.items()})
    failed = (set(previous.get("failed", [])) - set(_report_seconds)) | _failed
    report = {"mode": "fast", "speed_index_gflops": _speed_index.get("gflops"),
              "seconds": dict(sorted(seconds.items())), "failed": sorted(failed)}
    path.write_text(json.dumps(report, indent=2))


def pytest_terminal_summary(terminalreporter) -> None:
    if _report_seconds:
        terminalreporter.section("notebook wall time (fast mode; target 30 s on 2 cores)")
        for name, seconds in sorted(_report_seconds.items()):
            mark = "  FAILED" if name in _failed else ""
            terminalreporter.write_line(f"{name:45s} {seconds:7.1f} s{mark}")
        if _speed_index:
            terminalreporter.write_line(f"speed index: {_speed_index['gflops']} GFLOP/s (one core, float64 matmul)")
