"""Assemble the book's source folder: the book/ files, the executed notebooks, and two generated
pages (the question index and the run-time table)."""

from __future__ import annotations

import argparse
import csv
import html
import json
import re
import shutil
import sys
import tempfile
from collections import defaultdict
from importlib import metadata
from pathlib import Path

from helpers import questions
from helpers.claims import NOT_ASSERTED_MARK, PASS_MARK, WORKED_MARK
from helpers.config import REPO_ROOT
from tools import decks
from tools.bench_report import (
    FAST_TARGET_S,
    FULL_TARGET_S,
    SCALING_NOTE,
    Failure,
    Run,
    format_time,
    load_run,
    speed_index_lines,
    status,
)
from tools.notebooks import course_notebooks

BOOK_DIR = REPO_ROOT / "book"
FAILURE_TAG = "build-failure"
"""Tag of the cells this module adds to a failed notebook's page."""
FAILURE_ANCHOR = "failed-cell"
PAPERMILL_ERROR_TAG = "papermill-error-cell-tag"  # papermill's own markers, replaced by ours
VERSIONED = ["torch", "tensorflow-cpu", "keras", "numpy", "scikit-learn", "pandas", "matplotlib",
             "papermill", "jupyter-book"]


def question_index(bank: list[questions.Question]) -> str:
    """Markdown of every question grouped by cluster in course order, each linked to the section that
    proves it, with filters by cluster and difficulty and a self-test / study switch
    (``book/_static/questions.js``)."""
    by_cluster: dict[str, list[questions.Question]] = defaultdict(list)
    for q in bank:
        by_cluster[q.cluster].append(q)
    ordered = sorted(by_cluster.items(), key=lambda item: item[0].split()[0])  # course order: 00, 01, ...
    options = "".join(f'<option value="{html.escape(cluster.split()[0])}">{html.escape(cluster)}</option>'
                      for cluster, _ in ordered)
    difficulty_options = "".join(f'<option value="{code}">{name}</option>' for code, name in questions.DIFFICULTIES.items())
    lines = ["# Question index", "", "*题库索引*", "",
             f"{len(bank)} questions. Each links to the notebook section whose experiment proves the answer; "
             "E, M and H mark easy, medium and hard. Self-test: read a question, answer it aloud, then "
             "click to compare; tick the box to study with every answer open.", "",
             '<div id="question-filters">',
             f'<label>Cluster <select id="filter-cluster"><option value="">all clusters</option>{options}</select></label>',
             '<label>Difficulty <select id="filter-difficulty"><option value="">all</option>'
             f"{difficulty_options}</select></label>",
             '<label><input type="checkbox" id="show-answers"> show every answer (study view)</label>',
             '<span id="question-count"></span>',
             "</div>", ""]
    for cluster, items in ordered:
        lines += [f"## {cluster}", ""]
        for q in items:
            lines += [
                f"::::{{div}} mllab-q q-cluster-{cluster.split()[0]} q-diff-{q.difficulty}",
                f":name: q-{q.id.lower()}",
                "",
                f"**{q.id}** ({q.difficulty}) {q.question_en.strip()}  ",
                f"{q.question_zh.strip()}  ",
                f"Answered in {{ref}}`{q.section}`.",
                "",
                ":::{dropdown} 30-second answer",
                q.answer.strip(),
                "",
                *( [q.answer_zh.strip(), ""] if q.answer_zh else [] ),
                ":::",
                "::::",
                "",
            ]
    return "\n".join(lines)


SKLEARN_BUNDLED = [  # data sets the notebooks load from scikit-learn's own copy (nothing is downloaded)
    ("handwritten digits, 8×8 (`load_digits`)", "UCI, Optical Recognition of Handwritten Digits", "CC BY 4.0"),
    ("breast cancer Wisconsin, diagnostic (`load_breast_cancer`)", "UCI, Breast Cancer Wisconsin (Diagnostic)",
     "CC BY 4.0"),
    ("diabetes (`load_diabetes`)", "Efron, Hastie, Johnstone and Tibshirani (2004), *Least Angle Regression*",
     "distributed with scikit-learn (BSD-3-Clause)"),
]


