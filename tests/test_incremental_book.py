"""`make book` re-executes only the notebooks whose inputs changed: the decision logic and one real run."""

import json
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from tools import notebooks


def course_copy(root: Path) -> Path:
    """A minimal course tree: helpers/, notebooks/ (with scripts/), requirements and pyproject."""
    (root / "helpers").mkdir(parents=True)
    (root / "helpers" / "a.py").write_text("A = 1\n")
    (root / "notebooks" / "scripts").mkdir(parents=True)
    (root / "notebooks" / "scripts" / "job.py").write_text("print('job')\n")
    (root / "requirements.txt").write_text("numpy==2.4.6\n")
    (root / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    for name, text in (("00_plain.ipynb", "x = 1"), ("10_launches.ipynb", "SCRIPTS = 'scripts'")):
        parameters = new_code_cell("FAST = False")
        parameters.metadata["tags"] = ["parameters"]
        nb = new_notebook(cells=[new_markdown_cell(f"# {name}"), parameters, new_code_cell(text)])
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, root / "notebooks" / name)
    return root


def test_input_hash_follows_the_notebook_helpers_scripts_and_pins(tmp_path):
    root = course_copy(tmp_path)
    plain, launches = root / "notebooks" / "00_plain.ipynb", root / "notebooks" / "10_launches.ipynb"

    def hashes():
        return notebooks.input_hash(plain, root), notebooks.input_hash(launches, root)

    first = hashes()
    assert hashes() == first  # deterministic
    (root / "notebooks" / "scripts" / "job.py").write_text("print('changed')\n")
    second = hashes()
    assert second[0] == first[0] and second[1] != first[1]  # only the notebook that launches scripts
    (root / "helpers" / "a.py").write_text("A = 2\n")
    third = hashes()
    assert third[0] != second[0] and third[1] != second[1]  # every notebook imports helpers
    (root / "requirements.txt").write_text("numpy==2.5.0\n")
    assert hashes()[0] != third[0]
    plain.write_text(plain.read_text().replace("x = 1", "x = 2"))
    assert notebooks.input_hash(plain, root) != hashes()[1] and notebooks.input_hash(launches, root) == hashes()[1]


def write_previous(out: Path, stems, *, mode="full", failed=(), hashes=None):
    out.mkdir(parents=True, exist_ok=True)
    for stem in stems:
        (out / f"{stem}.ipynb").write_text("{}")
    (out / "durations.json").write_text(json.dumps(
        {"mode": mode, "seconds": {s: 10.0 + i for i, s in enumerate(stems)}, "failed": {s: {} for s in failed}}))
    (out / notebooks.INPUTS_FILE).write_text(json.dumps(hashes or {s: "h" for s in stems}))


def test_reusable_needs_same_mode_same_hash_a_success_and_the_copy(tmp_path):
    paths = [tmp_path / "nb" / f"{s}.ipynb" for s in ("00_a", "01_b", "02_c", "03_d")]
    out = tmp_path / "full"
    write_previous(out, ["00_a", "01_b", "02_c"], failed=["01_b"])
    hashes = {"00_a": "h", "01_b": "h", "02_c": "other", "03_d": "h"}
    assert notebooks.reusable(out, paths, hashes, "full") == {"00_a": 10.0}
    assert notebooks.reusable(out, paths, hashes, "fast") == {}
    (out / "00_a.ipynb").unlink()
    assert notebooks.reusable(out, paths, hashes, "full") == {}
    (out / notebooks.INPUTS_FILE).write_text("{broken")
    assert notebooks.reusable(out, paths, hashes, "full") == {}


@pytest.mark.slow
def test_a_second_run_reuses_unchanged_notebooks_and_reruns_an_edited_one(tmp_path):
    root = course_copy(tmp_path / "course")
    paths = notebooks.course_notebooks(root / "notebooks")
    out = tmp_path / "full"

    def run(reuse=True):
        return notebooks.execute(out, paths, fast=False, timeout_s=60, reuse=reuse, repo_root=root)

    first = run()
    assert first["reused"] == [] and not first["failed"]
    second = run()
    assert second["reused"] == ["00_plain", "10_launches"] and second["seconds"] == first["seconds"]
    (root / "notebooks" / "scripts" / "job.py").write_text("print('edited')\n")
    third = run()
    assert third["reused"] == ["00_plain"]
    forced = run(reuse=False)
    assert forced["reused"] == []
