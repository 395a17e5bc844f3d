"""The question bank: load and validate ``questions.yaml``, render cards, resolve section pointers.

Each notebook section that proves an answer carries a MyST label line, ``(label)=``, right above
its heading. A question points at ``notebook`` + ``section`` (the label); the book links to it with
``{ref}`` and the tests check that the label exists.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from helpers.config import NOTEBOOKS_DIR, QUESTION_BANK

DIFFICULTIES = {"E": "easy", "M": "medium", "H": "hard"}
REQUIRED = ("id", "cluster", "difficulty", "question_en", "question_zh", "answer", "notebook", "section")
OPTIONAL = ("answer_zh", "follow_ups", "syllabus")
ZH_FIELDS = ("question_zh", "answer_zh")
ID_PATTERN = re.compile(r"^[A-Z]+-X?\d{2}$")
LABEL_LINE = re.compile(r"^\(([A-Za-z0-9_.:-]+)\)=\s*$")
CJK = "\u2e80-\u9fff\u3000-\u303f\uff00-\uffef"  # CJK characters and CJK/full-width punctuation
CJK_GAP = re.compile(f"(?<=[{CJK}])[ \t\n]+(?=[{CJK}])")
HEADING_LINE = re.compile(r"^(#{1,6})\s+(.+?)\s*$")


@dataclass(frozen=True)
class Question:
    """One interview question and where the course proves its answer."""

    id: str
    cluster: str
    difficulty: str
    question_en: str
    question_zh: str
    answer: str
    notebook: str
    section: str
    answer_zh: str = ""
    follow_ups: tuple[str, ...] = ()
    syllabus: bool = True


def record_problems(records: Any) -> list[str]:
    """Every schema problem of the bank's records (empty list when valid)."""
    if not isinstance(records, list) or not records:
        return ["the bank must be a non-empty list of questions"]
    problems: list[str] = []
    seen: set[str] = set()
    for position, record in enumerate(records):
        where = f"question #{position + 1}"
        if not isinstance(record, dict):
            problems.append(f"{where}: must be a mapping, got {type(record).__name__}")
            continue
        where = f"{record.get('id', where)}"
        for key in REQUIRED:
            if not isinstance(record.get(key), str) or not record[key].strip():
                problems.append(f"{where}: '{key}' must be a non-empty string")
        unknown = set(record) - set(REQUIRED) - set(OPTIONAL)
        if unknown:
            problems.append(f"{where}: unknown keys {sorted(unknown)}")
        qid = record.get("id")
        if isinstance(qid, str):
            if not ID_PATTERN.match(qid):
                problems.append(f"{where}: id must look like 'FIT-01' or 'FIT-X01'")
            if qid in seen:
                problems.append(f"{where}: duplicate id")
            seen.add(qid)
        if record.get("difficulty") not in DIFFICULTIES and isinstance(record.get("difficulty"), str):
            problems.append(f"{where}: difficulty must be one of {sorted(DIFFICULTIES)}")
        follow_ups = record.get("follow_ups", [])
        if not isinstance(follow_ups, list) or not all(isinstance(f, str) and f for f in follow_ups):
            problems.append(f"{where}: follow_ups must be a list of non-empty strings")
        if not isinstance(record.get("syllabus", True), bool):
            problems.append(f"{where}: syllabus must be true or false")
    return problems


def load_bank(path: str | Path = QUESTION_BANK) -> list[Question]:
    """Load and validate the bank; raise ``ValueError`` listing every problem found."""
    import yaml

    with open(path, encoding="utf-8") as handle:
        records = yaml.safe_load(handle)
    problems = record_problems(records)
    if problems:
        raise ValueError(f"{path} is not a valid question bank:\n  " + "\n  ".join(problems))
    return [
        Question(**{**record, **{f: join_cjk_lines(record[f]) for f in ZH_FIELDS if record.get(f)},
                    "follow_ups": tuple(record.get("follow_ups", []))})
        for record in records
    ]


