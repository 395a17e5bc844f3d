import json
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap

import pytest

from helpers.config import REPO_ROOT
from tools import bootstrap_cell
from tools.notebooks import course_notebooks


def test_every_notebook_starts_with_the_current_bootstrap_cell():
    assert bootstrap_cell.main(["--check"]) == 0
    for path in course_notebooks():
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        first_code = next(c for c in cells if c["cell_type"] == "code")
        assert bootstrap_cell.TAG in first_code["metadata"]["tags"], path.name
        assert "remove-cell" in first_code["metadata"]["tags"], path.name


def test_the_cell_fetches_from_the_repository_of_the_book_config():
    url = bootstrap_cell.repository_url()
    assert url.startswith("https://github.com/") and f'"{url}.git"' in bootstrap_cell.cell_source()


def test_repository_url_must_be_https(tmp_path):
    config = tmp_path / "_config.yml"
    config.write_text("repository:\n  url: git@example.com:x/y.git\n")
    with pytest.raises(ValueError, match="https"):
        bootstrap_cell.repository_url(config)


def test_apply_inserts_once_and_updates_in_place(tmp_path):
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps({"cells": [{"cell_type": "markdown", "metadata": {}, "source": ["# T"]},
                                          {"cell_type": "code", "metadata": {}, "outputs": [], "source": ["x = 1"]}],
                                "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    assert bootstrap_cell.apply(path, "print('a')")
    assert not bootstrap_cell.apply(path, "print('a')")
    assert bootstrap_cell.apply(path, "print('b')")
    cells = json.loads(path.read_text())["cells"]
    assert [c["cell_type"] for c in cells] == ["markdown", "code", "code"]
    assert "".join(cells[1]["source"]) == "print('b')" and "".join(cells[2]["source"]) == "x = 1"


def test_inside_a_clone_the_cell_does_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(bootstrap_cell.cell_source(), {})  # noqa: S102 - the cell's own code, as a kernel would run it
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_without_a_clone_the_cell_fetches_the_course_and_the_cards_render(tmp_path):
    """A notebook copied into an empty folder, run by an interpreter that cannot import the course."""
    if shutil.which("git") is None or not (REPO_ROOT / ".git").exists():
        pytest.skip("needs git and a git checkout of the course to stand in for the repository")
    notebook = course_notebooks()[0]
    shutil.copy2(notebook, tmp_path / notebook.name)
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    code = [("".join(c["source"])) for c in cells if c["cell_type"] == "code"][:2]  # bootstrap, question cards
    driver = textwrap.dedent(f"""
        import sys
        sys.path.append({sysconfig.get_paths()["purelib"]!r})  # the libraries, without the course's .pth hooks
        try:
            import helpers
            raise SystemExit("helpers must not be importable before the cell runs")
        except ModuleNotFoundError:
            pass
        import ast
        namespace = {{}}
        exec({code[0]!r}, namespace)
        tree = ast.parse({code[1]!r})  # the cards cell: run it, keep the value of its last expression
        last = tree.body.pop()
        exec(compile(tree, "cards", "exec"), namespace)
        cards = eval(compile(ast.Expression(last.value), "cards", "eval"), namespace)
        import helpers
        print("HELPERS", helpers.__file__)
        print("CARDS", cards.data[:60])
    """)
    env = {**os.environ, "MLLAB_SOURCE": str(REPO_ROOT)}
    env.pop("PYTHONPATH", None)
    done = subprocess.run([sys.executable, "-S", "-c", driver], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"HELPERS {tmp_path / 'mllab-course'}" in done.stdout
    assert "CARDS **" in done.stdout
