"""Run every notebook's GPU section with PyTorch alone: no Jupyter kernel, no TensorFlow.

For the day a GPU machine is available that has PyTorch but not the whole course environment. Each
notebook's code cells run in order in one plain Python namespace (``FAST = True`` injected after the
parameters cell), up to its last GPU cell; cells that need TensorFlow or Keras are skipped, and
IPython's ``display`` falls back to ``print``. A GPU cell is one that branches on
``gpu_skip_reason()`` or on the launch plan's ``PLAN.gpu_demo``. The report says, per notebook,
whether each GPU cell ran, and keeps what it printed (its ✔ claims included).

    python -m tools.gpu_sections [names...] [--out build/gpu]

Exits 1 if a GPU cell failed. A failing non-GPU cell is reported and the run goes on (a GPU cell
that needed its result then fails too, and says why).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

from helpers.config import REPO_ROOT
from tools.notebooks import course_notebooks

GPU_MARKERS = ("gpu_skip_reason()", "PLAN.gpu_demo")
NEEDS_TENSORFLOW = ("import keras", "import tensorflow", "from keras", "from tensorflow", "keras.", "tf.")


@dataclass
class CellRun:
    """One executed (or skipped) code cell."""

    index: int
    gpu: bool
    status: str  # "ok", "failed" or "skipped: ..."
    output: str = ""
    error: str = ""


@dataclass
class NotebookRun:
    """The GPU section of one notebook."""

    name: str
    cells: list[CellRun] = field(default_factory=list)

    @property
    def gpu_failed(self) -> list[CellRun]:
        return [c for c in self.cells if c.gpu and c.status == "failed"]


def _source(cell: dict) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def is_gpu_cell(source: str) -> bool:
    """Whether a code cell branches on the presence of a GPU."""
    return any(marker in source for marker in GPU_MARKERS)


def _python_only(source: str) -> str:
    """Drop IPython magics and shell escapes, which plain Python cannot run."""
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())


def _display(*objects: object, **_: object) -> None:
    for obj in objects:
        print(obj)


def run_notebook(path: Path, *, parameters: dict | None = None) -> NotebookRun:
    """Run ``path``'s code cells up to its last GPU cell in one namespace; see the module docstring."""
    nb = json.loads(Path(path).read_text(encoding="utf-8"))
    cells = [(i, c) for i, c in enumerate(nb["cells"]) if c.get("cell_type") == "code"]
    gpu_indices = [i for i, c in cells if is_gpu_cell(_source(c))]
    run = NotebookRun(Path(path).stem)
    if not gpu_indices:
        return run
    namespace: dict = {"__name__": "__main__", "display": _display}
    injected = {"FAST": True, **(parameters or {})}
    previous_dir = os.getcwd()
    os.chdir(Path(path).parent)
    try:
        for index, cell in cells:
            if index > gpu_indices[-1]:
                break
            source = _source(cell)
            gpu = index in gpu_indices
            tags = cell.get("metadata", {}).get("tags", [])
            if not gpu and any(marker in source for marker in NEEDS_TENSORFLOW):
                run.cells.append(CellRun(index, gpu, "skipped: needs TensorFlow or Keras"))
                continue
            run.cells.append(_execute(index, gpu, _python_only(source), namespace))
            if "parameters" in tags:
                namespace.update(injected)
    finally:
        os.chdir(previous_dir)
    return run


def _execute(index: int, gpu: bool, source: str, namespace: dict) -> CellRun:
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stdout(buffer):
            exec(compile(source, f"cell {index}", "exec"), namespace)  # noqa: S102 - running the course's own cells
    except Exception as error:  # noqa: BLE001 - every failure is reported, none stops the run
        return CellRun(index, gpu, "failed", buffer.getvalue(), f"{type(error).__name__}: {error}\n"
                       + "".join(traceback.format_exception(error)[-3:]))
    return CellRun(index, gpu, "ok", buffer.getvalue())


def report(runs: list[NotebookRun]) -> str:
    """Markdown summary: one line per notebook, then each GPU cell's output."""
    lines = ["# GPU sections", "", "| notebook | GPU cells | failed | other cells failed | skipped |",
             "|---|---:|---:|---:|---:|"]
    for run in runs:
        gpu = [c for c in run.cells if c.gpu]
        other_failed = [c for c in run.cells if not c.gpu and c.status == "failed"]
        skipped = [c for c in run.cells if c.status.startswith("skipped")]
        lines.append(f"| {run.name} | {len(gpu)} | {len(run.gpu_failed)} | {len(other_failed)} | {len(skipped)} |")
    for run in runs:
        for cell in (c for c in run.cells if c.gpu):
            lines += ["", f"## {run.name}, cell {cell.index}: {cell.status}", "", "```", cell.output.rstrip(),
                      *([cell.error.rstrip()] if cell.error else []), "```"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "build" / "gpu")
    parser.add_argument("names", nargs="*", help="notebook stems (default: all)")
    args = parser.parse_intermixed_args(argv)
    os.environ.setdefault("MPLBACKEND", "Agg")
    os.environ.setdefault("MLLAB_PROGRESS", "0")
    notebooks = [p for p in course_notebooks() if not args.names or p.stem in args.names]
    if not notebooks:
        parser.error(f"no notebook matches {args.names}")
    runs = []
    for path in notebooks:
        print(f"{path.stem} ...", flush=True)
        runs.append(run_notebook(path))
        print(f"  GPU cells failed: {len(runs[-1].gpu_failed)}", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.md").write_text(report(runs), encoding="utf-8")
    (args.out / "report.json").write_text(json.dumps([asdict(r) for r in runs], indent=2), encoding="utf-8")
    print(report(runs))
    return 1 if any(r.gpu_failed for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
