"""Static checks of the course content: notebooks, table of contents, question bank, data files.

No kernel is started; these run in a second or two.
"""

import ast
import json
import re

import pytest
import yaml

from helpers import questions
from helpers.config import DATA_DIR, NOTEBOOKS_DIR, QUESTION_BANK, REPO_ROOT
from helpers.data import manifest_problems
from tools.notebooks import course_notebooks

NOTEBOOKS = course_notebooks()
TOC = REPO_ROOT / "book" / "_toc.yml"


def _cells(path):
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def _toc_files():
    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                yield node["file"]
            for value in node.values():
                yield from walk(value)
        elif isinstance(node, list):
            for value in node:
                yield from walk(value)

    return set(walk(yaml.safe_load(TOC.read_text(encoding="utf-8"))))


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 2


def test_every_ipynb_in_notebooks_is_a_course_notebook():
    assert sorted(NOTEBOOKS_DIR.glob("*.ipynb")) == NOTEBOOKS, "notebooks must be named NN_topic.ipynb"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_in_the_table_of_contents(path):
    assert f"notebooks/{path.stem}" in _toc_files()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_has_one_parameters_cell_with_fast_false(path):
    tagged = [c for c in _cells(path) if "parameters" in c["metadata"].get("tags", [])]
    assert len(tagged) == 1
    assert re.search(r"^FAST = False\b", "".join(tagged[0]["source"]), re.MULTILINE)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stored_without_outputs(path):
    code = [c for c in _cells(path) if c["cell_type"] == "code"]
    assert not any(c.get("outputs") or c.get("execution_count") for c in code)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_kernelspec_is_python3(path):
    metadata = json.loads(path.read_text(encoding="utf-8"))["metadata"]
    assert metadata["kernelspec"]["name"] == "python3"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_makes_claims_and_renders_its_questions(path):
    source = "".join("".join(c["source"]) for c in _cells(path) if c["cell_type"] == "code")
    assert len(re.findall(r"\bclaim\(", source)) >= 5
    card_ids = re.findall(r'"([A-Z]+-X?\d{2})"', source.split("questions.cards(", 1)[1].split(")", 1)[0])
    answered = {q.id for q in questions.load_bank() if q.notebook == path.stem}
    assert set(card_ids) == answered, "the cards cell must show exactly the questions this notebook answers"


CONSTANT_ONLY = (ast.Constant, ast.BinOp, ast.UnaryOp, ast.Compare, ast.BoolOp, ast.operator, ast.cmpop,
                 ast.boolop, ast.unaryop, ast.expr_context, ast.Tuple, ast.List)


def constant_claims(source: str) -> list[str]:
    """``claim(...)`` calls whose condition is built from literals alone: arithmetic, not a measurement.

    Only literal-only conditions are caught. A condition on a name bound to a constant elsewhere
    would need data-flow tracking across cells to tell from a measured value, so it is left to review.
    """
    code = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())
    found = []
    for node in ast.walk(ast.parse(code)):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "claim"
                and node.args and all(isinstance(n, CONSTANT_ONLY) for n in ast.walk(node.args[0]))):
            found.append(ast.unparse(node.args[0]))
    return found


def test_constant_claims_finds_literal_conditions_only():
    assert constant_claims("claim(7e9 * 16 > 80e9, 's')\nclaim(x > 1, 's')\n%time y") == ["7000000000.0 * 16 > 80000000000.0"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_claim_rests_on_literals_alone(path):
    bad = [cond for c in _cells(path) if c["cell_type"] == "code" for cond in constant_claims("".join(c["source"]))]
    assert not bad, f"claims whose condition uses no measured value (write them with worked(...)): {bad}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_hard_codes_no_cuda_device(path):
    source = "".join("".join(c["source"]) for c in _cells(path) if c["cell_type"] == "code")
    assert not re.search(r"""["']cuda["']""", source), "choose the device with helpers.device.pick_device"


def test_question_bank_is_valid_and_every_pointer_resolves():
    bank = questions.load_bank(QUESTION_BANK)
    assert questions.pointer_problems(bank) == []


def test_question_bank_covers_the_syllabus_ids_of_the_written_notebooks():
    bank_ids = {q.id for q in questions.load_bank()}
    assert {"OV-01", "FIT-01", "FIT-02", "FIT-03"} <= bank_ids


def test_bundled_data_matches_its_manifest():
    assert manifest_problems(DATA_DIR) == []
