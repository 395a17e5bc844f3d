"""pytest plugin for the nbval run: per-notebook wall time, a JSON report, and a time budget.

Load with ``-p tools.nbtiming``. A notebook whose cells (kernel start-up included) take longer than
``--nb-budget`` seconds fails on its last cell with the measured time.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest

_seconds: dict[str, float] = defaultdict(float)
_last_item: dict[str, str] = {}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("nbtiming")
    group.addoption("--nb-budget", type=float, default=None, help="max seconds per notebook")
    group.addoption("--nb-durations", type=Path, default=None, help="write per-notebook seconds here")


def _notebook(item: pytest.Item) -> str:
    return Path(str(item.fspath)).stem


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if str(item.fspath).endswith(".ipynb"):
            _last_item[_notebook(item)] = item.nodeid


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    if not str(item.fspath).endswith(".ipynb"):
        return
    name = _notebook(item)
    _seconds[name] += report.duration
    budget = item.config.getoption("--nb-budget")
    is_last = _last_item.get(name) == item.nodeid and report.when == "call"
    if budget is not None and is_last and report.passed and _seconds[name] > budget:
        report.outcome = "failed"
        report.longrepr = (
            f"{name} took {_seconds[name]:.1f} s in fast mode, over its {budget:.0f} s budget "
            "(make the FAST sizes smaller)"
        )


def pytest_sessionfinish(session: pytest.Session) -> None:
    path = session.config.getoption("--nb-durations")
    if path is None or not _seconds:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(path.read_text()) if path.is_file() else {}
    previous.update({name: round(seconds, 1) for name, seconds in _seconds.items()})
    path.write_text(json.dumps(previous, indent=2, sort_keys=True))


def pytest_terminal_summary(terminalreporter) -> None:
    if _seconds:
        terminalreporter.section("notebook wall time (fast mode)")
        for name, seconds in sorted(_seconds.items()):
            terminalreporter.write_line(f"{name:45s} {seconds:7.1f} s")