def join_cjk_lines(text: str) -> str:
    """Drop the whitespace between two CJK characters, where a wrapped Chinese line was joined.

    YAML's folded style (``>-``) turns each line break into a space: right in English, a visible gap
    in Chinese. Spaces beside Latin letters, digits or symbols (``用 Opacus 做``) are kept.
    """
    return CJK_GAP.sub("", text)


def find(ids: list[str] | tuple[str, ...], bank: list[Question] | None = None) -> list[Question]:
    """The questions with these ids, in the order given; unknown ids raise ``KeyError``."""
    bank = load_bank() if bank is None else bank
    by_id = {q.id: q for q in bank}
    missing = [qid for qid in ids if qid not in by_id]
    if missing:
        raise KeyError(f"unknown question ids {missing}; the bank has {sorted(by_id)}")
    return [by_id[qid] for qid in ids]


def notebook_sections(path: str | Path) -> dict[str, str]:
    """Map each ``(label)=`` in a notebook's markdown cells to the heading text right below it."""
    notebook = json.loads(Path(path).read_text(encoding="utf-8"))
    sections: dict[str, str] = {}
    for cell in notebook.get("cells", []):
        if cell.get("cell_type") != "markdown":
            continue
        lines = "".join(cell.get("source", "")).splitlines()
        for i, line in enumerate(lines):
            label = LABEL_LINE.match(line.strip())
            if not label:
                continue
            following = next((ln for ln in lines[i + 1 :] if ln.strip()), "")
            heading = HEADING_LINE.match(following.strip())
            sections[label.group(1)] = heading.group(2) if heading else ""
    return sections


def pointer_problems(bank: list[Question], notebooks_dir: str | Path = NOTEBOOKS_DIR) -> list[str]:
    """Questions whose notebook or labelled section does not exist."""
    problems = []
    cache: dict[str, dict[str, str]] = {}
    for q in bank:
        path = Path(notebooks_dir) / f"{q.notebook}.ipynb"
        if not path.is_file():
            problems.append(f"{q.id}: notebook {q.notebook}.ipynb does not exist")
            continue
        if q.notebook not in cache:
            cache[q.notebook] = notebook_sections(path)
        sections = cache[q.notebook]
        if q.section not in sections:
            problems.append(f"{q.id}: no '({q.section})=' label in {q.notebook}.ipynb")
        elif not sections[q.section]:
            problems.append(f"{q.id}: label '{q.section}' in {q.notebook}.ipynb is not followed by a heading")
    return problems


def card_markdown(question: Question, section_title: str | None = None) -> str:
    """One question as a Markdown card: both wordings and the difficulty in the open; the 30-second
    answer and the follow-ups folded in a ``<details>`` element, so the reader can try first (it
    folds in JupyterLab and in the book alike)."""
    where = f"§ {section_title}" if section_title else f"section `{question.section}`"
    lines = [
        f"**{question.id}** · {DIFFICULTIES[question.difficulty]} · answered in *{where}*",
        "",
        f"> **Q:** {question.question_en.strip()}  ",
        f"> **问：** {question.question_zh.strip()}",
        "",
        "<details><summary>Try first, then show the 30-second answer · 先想一想，再看 30 秒回答</summary>",
        "",
        f"**30-second answer.** {question.answer.strip()}",
    ]
    if question.answer_zh:
        lines += ["", f"**30 秒回答：** {question.answer_zh.strip()}"]
    if question.follow_ups:
        lines += ["", "*Follow-ups:* " + " · ".join(question.follow_ups)]
    lines += ["", "</details>"]
    return "\n".join(lines)


def cards(*ids: str, bank: list[Question] | None = None, notebooks_dir: str | Path = NOTEBOOKS_DIR):
    """Render the cards of ``ids`` as one Markdown display object (for a notebook's question cell)."""
    from IPython.display import Markdown

    if not ids:
        raise ValueError("pass at least one question id")
    chosen = find(list(ids), bank)
    parts = []
    for q in chosen:
        path = Path(notebooks_dir) / f"{q.notebook}.ipynb"
        title = notebook_sections(path).get(q.section) if path.is_file() else None
        parts.append(card_markdown(q, title))
    return Markdown("\n\n---\n\n".join(parts))
