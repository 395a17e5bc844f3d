"""Find the course notebooks and run them with papermill (fast copies for tests, full runs for the book)."""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from helpers.config import NOTEBOOKS_DIR, PROGRESS_ENV, REPO_ROOT

INPUTS_FILE = "inputs.json"
"""Per notebook, the hash of the inputs of its last successful run (for ``--reuse``)."""
KERNEL = "python3"
PAPERMILL_OPTIONS = {"kernel_name": KERNEL, "progress_bar": False}
ERROR_CHARS = 2000
"""How much of a failure's error message is kept (a failed claim names its statement and values)."""


def course_notebooks(notebooks_dir: Path = NOTEBOOKS_DIR) -> list[Path]:
    """The numbered notebooks, in course order."""
    return sorted(p for p in Path(notebooks_dir).glob("[0-9][0-9]*.ipynb"))


def prepare_fast(out_dir: Path, notebooks: list[Path], parameters: dict | None = None) -> list[Path]:
    """Write copies with ``FAST = True`` (and ``parameters``) injected after the parameters cell.

    Nothing is executed: the copies are what the nbval run and the stress run execute.
    """
    import papermill as pm

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in notebooks:
        target = out_dir / path.name
        pm.execute_notebook(
            str(path), str(target), parameters={"FAST": True, **(parameters or {})}, prepare_only=True,
            cwd=str(path.parent), log_output=False, **PAPERMILL_OPTIONS,
        )
        written.append(target)
    return written


