"""One failing notebook does not sink the book: every notebook is executed, the failure is recorded in
durations.json, the CLI exits 1, and the book shows the failure at the top of the notebook's page."""

import contextlib
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from tools import book_pages, notebooks
from tools.bench_report import Failure, Run, load_run


def _notebook(path: Path, *cells) -> Path:
    parameters = new_code_cell("FAST = False")
    parameters.metadata["tags"] = ["parameters"]
    nb = new_notebook(cells=[cells[0], parameters, *cells[1:]])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Execute a passing and a failing notebook through the CLI, two at a time."""
    root = tmp_path_factory.mktemp("failures")
    passing = _notebook(
        root / "00_pass.ipynb", new_markdown_cell("# Passing notebook\n\nIt holds."),
        new_code_cell('from helpers.claims import claim, claim_if\nclaim(2 > 1, "two is more than one")\n'
                      'claim_if(False, "a GPU", True, "the GPU is faster")'),
    )
    failing = _notebook(
        root / "01_fail.ipynb", new_markdown_cell("# Failing notebook\n*失败*\n\nIt does not hold."),
        new_code_cell("from helpers.claims import claim"),
        new_markdown_cell("## The claim"),
        new_code_cell('claim(1 > 2, "one is more than two", one=1)'),
        new_code_cell('print("never printed")'),
    )
    missing = _notebook(root / "02_missing.ipynb", new_markdown_cell("# Never executed"), new_code_cell("x = 1"))
    out = root / "full"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = notebooks.main(["execute", "--out", str(out), "--jobs", "2", "--timeout", "60",
                               str(passing), str(failing)])
    return SimpleNamespace(root=root, out=out, code=code, printed=printed.getvalue(),
                           notebooks=[passing, failing, missing],
                           record=json.loads((out / "durations.json").read_text(encoding="utf-8")))


def test_every_notebook_is_executed_and_the_cli_exits_1(run):
    assert run.code == 1
    assert (run.out / "00_pass.ipynb").is_file() and (run.out / "01_fail.ipynb").is_file()
    failed_nb = json.loads((run.out / "01_fail.ipynb").read_text(encoding="utf-8"))
    outputs = [o for c in failed_nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
    assert any(o["output_type"] == "error" for o in outputs)


def test_durations_record_the_failing_cell_and_the_claim(run):
    record = run.record
    assert record["mode"] == "full" and record["speed_index_gflops"] > 0 and record["jobs"] == 2
    assert list(record["seconds"]) == ["00_pass", "01_fail"]
    assert list(record["failed"]) == ["01_fail"]
    failure = record["failed"]["01_fail"]
    assert failure["cell"] == 4  # In [4]: parameters, injected parameters, import, then the claim
    assert failure["error"] == "AssertionError: Claim failed: one is more than two (one = 1)"


def test_the_summary_names_the_failure(run):
    assert "[2/2]" in run.printed
    assert "FAILED 01_fail at cell In [4]:" in run.printed and "one is more than two" in run.printed


def test_a_timeout_is_recorded_with_the_cell_that_ran_too_long(tmp_path):
    slow = _notebook(tmp_path / "03_slow.ipynb", new_markdown_cell("# Slow"),
                     new_code_cell("import time\ntime.sleep(60)"))
    record = notebooks.execute(tmp_path / "out", [slow], fast=True, timeout_s=2, jobs=1)
    assert record["mode"] == "fast" and record["jobs"] == 1
    failure = record["failed"]["03_slow"]
    assert failure["cell"] == 3 and "Timeout" in failure["error"]
    assert (tmp_path / "out" / "03_slow.ipynb").is_file()
    assert json.loads((tmp_path / "out" / "durations.json").read_text(encoding="utf-8")) == record


@pytest.fixture(scope="module")
def book(run, tmp_path_factory):
    """The book source assembled from the run (02_missing has no executed copy)."""
    out = tmp_path_factory.mktemp("book") / "src"
    fast = Run("fast", {"00_pass": 3.0, "01_fail": 31.0}, {"01_fail": Failure()}, 50.0, found=True)
    book_pages.assemble(run.out, out, fast, run.notebooks)
    return out


def _cells(path: Path) -> list:
    return nbformat.read(path, as_version=4).cells


def test_the_failed_page_starts_with_the_error(book):
    cells = _cells(book / "notebooks" / "01_fail.ipynb")
    assert cells[0].source == "# Failing notebook"
    notice = cells[1].source
    assert cells[1].metadata["tags"] == [book_pages.FAILURE_TAG] and notice.startswith(":::{error}")
    assert "This notebook failed when the book was built" in notice and "In [4]" in notice
    assert "AssertionError: Claim failed: one is more than two (one = 1)" in notice
    assert "{doc}`/runtimes`" in notice and 'href="#failed-cell"' in notice
    assert cells[2].source.startswith("*失败*")
    assert not any(book_pages.PAPERMILL_ERROR_TAG in c.metadata.get("tags", []) for c in cells)
    anchor = next(i for i, c in enumerate(cells) if 'id="failed-cell"' in c.source)
    assert "claim(1 > 2" in cells[anchor + 1].source


def test_a_passing_page_is_unchanged_and_a_missing_one_gets_its_source(book):
    assert not any(book_pages.FAILURE_TAG in c.metadata.get("tags", [])
                   for c in _cells(book / "notebooks" / "00_pass.ipynb"))
    cells = _cells(book / "notebooks" / "02_missing.ipynb")
    assert "This notebook failed" in cells[1].source and "no executed copy" in cells[1].source
    assert not any("failed-cell" in c.source for c in cells[2:])


def test_the_runtime_page_marks_the_failure_and_counts_claims(book):
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in (book / "runtimes.md").read_text(encoding="utf-8").splitlines()
            if line.startswith("| {doc}")}
    passing, failing, missing = (rows[f"{{doc}}`notebooks/{n}`"] for n in ("00_pass", "01_fail", "02_missing"))
    assert passing[2:] == ["1", "1", "0", "within target"]  # ✔, ○, ≡, status
    assert failing[1] == "31.0" and failing[-1] == "❌ failed at cell In [4]; ❌ failed in fast mode"
    assert missing[-1] == "❌ not executed"
    assert "speed index 50.0 GFLOP/s" in (book / "runtimes.md").read_text(encoding="utf-8")


JUPYTER_BOOK = Path(sys.executable).parent / "jupyter-book"


@pytest.mark.skipif(not JUPYTER_BOOK.exists(), reason="jupyter-book is not installed")
def test_the_failure_notice_builds_without_sphinx_warnings(book, tmp_path):
    source = tmp_path / "src"
    shutil.copytree(book, source)
    (source / "_toc.yml").write_text(
        "format: jb-book\nroot: intro\nchapters:\n" + "".join(
            f"  - file: notebooks/{n}\n" for n in ("00_pass", "01_fail", "02_missing")) + "  - file: runtimes\n")
    (source / "intro.md").write_text("# Tiny book\n\nSee {doc}`runtimes`.\n")
    result = subprocess.run([str(JUPYTER_BOOK), "build", str(source), "--warningiserror", "--keep-going"],
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    page = (source / "_build" / "html" / "notebooks" / "01_fail.html").read_text(encoding="utf-8")
    assert 'class="admonition error"' in page and 'id="failed-cell"' in page
    assert page.index("This notebook failed") < page.index("claim</span>")


def test_failure_in_notebook_finds_an_unrecorded_error_but_not_an_expected_one():
    error = {"output_type": "error", "ename": "ValueError", "evalue": "bad", "traceback": []}
    expected = {"cell_type": "code", "execution_count": 1, "metadata": {"tags": ["raises-exception"]},
                "outputs": [error], "source": ""}
    real = {"cell_type": "code", "execution_count": 2, "metadata": {}, "outputs": [error], "source": ""}
    assert book_pages.failure_in_notebook({"cells": [expected]}) is None
    assert book_pages.failure_in_notebook({"cells": [expected, real]}) == Failure(2, "ValueError: bad", 1)


def test_failure_notice_without_a_title_goes_first_and_fences_backticks(tmp_path):
    path = tmp_path / "nb.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell("x = 1")]), path)
    book_pages.mark_failure(path, Failure(None, "Oops: ```x```", None))
    cells = _cells(path)
    assert cells[0].source.startswith(":::{error}") and "````text\nOops: ```x```\n````" in cells[0].source
    assert "stopped at a cell with" in cells[0].source and len(cells) == 2


def test_jobs_accepts_auto_and_zero_as_one_per_core(monkeypatch):
    monkeypatch.setattr(notebooks.os, "cpu_count", lambda: 6)
    assert [notebooks.resolve_jobs(j) for j in ("auto", "0", 0, "3")] == [6, 6, 6, 3]
    with pytest.raises(ValueError):
        notebooks.resolve_jobs(-1)


def test_notebooks_cli_rejects_a_bad_jobs_value(capsys):
    with pytest.raises(SystemExit):
        notebooks.main(["execute", "--out", "unused", "--jobs", "many"])
    assert "--jobs" in capsys.readouterr().err


def test_the_fast_durations_of_the_book_are_read_by_the_shared_reader():
    assert book_pages.load_run is load_run
