import dataclasses
import json

import pytest
import yaml
from IPython.display import Markdown

from helpers import questions
from helpers.questions import Question

RECORDS = [
    {
        "id": "FIT-01",
        "cluster": "fitting",
        "difficulty": "E",
        "question_en": "What is overfitting?",
        "question_zh": "什么是过拟合？",
        "answer": "The model memorises noise.",
        "notebook": "nb01",
        "section": "my-label",
        "answer_zh": "模型记住了噪声。",
        "follow_ups": ["How do you detect it?", "How do you fix it?"],
    },
    {
        "id": "FIT-X02",
        "cluster": "fitting",
        "difficulty": "H",
        "question_en": "Why does early stopping regularise?",
        "question_zh": "为什么早停有正则化作用？",
        "answer": "It limits how far the weights travel.",
        "notebook": "nb01",
        "section": "my-label",
        "syllabus": False,
    },
]

NOTEBOOK = {
    "cells": [
        {"cell_type": "markdown", "metadata": {}, "source": ["(my-label)=\n", "## My heading\n", "Text."]},
        {"cell_type": "code", "metadata": {}, "source": "(code-label)=\n## Not a section\n"},
        {"cell_type": "markdown", "metadata": {}, "source": "(spaced)=\n\n###   Spaced heading  \n"},
        {"cell_type": "markdown", "metadata": {}, "source": "(dangling)=\nJust prose.\n\n(last)=\n"},
    ],
    "metadata": {},
    "nbformat": 4,
    "nbformat_minor": 5,
}


@pytest.fixture
def records():
    return [dict(record) for record in RECORDS]


@pytest.fixture
def bank_path(tmp_path):
    path = tmp_path / "questions.yaml"
    path.write_text(yaml.safe_dump(RECORDS, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture
def bank(bank_path):
    return questions.load_bank(bank_path)


@pytest.fixture
def notebooks_dir(tmp_path):
    directory = tmp_path / "notebooks"
    directory.mkdir()
    (directory / "nb01.ipynb").write_text(json.dumps(NOTEBOOK), encoding="utf-8")
    return directory


def test_load_bank_builds_questions(bank):
    assert all(isinstance(q, Question) for q in bank)
    first, second = bank
    assert first.id == "FIT-01"
    assert first.follow_ups == ("How do you detect it?", "How do you fix it?")
    assert (first.answer_zh, first.syllabus) == ("模型记住了噪声。", True)
    assert (second.answer_zh, second.follow_ups, second.syllabus) == ("", (), False)


FOLDED = """\
- id: FIT-01
  cluster: fitting
  difficulty: E
  question_en: What is overfitting?
  question_zh: 什么是
    过拟合？
  answer: >-
    The model memorises
    noise.
  answer_zh: >-
    模型记住了训练集里的
    噪声，用 Opacus
    做 DP-SGD 时
    ε = 1。
  notebook: nb01
  section: my-label
"""


def test_load_bank_joins_wrapped_chinese_lines_without_a_space(tmp_path):
    path = tmp_path / "folded.yaml"
    path.write_text(FOLDED, encoding="utf-8")
    (q,) = questions.load_bank(path)
    assert q.question_zh == "什么是过拟合？"
    assert q.answer_zh == "模型记住了训练集里的噪声，用 Opacus 做 DP-SGD 时 ε = 1。"  # spaces beside Latin kept
    assert q.answer == "The model memorises noise."


def test_load_bank_lists_problems(tmp_path, records):
    records[1]["id"] = "FIT-01"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(records), encoding="utf-8")
    with pytest.raises(ValueError, match="FIT-01: duplicate id"):
        questions.load_bank(path)


def test_load_bank_rejects_empty_file(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("", encoding="utf-8")
    with pytest.raises(ValueError, match="non-empty list"):
        questions.load_bank(path)


def test_record_problems_of_a_valid_bank(records):
    assert questions.record_problems(records) == []


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"id": "FIT-X02"}, "FIT-X02: duplicate id"),
        ({"difficulty": "X"}, "FIT-01: difficulty must be one of ['E', 'H', 'M']"),
        ({"answer": "   "}, "FIT-01: 'answer' must be a non-empty string"),
        ({"hint": "think"}, "FIT-01: unknown keys ['hint']"),
        ({"id": "fit-1"}, "fit-1: id must look like 'FIT-01' or 'FIT-X01'"),
        ({"follow_ups": "why?"}, "FIT-01: follow_ups must be a list of non-empty strings"),
        ({"follow_ups": [""]}, "FIT-01: follow_ups must be a list of non-empty strings"),
        ({"syllabus": "yes"}, "FIT-01: syllabus must be true or false"),
    ],
)
def test_record_problems_finds_each_problem(records, change, problem):
    records[0].update(change)
    assert questions.record_problems(records) == [problem]


