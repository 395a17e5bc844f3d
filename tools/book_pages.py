"""Assemble the book's source folder: the book/ files, the executed notebooks, and two generated
pages (the question index and the run-time table)."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections import defaultdict
from importlib import metadata
from pathlib import Path

from helpers import questions
from helpers.claims import PASS_MARK
from helpers.config import REPO_ROOT
from tools.notebooks import course_notebooks

BOOK_DIR = REPO_ROOT / "book"
VERSIONED = ["torch", "tensorflow-cpu", "keras", "numpy", "scikit-learn", "pandas", "matplotlib",
             "papermill", "jupyter-book"]


def question_index(bank: list[questions.Question]) -> str:
    """Markdown of every question grouped by cluster, each linked to the section that proves it."""
    by_cluster: dict[str, list[questions.Question]] = defaultdict(list)
    for q in bank:
        by_cluster[q.cluster].append(q)
    lines = ["# Question index", "", "*题库索引*", "",
             f"{len(bank)} questions. Each links to the notebook section whose experiment proves the answer; "
             "E, M and H mark easy, medium and hard.", ""]
    for cluster, items in by_cluster.items():
        lines += [f"## {cluster}", ""]
        for q in items:
            lines += [
                f"**{q.id}** ({q.difficulty}) {q.question_en.strip()}  ",
                f"{q.question_zh.strip()}  ",
                f"Answered in {{ref}}`{q.section}`.",
                "",
                ":::{dropdown} 30-second answer",
                q.answer.strip(),
                "",
                *( [q.answer_zh.strip(), ""] if q.answer_zh else [] ),
                ":::",
                "",
            ]
    return "\n".join(lines)


def count_claims(notebook_path: Path) -> int:
    """Number of ✔ lines in an executed notebook's outputs."""
    cells = json.loads(notebook_path.read_text(encoding="utf-8"))["cells"]
    text = "".join(
        "".join(output.get("text", ""))
        for cell in cells if cell["cell_type"] == "code"
        for output in cell.get("outputs", [])
    )
    return sum(line.startswith(PASS_MARK) for line in text.splitlines())


def runtime_page(executed: Path, fast_durations: dict[str, float]) -> str:
    """Markdown table of run times and claim counts, plus hardware and package versions."""
    from helpers.device import describe_hardware

    full = json.loads((executed / "durations.json").read_text())["seconds"]
    lines = ["# Run times and environment", "", "*运行时间与环境*", "",
             "Each notebook was executed once by papermill in full mode for this build; fast mode is "
             "what `make test` runs (budget 60 s per notebook on 2 CPU cores).", "",
             "| notebook | full mode (s) | fast mode (s) | claims asserted |", "|---|---|---|---|"]
    for name, seconds in full.items():
        fast = fast_durations.get(name)
        claims = count_claims(executed / f"{name}.ipynb")
        lines.append(f"| {{doc}}`notebooks/{name}` | {seconds:.1f} | {'' if fast is None else f'{fast:.1f}'} | {claims} |")
    lines += ["", "## Hardware", "", "| | |", "|---|---|"]
    lines += [f"| {key} | {value} |" for key, value in describe_hardware().items()]
    lines += ["", "## Packages", "", "| package | version |", "|---|---|"]
    for package in VERSIONED:
        try:
            lines.append(f"| {package} | {metadata.version(package)} |")
        except metadata.PackageNotFoundError:
            lines.append(f"| {package} | not installed |")
    return "\n".join(lines) + "\n"


def assemble(executed: Path, out: Path, fast_durations: dict[str, float]) -> None:
    """Write the complete book source into ``out`` (replacing it)."""
    missing = [p.name for p in course_notebooks() if not (executed / p.name).is_file()]
    if missing:
        raise SystemExit(f"not executed yet (run `make execute`): {', '.join(missing)}")
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(BOOK_DIR, out)
    (out / "notebooks").mkdir()
    for path in course_notebooks():
        shutil.copy2(executed / path.name, out / "notebooks" / path.name)
    (out / "questions.md").write_text(question_index(questions.load_bank()), encoding="utf-8")
    (out / "runtimes.md").write_text(runtime_page(executed, fast_durations), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--executed", type=Path, required=True, help="folder of papermill-executed notebooks")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--fast-durations", type=Path, default=REPO_ROOT / "build" / "fast" / "durations.json")
    args = parser.parse_args(argv)
    fast = json.loads(args.fast_durations.read_text()) if args.fast_durations.is_file() else {}
    assemble(args.executed, args.out, fast)
    print(f"book source assembled in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