def data_page(manifest: Path) -> str:
    """The "Data and licences" page: the licences of the course, and every data set with its own."""
    with manifest.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    lines = ["# Data and licences", "", "*数据与许可*", "",
             "The code of this course is MIT-licensed; its text, figures and questions are CC BY 4.0 "
             "(`LICENSE` and `LICENSE-CONTENT` in the repository). Each data set keeps its own licence.", "",
             "## Files bundled in `data/`", ""]
    if rows:
        lines += ["| file | rows | source | licence | SHA-256 |", "|---|---|---|---|---|"]
        lines += [f"| `{r['file']}` | {r['rows']} | {r['source']} | {r['licence']} | `{r['sha256'][:12]}…` |"
                  for r in rows]
    else:
        lines.append("None yet: `data/MANIFEST.csv` lists each bundled file with its checksum, source and licence.")
    lines += ["", "## Bundled with scikit-learn", "", "| data set | source | licence |", "|---|---|---|"]
    lines += [f"| {name} | {source} | {licence} |" for name, source, licence in SKLEARN_BUNDLED]
    lines += ["", "Every other data set in the notebooks is generated in code (`helpers.data`) from a seed."]
    return "\n".join(lines) + "\n"


def deck_links(files: dict[str, Path]) -> str:
    """A section of the question index that offers the flashcard decks as downloads."""
    lines = ["", "## Flashcards", "",
             "The same questions as flashcard decks: Anki packages (import them in Anki; a rebuilt deck "
             "updates its cards instead of duplicating them) and CSV files, in English, Chinese and both.", ""]
    for name in sorted(files):
        lines.append(f"- {{download}}`{name} <downloads/{name}>`")
    return "\n".join(lines) + "\n"


def _output_lines(notebook_path: Path) -> list[str]:
    cells = json.loads(notebook_path.read_text(encoding="utf-8"))["cells"]
    text = "".join(
        "".join(output.get("text", ""))
        for cell in cells if cell["cell_type"] == "code"
        for output in cell.get("outputs", [])
    )
    return text.splitlines()


def count_lines(notebook_path: Path, mark: str = PASS_MARK) -> int:
    """Number of output lines that start with ``mark``: ✔ claims, ○ claims not asserted (their
    premise failed) or ≡ worked examples (arithmetic and identities, never counted as evidence)."""
    return sum(line.startswith(mark) for line in _output_lines(notebook_path))


def failure_in_notebook(nb: dict) -> Failure | None:
    """The first error output of an executed notebook, for a failure ``durations.json`` does not record."""
    cells = [c for c in nb["cells"] if PAPERMILL_ERROR_TAG not in c.get("metadata", {}).get("tags", [])]
    for index, cell in enumerate(cells):
        if cell["cell_type"] != "code" or "raises-exception" in cell.get("metadata", {}).get("tags", []):
            continue
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                return Failure(cell.get("execution_count"), f"{output.get('ename')}: {output.get('evalue')}", index)
    return None


def _fence(text: str) -> str:
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def failure_admonition(failure: Failure, *, linked: bool) -> str:
    """MyST ``{error}`` block for the top of a failed notebook's page: the cell and the error text."""
    where = f"cell In [{failure.cell}]" if failure.cell is not None else "a cell"
    if linked:
        where += f' (<a href="#{FAILURE_ANCHOR}">go to the cell</a>)'
    error = failure.error.strip() or "(no error message was recorded)"
    fence = _fence(error)
    return "\n".join([
        ":::{error}",
        f"**This notebook failed when the book was built.** It stopped at {where} with:",
        "",
        f"{fence}text",
        error,
        fence,
        "",
        "The cells after it did not run, so their outputs are missing from this page. "
        "{doc}`/runtimes` lists every notebook's run time and status.",
        ":::",
    ])


def _anchor_text(failure: Failure) -> str:
    cell = f" (In [{failure.cell}])" if failure.cell is not None else ""
    return "\n".join([
        f'<span id="{FAILURE_ANCHOR}"></span>',
        "",
        ":::{error}",
        f"The build stopped at the next cell{cell}; the cells after it did not run.",
        ":::",
    ])


