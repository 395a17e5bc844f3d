"""Notebook run times as a benchmark: fast and full mode against their targets, with each run's speed index.

``python -m tools.bench_report [--fast build/fast/durations.json] [--full build/full/durations.json]
[--out build/bench.md]`` prints a markdown table and writes it to ``--out``. It always exits 0: times
are a benchmark to compare machines and changes, not a test (the fast-mode budget of ``make test`` is).

This module also reads the ``durations.json`` files for ``tools.book_pages`` (``load_run``).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from helpers.config import BUILD_DIR

FAST_TARGET_S = 30.0
FULL_TARGET_S = 120.0
"""Per-notebook targets on the reference machine (2 CPU cores)."""

SCALING_NOTE = ("times scale roughly inversely with the speed index: compare machines by "
                "seconds × GFLOP/s")


@dataclass(frozen=True)
class Failure:
    """Where and why a notebook failed: ``cell`` is the execution count (``In [N]``) when known."""

    cell: int | None = None
    error: str = ""
    cell_index: int | None = None


@dataclass(frozen=True)
class Run:
    """One execution of the notebooks (fast or full mode), read from its ``durations.json``."""

    mode: str
    seconds: dict[str, float] = field(default_factory=dict)
    failed: dict[str, Failure] = field(default_factory=dict)
    speed_index_gflops: float | None = None
    found: bool = False
    jobs: int | None = None


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def load_run(path: Path | None, mode: str) -> Run:
    """Read a ``durations.json``; a missing file gives an empty run.

    Accepted formats: ``{"mode", "speed_index_gflops", "seconds": {stem: s}, "failed": ...}`` where
    ``failed`` is ``{stem: {"cell", "error"}}`` or a list of stems; the older
    ``{"fast": bool, "seconds": {...}}``; and the oldest, flat ``{stem: seconds}``.
    """
    if path is None or not Path(path).is_file():
        return Run(mode)
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(data).__name__}")
    if "seconds" not in data:  # the flat format: every value is a time
        seconds = {str(k): float(v) for k, v in data.items() if isinstance(v, (int, float))}
        return Run(mode, seconds, found=True)
    if "mode" in data:
        mode = str(data["mode"])
    elif "fast" in data:
        mode = "fast" if data["fast"] else "full"
    seconds = {str(k): float(v) for k, v in (data.get("seconds") or {}).items()}
    raw_failed = data.get("failed") or {}
    failed: dict[str, Failure] = {}
    if isinstance(raw_failed, dict):
        for stem, info in raw_failed.items():
            info = info if isinstance(info, dict) else {"error": str(info)}
            failed[str(stem)] = Failure(_int_or_none(info.get("cell")), str(info.get("error") or ""),
                                        _int_or_none(info.get("cell_index")))
    else:
        failed = {str(stem): Failure() for stem in raw_failed}
    speed = data.get("speed_index_gflops")
    speed = float(speed) if isinstance(speed, (int, float)) and not isinstance(speed, bool) else None
    return Run(mode, seconds, failed, speed, found=True, jobs=_int_or_none(data.get("jobs")))


def format_time(seconds: float | None) -> str:
    """Seconds with one decimal, or an empty string when there is no time."""
    return "" if seconds is None else f"{seconds:.1f}"


def failure_text(failure: Failure, mode: str) -> str:
    """``❌ failed at cell In [N]`` (``in fast mode`` appended for a fast run)."""
    where = f" at cell In [{failure.cell}]" if failure.cell is not None else ""
    return f"❌ failed{where}" + (" in fast mode" if mode == "fast" else "")


def status(stem: str, fast: Run, full: Run) -> str:
    """``❌ failed ...``, ``over target (...)``, ``within target`` or ``not run`` for one notebook."""
    failures = [failure_text(run.failed[stem], run.mode) for run in (full, fast) if stem in run.failed]
    if failures:
        return "; ".join(failures)
    over = [f"{name} {run.seconds[stem]:.0f} s > {target:.0f} s"
            for name, run, target in (("fast", fast, FAST_TARGET_S), ("full", full, FULL_TARGET_S))
            if stem in run.seconds and run.seconds[stem] > target]
    if over:
        return f"over target ({', '.join(over)})"
    if stem in fast.seconds or stem in full.seconds:
        return "within target"
    return "not run"


def speed_index_lines(fast: Run, full: Run) -> list[str]:
    """One markdown list item per run: its speed index (single-core matmul GFLOP/s) or why there is none."""
    lines = []
    for name, run in (("fast", fast), ("full", full)):
        if not run.found:
            text = "not run (no durations.json)"
        elif run.speed_index_gflops is None:
            text = "speed index not recorded"
        else:
            text = f"speed index {run.speed_index_gflops:.1f} GFLOP/s"
        if run.jobs is not None:
            text += f", {run.jobs} notebook{'s' if run.jobs > 1 else ''} at a time"
        lines.append(f"- {name} run: {text}")
    return lines


def notebooks_of(fast: Run, full: Run) -> list[str]:
    """Every notebook stem that either run timed or saw fail, in course (name) order."""
    return sorted(set(fast.seconds) | set(full.seconds) | set(fast.failed) | set(full.failed))


def report(fast: Run, full: Run) -> str:
    """The markdown benchmark table with the speed index of each run."""
    lines = ["# Notebook run times", "",
             f"Targets per notebook on the reference 2-core machine: fast ≤ {FAST_TARGET_S:.0f} s, "
             f"full ≤ {FULL_TARGET_S:.0f} s.", "", *speed_index_lines(fast, full), "",
             f"{SCALING_NOTE}.", "",
             f"| notebook | fast s | fast target {FAST_TARGET_S:.0f} | full s | full target {FULL_TARGET_S:.0f} "
             "| status |",
             "|---|---:|---:|---:|---:|---|"]
    for stem in notebooks_of(fast, full):
        lines.append(f"| {stem} | {format_time(fast.seconds.get(stem))} | {FAST_TARGET_S:.0f} "
                     f"| {format_time(full.seconds.get(stem))} | {FULL_TARGET_S:.0f} | {status(stem, fast, full)} |")
    if not notebooks_of(fast, full):
        lines.append("| (no run found) | | | | | |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Print the benchmark table and write it to ``--out``; always 0."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fast", type=Path, default=BUILD_DIR / "fast" / "durations.json")
    parser.add_argument("--full", type=Path, default=BUILD_DIR / "full" / "durations.json")
    parser.add_argument("--out", type=Path, default=BUILD_DIR / "bench.md")
    args = parser.parse_args(argv)
    text = report(load_run(args.fast, "fast"), load_run(args.full, "full"))
    print(text, end="")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(f"\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
