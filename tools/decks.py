"""Flashcard decks of the question bank: Anki packages (``genanki``) and CSV files, in English,
Chinese and bilingual variants. ``make deck`` writes them to ``build/decks``; the book links them.

Ids are stable: each variant's deck and note type have fixed ids, and each note's guid is derived
from the question id and the variant, so re-importing a rebuilt deck updates its cards in Anki
instead of adding duplicates.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import html
import sys
from collections.abc import Sequence
from pathlib import Path

from helpers.config import REPO_ROOT
from helpers.questions import DIFFICULTIES, Question, load_bank

VARIANTS = ("en", "zh", "bilingual")
FIELDS = ("Id", "Question", "Answer", "FollowUps", "Cluster", "Difficulty", "Evidence")
DECK_TITLE = "ML Engineering Interview Lab"
CARD_CSS = ".card { font-family: sans-serif; font-size: 18px; text-align: left; } .meta { color: #666; font-size: 14px; }"


def stable_id(*parts: str) -> int:
    """A fixed 31-bit id for a name (Anki wants ints; the same name always gives the same id)."""
    return int(hashlib.sha256("/".join(parts).encode()).hexdigest()[:8], 16) & 0x7FFFFFFF


def fields(q: Question, variant: str) -> list[str]:
    """The note's fields for one variant, as HTML (line breaks as <br>)."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    english, chinese = variant in ("en", "bilingual"), variant in ("zh", "bilingual")
    question = [q.question_en.strip()] * english + [q.question_zh.strip()] * chinese
    answer = [q.answer.strip()] * english + ([q.answer_zh.strip()] if chinese and q.answer_zh else [])
    if chinese and not english and not q.answer_zh:
        answer = [q.answer.strip()]  # no Chinese answer yet: the English one rather than an empty card
    evidence = f"notebooks/{q.notebook}.ipynb, section {q.section}"
    return [q.id, *("<br><br>".join(html.escape(part) for part in parts) for parts in (question, answer)),
            "<br>".join(html.escape(f) for f in q.follow_ups), q.cluster, DIFFICULTIES[q.difficulty],
            html.escape(evidence)]


def note_guid(q: Question, variant: str) -> str:
    """The note's guid: the same question in the same variant keeps it across rebuilds."""
    import genanki

    return genanki.guid_for("mllab", variant, q.id)


def build_apkg(bank: Sequence[Question], variant: str, path: Path) -> int:
    """Write one Anki package; return its number of notes."""
    import genanki

    model = genanki.Model(
        stable_id("model", variant), f"{DECK_TITLE} ({variant})",
        fields=[{"name": name} for name in FIELDS],
        templates=[{"name": "Question → answer",
                    "qfmt": '<div class="meta">{{Id}} · {{Difficulty}}</div>{{Question}}',
                    "afmt": '{{FrontSide}}<hr id="answer">{{Answer}}<br><br><i>{{FollowUps}}</i>'
                            '<div class="meta">{{Evidence}}</div>'}],
        css=CARD_CSS,
    )
    deck = genanki.Deck(stable_id("deck", variant), f"{DECK_TITLE} ({variant})")
    for q in bank:
        deck.add_note(genanki.Note(model=model, fields=fields(q, variant), guid=note_guid(q, variant),
                                   tags=[q.id.split("-")[0], DIFFICULTIES[q.difficulty]]))
    path.parent.mkdir(parents=True, exist_ok=True)
    genanki.Package(deck).write_to_file(str(path))
    return len(deck.notes)


def write_csv(bank: Sequence[Question], variant: str, path: Path) -> int:
    """Write the same cards as a CSV (header row, UTF-8); return its number of rows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(FIELDS)
        for q in bank:
            writer.writerow([html.unescape(value.replace("<br>", "\n")) for value in fields(q, variant)])
    return len(bank)


def build_all(out: Path, bank: Sequence[Question] | None = None) -> dict[str, Path]:
    """Every variant as ``.apkg`` and ``.csv`` in ``out``; returns the files by name."""
    bank = load_bank() if bank is None else bank
    written = {}
    for variant in VARIANTS:
        for suffix, writer in ((".apkg", build_apkg), (".csv", write_csv)):
            path = out / f"mllab-questions-{variant}{suffix}"
            writer(bank, variant, path)
            written[path.name] = path
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "build" / "decks")
    args = parser.parse_args(argv)
    for path in build_all(args.out).values():
        print(f"{path}  ({path.stat().st_size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