def test_record_problems_missing_key(records):
    del records[0]["notebook"]
    assert questions.record_problems(records) == ["FIT-01: 'notebook' must be a non-empty string"]


def test_record_problems_names_a_record_without_id_by_position(records):
    del records[1]["id"]
    assert questions.record_problems(records) == ["question #2: 'id' must be a non-empty string"]


@pytest.mark.parametrize("records", [None, [], {"id": "FIT-01"}, "FIT-01"])
def test_record_problems_needs_a_non_empty_list(records):
    assert questions.record_problems(records) == ["the bank must be a non-empty list of questions"]


def test_record_problems_rejects_non_mapping_records(records):
    assert questions.record_problems([*records, "FIT-03"]) == ["question #3: must be a mapping, got str"]


def test_find_keeps_the_order_given(bank):
    assert [q.id for q in questions.find(["FIT-X02", "FIT-01"], bank)] == ["FIT-X02", "FIT-01"]


def test_find_unknown_id(bank):
    with pytest.raises(KeyError, match="NOPE-01"):
        questions.find(["FIT-01", "NOPE-01"], bank)


def test_find_loads_the_default_bank(monkeypatch, bank):
    monkeypatch.setattr(questions, "load_bank", lambda: bank)
    assert questions.find(["FIT-01"]) == [bank[0]]


def test_notebook_sections_maps_labels_to_headings(notebooks_dir):
    assert questions.notebook_sections(notebooks_dir / "nb01.ipynb") == {
        "my-label": "My heading",
        "spaced": "Spaced heading",
        "dangling": "",
        "last": "",
    }


def test_pointer_problems_of_valid_pointers(bank, notebooks_dir):
    assert questions.pointer_problems(bank, notebooks_dir) == []


def test_pointer_problems_reports_each_broken_pointer(bank, notebooks_dir):
    broken = [
        dataclasses.replace(bank[0], id="A-01", notebook="nb99"),
        dataclasses.replace(bank[0], id="A-02", section="nope"),
        dataclasses.replace(bank[0], id="A-03", section="dangling"),
    ]
    assert questions.pointer_problems(broken, notebooks_dir) == [
        "A-01: notebook nb99.ipynb does not exist",
        "A-02: no '(nope)=' label in nb01.ipynb",
        "A-03: label 'dangling' in nb01.ipynb is not followed by a heading",
    ]


def test_pointer_problems_reads_each_notebook_once(monkeypatch, bank, notebooks_dir):
    parsed = []
    real = questions.notebook_sections
    monkeypatch.setattr(questions, "notebook_sections", lambda path: parsed.append(path) or real(path))
    questions.pointer_problems(bank, notebooks_dir)
    assert parsed == [notebooks_dir / "nb01.ipynb"]


def test_card_markdown_with_section_title(bank):
    assert questions.card_markdown(bank[0], "My heading") == "\n".join(
        [
            "**FIT-01** · easy · answered in *§ My heading*",
            "",
            "> **Q:** What is overfitting?  ",
            "> **问：** 什么是过拟合？",
            "",
            "<details><summary>Try first, then show the 30-second answer · 先想一想，再看 30 秒回答</summary>",
            "",
            "**30-second answer.** The model memorises noise.",
            "",
            "**30 秒回答：** 模型记住了噪声。",
            "",
            "*Follow-ups:* How do you detect it? · How do you fix it?",
            "",
            "</details>",
        ]
    )


def test_card_markdown_without_title_or_extras(bank):
    card = questions.card_markdown(bank[1])
    assert card.startswith("**FIT-X02** · hard · answered in *section `my-label`*")
    assert "30 秒回答：" not in card
    assert "Follow-ups" not in card
    assert card.endswith("</details>")


def test_card_markdown_medium_difficulty(bank):
    assert " · medium · " in questions.card_markdown(dataclasses.replace(bank[0], difficulty="M"))


def test_cards_renders_markdown_with_section_titles(bank, notebooks_dir):
    rendered = questions.cards("FIT-X02", "FIT-01", bank=bank, notebooks_dir=notebooks_dir)
    assert isinstance(rendered, Markdown)
    assert rendered.data == "\n\n---\n\n".join(
        [questions.card_markdown(bank[1], "My heading"), questions.card_markdown(bank[0], "My heading")]
    )


def test_cards_without_the_notebook_points_at_the_label(bank, tmp_path):
    rendered = questions.cards("FIT-01", bank=bank, notebooks_dir=tmp_path)
    assert rendered.data == questions.card_markdown(bank[0])


def test_cards_needs_an_id(bank):
    with pytest.raises(ValueError, match="question id"):
        questions.cards(bank=bank)


def test_question_is_immutable(bank):
    with pytest.raises(dataclasses.FrozenInstanceError):
        bank[0].id = "OTHER-01"
