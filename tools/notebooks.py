"""Find the course notebooks and run them with papermill (fast copies for tests, full runs for the book)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from helpers.config import NOTEBOOKS_DIR, PROGRESS_ENV

KERNEL = "python3"
PAPERMILL_OPTIONS = {"kernel_name": KERNEL, "progress_bar": False}


def course_notebooks(notebooks_dir: Path = NOTEBOOKS_DIR) -> list[Path]:
    """The numbered notebooks, in course order."""
    return sorted(p for p in Path(notebooks_dir).glob("[0-9][0-9]*.ipynb"))


def prepare_fast(out_dir: Path, notebooks: list[Path]) -> list[Path]:
    """Write copies with ``FAST = True`` injected after the parameters cell (nothing is executed)."""
    import papermill as pm

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in notebooks:
        target = out_dir / path.name
        pm.execute_notebook(
            str(path), str(target), parameters={"FAST": True}, prepare_only=True,
            cwd=str(path.parent), log_output=False, **PAPERMILL_OPTIONS,
        )
        written.append(target)
    return written


def execute(out_dir: Path, notebooks: list[Path], *, fast: bool, timeout_s: int) -> dict[str, float]:
    """Execute each notebook with papermill into ``out_dir``; return and save its wall time in seconds."""
    import papermill as pm

    os.environ[PROGRESS_ENV] = "0"
    out_dir.mkdir(parents=True, exist_ok=True)
    durations: dict[str, float] = {}
    for path in notebooks:
        print(f"executing {path.name} ({'fast' if fast else 'full'} mode) ...", flush=True)
        start = time.perf_counter()
        pm.execute_notebook(
            str(path), str(out_dir / path.name), parameters={"FAST": fast},
            cwd=str(path.parent), execution_timeout=timeout_s, **PAPERMILL_OPTIONS,
        )
        durations[path.stem] = round(time.perf_counter() - start, 1)
        print(f"  {path.name}: {durations[path.stem]} s", flush=True)
    (out_dir / "durations.json").write_text(json.dumps({"fast": fast, "seconds": durations}, indent=2))
    return durations


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("action", choices=["prepare-fast", "execute"])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--fast", action="store_true", help="inject FAST = True (execute only)")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    parser.add_argument("names", nargs="*", help="notebook stems to run (default: all)")
    args = parser.parse_intermixed_args(argv)  # names may follow the options
    notebooks = course_notebooks()
    if args.names:
        notebooks = [p for p in notebooks if p.stem in args.names]
        if not notebooks:
            parser.error(f"no notebook matches {args.names}")
    if args.action == "prepare-fast":
        for path in prepare_fast(args.out, notebooks):
            print(f"prepared {path}")
    else:
        execute(args.out, notebooks, fast=args.fast, timeout_s=args.timeout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
