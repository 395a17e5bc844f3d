"""The stress run: every notebook in fast mode under conditions a learner's machine may have.

Conditions (each a full nbval run of the fast notebooks, like ``make test``):

- ``one core``: the run pinned to CPU 0 (``sched_setaffinity``, inherited by kernels and the
  processes they start): a machine half as fast, with multi-process jobs sharing one core;
- ``seed 1`` and ``seed 2``: ``SEED`` injected next to ``FAST``, so every seeded experiment changes;
- ``busy CPU``: a CPU-bound process spins beside the run for its whole length.

Every claim must pass under every condition. The report (Markdown and JSON) lists each notebook ×
condition with pass/fail and its wall time.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from helpers.config import REPO_ROOT
from tools.notebooks import course_notebooks, prepare_fast

CAP_S = 240  # a runaway notebook under stress (the fast target is 30 s on an idle 2-core machine)


@dataclass(frozen=True)
class Condition:
    """One adverse condition of the stress run."""

    name: str
    seed: int = 0
    one_core: bool = False
    busy: bool = False


CONDITIONS = (
    Condition("one core", one_core=True),
    Condition("seed 1", seed=1),
    Condition("seed 2", seed=2),
    Condition("busy CPU", busy=True),
)


def _spin() -> None:  # pragma: no cover - runs in the background process
    while True:
        pass


def _pin_to_first_cpu() -> None:  # pragma: no cover - runs in the child before exec
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


def pytest_command(folder: Path, durations: Path, *, workers: str) -> list[str]:
    """The nbval command ``make test`` uses, on ``folder``, with ``workers`` xdist processes."""
    return [sys.executable, "-m", "pytest", str(folder), "-q", "-p", "no:cacheprovider", "-p", "tools.nbtiming",
            "--nbval-lax", "--nbval-current-env", "--nbval-cell-timeout=600", f"--nb-cap={CAP_S}",
            f"--nb-durations={durations}", "-n", workers, "--dist", "loadfile",
            f"--rootdir={REPO_ROOT}", "-c", str(REPO_ROOT / "pyproject.toml")]


def condition_folder(condition: Condition, out: Path) -> Path:
    """Where the notebooks prepared for ``condition`` and its report live."""
    return out / condition.name.replace(" ", "-")


def prepare(condition: Condition, notebooks: list[Path], out: Path) -> None:
    """Write the fast copies for ``condition`` (its SEED injected) into an emptied folder; nothing is executed.

    The folder is emptied first: the run executes every notebook in it, and copies left by an earlier
    stress run of other notebooks would run again.
    """
    folder = condition_folder(condition, out)
    shutil.rmtree(folder, ignore_errors=True)
    prepare_fast(folder, notebooks, parameters={"SEED": condition.seed})


def run_condition(condition: Condition, out: Path) -> dict:
    """Run the notebooks prepared for ``condition`` and return the nbtiming report."""
    folder = condition_folder(condition, out)
    durations = folder / "durations.json"
    durations.unlink(missing_ok=True)
    if condition.one_core and not hasattr(os, "sched_setaffinity"):
        return {"skipped": "this platform cannot pin a process to one core (no sched_setaffinity)"}
    spinner = multiprocessing.get_context("spawn").Process(target=_spin, daemon=True) if condition.busy else None
    if spinner:
        spinner.start()
    start = time.perf_counter()
    try:
        workers = "0" if condition.one_core else "auto"
        log = (folder / "pytest.log").open("w")
        subprocess.run(pytest_command(folder, durations, workers=workers), cwd=REPO_ROOT, stdout=log,
                       stderr=subprocess.STDOUT, preexec_fn=_pin_to_first_cpu if condition.one_core else None,
                       env={**os.environ, "MLLAB_PROGRESS": "0"}, check=False)
    finally:
        if spinner:
            spinner.terminate()
            spinner.join()
    report = json.loads(durations.read_text()) if durations.is_file() else {"seconds": {}, "failed": []}
    report["wall_s"] = round(time.perf_counter() - start, 1)
    return report


def table(results: dict[str, dict], notebooks: list[str]) -> str:
    """Markdown: one row per notebook, one column per condition (✔/✘ and seconds)."""
    names = list(results)
    lines = ["| notebook | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for nb in notebooks:
        cells = []
        for name in names:
            result = results[name]
            if "skipped" in result:
                cells.append("not run")
            elif nb not in result["seconds"]:
                cells.append("✘ did not run")
            else:
                mark = "✘" if nb in result["failed"] else "✔"
                cells.append(f"{mark} {result['seconds'][nb]:.1f} s")
        lines.append(f"| {nb} | " + " | ".join(cells) + " |")
    totals = [results[n]["skipped"] if "skipped" in results[n] else f"{results[n]['wall_s']:.0f} s" for n in names]
    lines.append("| whole run | " + " | ".join(totals) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "build" / "stress")
    parser.add_argument("--conditions", nargs="*", default=[c.name for c in CONDITIONS],
                        help="which conditions to run (default: all)")
    parser.add_argument("names", nargs="*", help="notebook stems (default: all)")
    args = parser.parse_intermixed_args(argv)
    known = {c.name: c for c in CONDITIONS}
    unknown = sorted(set(args.conditions) - set(known))
    if unknown:
        parser.error(f"unknown conditions {unknown}; choose from {sorted(known)}")
    notebooks = [p for p in course_notebooks() if not args.names or p.stem in args.names]
    if not notebooks:
        parser.error(f"no notebook matches {args.names}")
    for name in args.conditions:  # all copies first: edits made during the run do not leak into it
        prepare(known[name], notebooks, args.out)
    results = {}
    for name in args.conditions:
        print(f"stress condition: {name} ...", flush=True)
        results[name] = run_condition(known[name], args.out)
        failed = results[name].get("failed", [])
        print(f"  {name}: {results[name].get('skipped') or f'{len(failed)} failed {failed}'}", flush=True)
    stems = [p.stem for p in notebooks]
    markdown = "# Stress run\n\nFast mode under adverse conditions; every claim must pass in every column.\n\n"
    markdown += table(results, stems) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.md").write_text(markdown, encoding="utf-8")
    (args.out / "report.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    print(markdown)
    all_ran = all("skipped" in r or set(stems) <= set(r["seconds"]) for r in results.values())
    return 0 if all_ran and not any(r.get("failed") for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