def _tagged_markdown(source: str):
    import nbformat

    cell = nbformat.v4.new_markdown_cell(source)
    cell.metadata["tags"] = [FAILURE_TAG]
    return cell


def mark_failure(notebook_path: Path, failure: Failure, *, executed: bool = True) -> None:
    """Rewrite a failed notebook so that its page shows the failure right under the title.

    Papermill's own error markers are replaced by an ``{error}`` admonition below the title and an
    anchor just above the failing cell (``failure.cell_index``, counted without papermill's markers).
    ``executed=False`` marks an unexecuted copy (no anchor: nothing ran).
    """
    import nbformat

    nb = nbformat.read(notebook_path, as_version=4)
    nb.cells = [c for c in nb.cells if PAPERMILL_ERROR_TAG not in c.metadata.get("tags", [])]
    index = failure.cell_index
    linked = executed and index is not None and 0 <= index < len(nb.cells)
    if linked:
        nb.cells.insert(index, _tagged_markdown(_anchor_text(failure)))
    notice = _tagged_markdown(failure_admonition(failure, linked=linked))
    first = nb.cells[0] if nb.cells else None
    lines = first.source.splitlines() if first is not None and first.cell_type == "markdown" else []
    title_at = next((i for i, line in enumerate(lines) if line.startswith("# ")), None)
    if title_at is None:
        nb.cells.insert(0, notice)
    else:  # split the title cell: title, the notice, then the rest of the cell
        rest = "\n".join(lines[title_at + 1:]).strip("\n")
        nb.cells[0:1] = [nbformat.v4.new_markdown_cell("\n".join(lines[: title_at + 1])), notice]
        if rest.strip():
            first.source = rest
            nb.cells.insert(2, first)
    nbformat.write(nb, notebook_path)