def input_hash(notebook: Path, repo_root: Path = REPO_ROOT) -> str:
    """A content hash of everything a notebook's run depends on: the notebook itself, ``helpers/``,
    the scripts it launches (``notebooks/scripts/``, when it mentions them) and the pinned requirements."""
    import hashlib

    text = notebook.read_bytes()
    files = sorted((repo_root / "helpers").rglob("*.py"))
    if b"scripts" in text:
        files += sorted((notebook.parent / "scripts").glob("*.py"))
    files += [repo_root / "requirements.txt", repo_root / "pyproject.toml"]
    digest = hashlib.sha256(text)
    for path in files:
        if path.is_file():
            digest.update(str(path.relative_to(repo_root) if path.is_relative_to(repo_root) else path.name).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def read_stamps(out_dir: Path) -> dict[str, str]:
    """The input hashes of the last successful runs in ``out_dir`` (empty when missing or unreadable)."""
    try:
        stamps = json.loads((out_dir / INPUTS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return stamps if isinstance(stamps, dict) else {}


def reusable(out_dir: Path, notebooks: list[Path], hashes: dict[str, str], mode: str) -> dict[str, float]:
    """The notebooks whose last run in ``out_dir`` succeeded, in ``mode``, with the same input hash:
    their seconds then, by stem. Anything missing or unreadable means "run it again"."""
    from tools.bench_report import load_run

    try:
        previous = load_run(out_dir / "durations.json", mode)
    except ValueError:  # not JSON, or not a record
        return {}
    stamps = read_stamps(out_dir)
    if not previous.found or previous.mode != mode:
        return {}
    return {p.stem: previous.seconds[p.stem] for p in notebooks
            if (out_dir / p.name).is_file() and p.stem in previous.seconds
            and p.stem not in previous.failed and stamps.get(p.stem) == hashes[p.stem]}


@dataclass(frozen=True)
class Outcome:
    """The result of executing one notebook: its wall time, and where and why it failed (if it did)."""

    stem: str
    seconds: float
    cell: int | None = None
    cell_index: int | None = None
    error: str | None = None
    reused: bool = False

    @property
    def failed(self) -> bool:
        return self.error is not None


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _error_text(name: str, message: str) -> str:
    text = _ANSI.sub("", f"{name}: {message}".strip())
    return text if len(text) <= ERROR_CHARS else text[: ERROR_CHARS - 1] + "…"


def _last_started_cell(target: Path) -> tuple[int | None, int | None]:
    """(execution count, index) of the last cell papermill started in a partly written notebook."""
    try:
        cells = json.loads(target.read_text(encoding="utf-8"))["cells"]
    except (OSError, ValueError, KeyError):
        return None, None
    started = [i for i, cell in enumerate(cells) if cell.get("metadata", {}).get("papermill", {}).get("start_time")]
    if not started:
        return None, None
    return cells[started[-1]].get("execution_count"), started[-1]


def execute_one(path: Path, target: Path, *, fast: bool, timeout_s: int) -> Outcome:
    """Execute one notebook with papermill into ``target``; a failure is returned, not raised.

    Papermill writes the partly executed notebook (with the traceback) before it raises, so the book
    can still show what ran.
    """
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    target.unlink(missing_ok=True)  # never leave a previous run's notebook in place of this one
    start = time.perf_counter()
    try:
        pm.execute_notebook(
            str(path), str(target), parameters={"FAST": fast},
            cwd=str(path.parent), execution_timeout=timeout_s, **PAPERMILL_OPTIONS,
        )
    except PapermillExecutionError as error:
        return Outcome(path.stem, round(time.perf_counter() - start, 1), error.exec_count, error.cell_index,
                       _error_text(error.ename, error.evalue))
    except Exception as error:  # a timeout, a dead kernel...: the cell is the last one started
        cell, index = _last_started_cell(target)
        return Outcome(path.stem, round(time.perf_counter() - start, 1), cell, index,
                       _error_text(type(error).__name__, str(error)))
    return Outcome(path.stem, round(time.perf_counter() - start, 1))


def _execute_in_worker(path: Path, target: Path, fast: bool, timeout_s: int) -> Outcome:
    os.environ[PROGRESS_ENV] = "0"
    return execute_one(path, target, fast=fast, timeout_s=timeout_s)


def resolve_jobs(jobs: int | str) -> int:
    """``--jobs`` as a worker count: ``0`` or ``"auto"`` mean one per CPU core."""
    if isinstance(jobs, str):
        jobs = 0 if jobs.strip().lower() == "auto" else int(jobs)
    if jobs < 0:
        raise ValueError(f"jobs must be >= 0 or 'auto', got {jobs}")
    return jobs or os.cpu_count() or 1


def _progress_line(done: int, total: int, outcome: Outcome) -> str:
    line = f"[{done}/{total}] {outcome.stem}: {outcome.seconds:.1f} s"
    if outcome.reused:
        line += " (reused: its inputs have not changed since that run)"
    if outcome.failed:
        where = f" at cell In [{outcome.cell}]" if outcome.cell is not None else ""
        line += f" FAILED{where}: {outcome.error.splitlines()[0] if outcome.error else ''}"
    return line


def execute(out_dir: Path, notebooks: list[Path], *, fast: bool, timeout_s: int, jobs: int | str = 1,
            reuse: bool = False, repo_root: Path = REPO_ROOT) -> dict:
    """Execute every notebook into ``out_dir`` (a failure does not stop the others) and write
    ``out_dir/durations.json``; return what was written.

    With ``reuse``, a notebook whose inputs (``input_hash``) are those of its last successful run in
    ``out_dir`` is not executed again: its executed copy and its time are kept. ``repo_root`` is where
    the inputs (``helpers/``, requirements) are read from.

    ``jobs`` notebooks run at once, each in its own process and kernel (papermill changes the
    process-wide working directory, so threads would race). The record is ``{"mode",
    "speed_index_gflops", "jobs", "seconds": {stem: s}, "failed": {stem: {"cell", "cell_index", "error"}}}``.
    """
    from helpers.bench import matmul_gflops

    os.environ[PROGRESS_ENV] = "0"
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    notebooks = [Path(p).resolve() for p in notebooks]
    workers = min(resolve_jobs(jobs), max(len(notebooks), 1))
    mode = "fast" if fast else "full"
    speed_index = round(matmul_gflops(), 2)  # measured before the kernels start, on an idle core
    print(f"executing {len(notebooks)} notebooks in {mode} mode, {workers} at a time "
          f"(speed index {speed_index:.1f} GFLOP/s) ...", flush=True)
    outcomes: dict[str, Outcome] = {}
    hashes = {p.stem: input_hash(p, repo_root) for p in notebooks}
    kept = reusable(out_dir, notebooks, hashes, mode) if reuse else {}
    stamps_path = out_dir / INPUTS_FILE
    stamps = read_stamps(out_dir) if reuse else {}

    def save() -> dict:  # after every notebook, so that an interrupted run keeps what it measured
        ordered = [outcomes[p.stem] for p in notebooks if p.stem in outcomes]
        record = {
            "mode": mode,
            "speed_index_gflops": speed_index,
            "jobs": workers,
            "seconds": {o.stem: o.seconds for o in ordered},
            "failed": {o.stem: {"cell": o.cell, "cell_index": o.cell_index, "error": o.error}
                       for o in ordered if o.failed},
            "reused": [o.stem for o in ordered if o.reused],
        }
        text = json.dumps(record, indent=2, ensure_ascii=False)
        (out_dir / "durations.json").write_text(text, encoding="utf-8")
        stamps_path.write_text(json.dumps(stamps, indent=2), encoding="utf-8")
        return record

    def finished(outcome: Outcome) -> dict:
        outcomes[outcome.stem] = outcome
        if outcome.failed:
            stamps.pop(outcome.stem, None)
        else:
            stamps[outcome.stem] = hashes[outcome.stem]
        print(_progress_line(len(outcomes), len(notebooks), outcome), flush=True)
        return save()

    record = save()  # replaces a previous run's record at once
    for path in notebooks:
        if path.stem in kept:
            record = finished(Outcome(path.stem, kept[path.stem], reused=True))
    notebooks_to_run = [p for p in notebooks if p.stem not in kept]
    if workers == 1:
        for path in notebooks_to_run:
            record = finished(execute_one(path, out_dir / path.name, fast=fast, timeout_s=timeout_s))
    else:
        context = multiprocessing.get_context("spawn")  # no fork of a process with BLAS threads
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures = {pool.submit(_execute_in_worker, path, out_dir / path.name, fast, timeout_s): path
                       for path in notebooks_to_run}
            for future in as_completed(futures):
                try:
                    outcome = future.result()
                except Exception as error:  # the worker process died (killed for memory...)
                    outcome = Outcome(futures[future].stem, 0.0, error=_error_text(type(error).__name__, str(error)))
                record = finished(outcome)
    _print_summary(record, out_dir)
    return record


def _print_summary(record: dict, out_dir: Path) -> None:
    failed = record["failed"]
    total = len(record["seconds"])
    reused = f", {len(record['reused'])} of them reused from the last run" if record.get("reused") else ""
    print(f"\n{total - len(failed)} of {total} notebooks ran without error{reused} "
          f"({sum(record['seconds'].values()):.0f} s in all); times in {out_dir / 'durations.json'}")
    for stem, info in failed.items():
        where = f"cell In [{info['cell']}]" if info["cell"] is not None else "an unknown cell"
        print(f"FAILED {stem} at {where}:\n    " + info["error"].replace("\n", "\n    "))


def _jobs(value: str) -> int:
    try:
        return resolve_jobs(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def select_notebooks(names: list[str], notebooks_dir: Path = NOTEBOOKS_DIR) -> list[Path]:
    """The course notebooks whose stems are in ``names`` (all when empty); a name that is the path of
    an existing ``.ipynb`` file selects that file."""
    if not names:
        return course_notebooks(notebooks_dir)
    paths = [Path(n) for n in names if n.endswith(".ipynb") and Path(n).is_file()]
    stems = {n for n in names if not (n.endswith(".ipynb") and Path(n).is_file())}
    return [p for p in course_notebooks(notebooks_dir) if p.stem in stems] + paths


def main(argv: list[str] | None = None) -> int:
    """``prepare-fast`` or ``execute``; ``execute`` returns 1 when a notebook failed (all of them ran)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("action", choices=["prepare-fast", "execute"])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--fast", action="store_true", help="inject FAST = True (execute only)")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    parser.add_argument("--jobs", "-j", type=_jobs, default=1,
                        help="notebooks executed at once, each in its own kernel (0 or 'auto': one per core)")
    parser.add_argument("--reuse", action="store_true",
                        help="keep the executed copy of a notebook whose inputs have not changed since its last run")
    parser.add_argument("names", nargs="*", help="notebook stems or .ipynb paths to run (default: all)")
    args = parser.parse_intermixed_args(argv)  # names may follow the options
    notebooks = select_notebooks(args.names)
    if args.names and not notebooks:
        parser.error(f"no notebook matches {args.names}")
    if args.action == "prepare-fast":
        for path in prepare_fast(args.out, notebooks):
            print(f"prepared {path}")
        return 0
    record = execute(args.out, notebooks, fast=args.fast, timeout_s=args.timeout, jobs=args.jobs, reuse=args.reuse)
    return 1 if record["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