def runtime_page(executed: Path, fast: Run, notebooks: list[Path] | None = None) -> str:
    """Markdown table of run times against the targets, failures and claim counts, plus hardware
    and package versions. The full run is read from ``executed/durations.json``."""
    from helpers.device import describe_hardware

    notebooks = course_notebooks() if notebooks is None else notebooks
    full = load_run(executed / "durations.json", "full")
    lines = ["# Run times and environment", "", "*运行时间与环境*", "",
             "Each notebook was executed once by papermill in full mode for this build; fast mode is "
             "what `make test` runs. Targets per notebook on the reference machine (2 CPU cores): "
             f"fast ≤ {FAST_TARGET_S:.0f} s, full ≤ {FULL_TARGET_S:.0f} s. Times are a benchmark, "
             "not a test: a slower machine takes longer.", "",
             *speed_index_lines(fast, full), "", f"{SCALING_NOTE[0].upper()}{SCALING_NOTE[1:]}.", "",
             f"| notebook | full (s), target {FULL_TARGET_S:.0f} | fast (s), target {FAST_TARGET_S:.0f} "
             f"| {PASS_MARK} claims asserted | {NOT_ASSERTED_MARK} not asserted | {WORKED_MARK} worked examples "
             "| status |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for path in notebooks:
        name = path.stem
        output = executed / path.name
        claims, not_asserted, worked = (count_lines(output, mark) if output.is_file() else ""
                                        for mark in (PASS_MARK, NOT_ASSERTED_MARK, WORKED_MARK))
        state = status(name, fast, full)
        if not output.is_file() and name not in full.failed:
            state = "❌ not executed" + ("" if state == "not run" else f"; {state}")
        lines.append(f"| {{doc}}`notebooks/{name}` | {format_time(full.seconds.get(name))} "
                     f"| {format_time(fast.seconds.get(name))} | {claims} | {not_asserted} | {worked} | {state} |")
    lines += ["", "## Hardware", "", "| | |", "|---|---|"]
    lines += [f"| {key} | {value} |" for key, value in describe_hardware().items()]
    lines += ["", "## Packages", "", "| package | version |", "|---|---|"]
    for package in VERSIONED:
        try:
            lines.append(f"| {package} | {metadata.version(package)} |")
        except metadata.PackageNotFoundError:
            lines.append(f"| {package} | not installed |")
    return "\n".join(lines) + "\n"


def assemble(executed: Path, out: Path, fast: Run | dict[str, float], notebooks: list[Path] | None = None) -> None:
    """Write the complete book source into ``out`` (replacing it).

    A notebook that failed keeps its partly executed page with the failure shown at the top; one
    with no executed copy at all gets its unexecuted source with the failure notice. Only a folder
    where nothing was executed stops the build.
    """
    notebooks = course_notebooks() if notebooks is None else notebooks
    if not isinstance(fast, Run):
        fast = Run("fast", dict(fast), found=bool(fast))
    full = load_run(executed / "durations.json", "full")
    missing = [p for p in notebooks if not (executed / p.name).is_file()]
    if not full.found and len(missing) == len(notebooks):
        raise SystemExit(f"not executed yet (run `make execute`): {', '.join(p.name for p in missing)}")
    final, out = out, Path(tempfile.mkdtemp(prefix="book-src-"))  # assembled aside, then synced into place
    shutil.rmtree(out)
    shutil.copytree(BOOK_DIR, out)
    (out / "notebooks").mkdir()
    for path in notebooks:
        target = out / "notebooks" / path.name
        if path in missing:
            shutil.copy2(path, target)
            failure = full.failed.get(path.stem) or Failure(
                error=f"no executed copy of {path.name} was found in {executed}")
            mark_failure(target, failure, executed=False)
            continue
        shutil.copy2(executed / path.name, target)
        failure = full.failed.get(path.stem)
        if failure is None:
            failure = failure_in_notebook(json.loads(target.read_text(encoding="utf-8")))
        if failure is not None:
            mark_failure(target, failure)
    deck_files = decks.build_all(out / "downloads")
    (out / "questions.md").write_text(question_index(questions.load_bank()) + deck_links(deck_files),
                                      encoding="utf-8")
    (out / "runtimes.md").write_text(runtime_page(executed, fast, notebooks), encoding="utf-8")
    (out / "data.md").write_text(data_page(REPO_ROOT / "data" / "MANIFEST.csv"), encoding="utf-8")
    sync_tree(out, final, keep={"_build"})
    shutil.rmtree(out)


def sync_tree(source: Path, target: Path, keep: set[str] = frozenset()) -> list[Path]:
    """Make ``target`` a copy of ``source``, touching only files whose content differs, so that Sphinx
    (which compares modification times) rebuilds only the pages that changed. Top-level entries named
    in ``keep`` (Sphinx's ``_build``) are left alone. Returns the files written."""
    written = []
    target.mkdir(parents=True, exist_ok=True)
    wanted = {p.relative_to(source) for p in source.rglob("*")}
    for existing in sorted(target.rglob("*"), reverse=True):  # children before their folders
        relative = existing.relative_to(target)
        if relative.parts[0] in keep or relative in wanted:
            continue
        if existing.is_dir() and not existing.is_symlink():
            shutil.rmtree(existing)
        else:
            existing.unlink()
    for relative in sorted(wanted):
        src, dst = source / relative, target / relative
        if src.is_dir():
            dst.mkdir(parents=True, exist_ok=True)
        elif not dst.is_file() or dst.read_bytes() != src.read_bytes():
            shutil.copy2(src, dst)
            written.append(dst)
    return written


def main(argv: list[str] | None = None) -> int:
    """Assemble the book source from ``--executed`` into ``--out``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--executed", type=Path, required=True, help="folder of papermill-executed notebooks")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--fast-durations", type=Path, default=REPO_ROOT / "build" / "fast" / "durations.json")
    args = parser.parse_args(argv)
    assemble(args.executed, args.out, load_run(args.fast_durations, "fast"))
    print(f"book source assembled in {args.out}")
    failed = load_run(args.executed / "durations.json", "full").failed
    if failed:
        print(f"pages that show a failure at the top: {', '.join(failed)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
