"""Drill the question bank in a terminal, scheduled by Leitner boxes: ``make quiz`` or ``python -m tools.quiz``.

Scheduling: each question sits in one of six Leitner boxes. A question you knew moves up one box
and comes back after that box's interval (1, 3, 7, 14, 30 days); one you missed drops to box 0
and is due again at once. Leitner boxes were chosen over SM-2 because a self-graded "knew it /
missed it" is the only grade an interview answer honestly gets (SM-2 wants a 0-5 quality score
and keeps an ease factor per card), and because the schedule can be explained in one sentence.

Progress is one JSON file in the user's data directory (``platformdirs``), never in the
repository; ``--progress PATH`` or ``MLLAB_QUIZ_PROGRESS`` choose another file. A corrupt or
old-format file is kept beside the new one under another name, and the drill starts afresh.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

from helpers.config import NOTEBOOKS_DIR
from helpers.questions import DIFFICULTIES, Question, load_bank, notebook_sections

INTERVAL_DAYS = (0, 1, 3, 7, 14, 30)  # the wait before a question in box i is due again
PROGRESS_VERSION = 1
LANGUAGES = ("en", "zh", "both")
PROGRESS_ENV = "MLLAB_QUIZ_PROGRESS"
GRADE_KEYS = {"y", "n", "s", "q"}


@dataclass
class CardState:
    """Where one question stands: its box, the day it is due, and how often it was graded."""

    box: int = 0
    due: str = ""  # ISO date; "" = never seen, due now
    seen: int = 0
    known: int = 0


@dataclass
class Progress:
    """Every question's state, by id."""

    cards: dict[str, CardState] = field(default_factory=dict)

    def grade(self, qid: str, knew: bool, today: date) -> CardState:
        """Move ``qid`` up a box (knew it) or back to box 0 (missed it), and set its next due day."""
        state = self.cards.setdefault(qid, CardState())
        state.box = min(state.box + 1, len(INTERVAL_DAYS) - 1) if knew else 0
        state.due = (today + timedelta(days=INTERVAL_DAYS[state.box])).isoformat()
        state.seen += 1
        state.known += int(knew)
        return state

    def due(self, questions: Sequence[Question], today: date) -> list[Question]:
        """The questions due today: lowest box first, unseen ones after the missed ones, bank order within."""
        def state(q: Question) -> CardState:
            return self.cards.get(q.id, CardState())

        ready = [q for q in questions if not state(q).due or date.fromisoformat(state(q).due) <= today]
        order = {q.id: i for i, q in enumerate(questions)}
        return sorted(ready, key=lambda q: (state(q).box, state(q).seen == 0, order[q.id]))


def default_progress_path() -> Path:
    """``$MLLAB_QUIZ_PROGRESS``, else ``quiz-progress.json`` in the user's data directory."""
    if os.environ.get(PROGRESS_ENV):
        return Path(os.environ[PROGRESS_ENV])
    import platformdirs

    return Path(platformdirs.user_data_dir("mllab-interview-lab", appauthor=False)) / "quiz-progress.json"


def load_progress(path: Path, now: datetime | None = None) -> tuple[Progress, str | None]:
    """Read the progress file; return it and a message when it had to be set aside (else None)."""
    if not path.exists():
        return Progress(), None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(raw, dict) or raw.get("version") != PROGRESS_VERSION:
            raise ValueError(f"version {raw.get('version') if isinstance(raw, dict) else None!r}, "
                             f"expected {PROGRESS_VERSION}")
        cards = {qid: CardState(**state) for qid, state in raw["cards"].items()}
        for qid, state in cards.items():
            if not 0 <= state.box < len(INTERVAL_DAYS):
                raise ValueError(f"{qid} is in box {state.box}, outside 0-{len(INTERVAL_DAYS) - 1}")
            if state.due:
                date.fromisoformat(state.due)  # raises ValueError on a malformed date
        return Progress(cards), None
    except (ValueError, TypeError, KeyError, AttributeError) as problem:
        stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
        kept = path.with_name(f"{path.name}.unreadable-{stamp}")
        path.replace(kept)
        return Progress(), (f"The progress file {path} could not be read ({problem}); it was kept as {kept} "
                            "and the drill starts afresh.")


def save_progress(progress: Progress, path: Path) -> None:
    """Write the progress file atomically (a crash never leaves half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"version": PROGRESS_VERSION, "cards": {qid: asdict(s) for qid, s in sorted(progress.cards.items())}}
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(payload, indent=1), encoding="utf-8")
    temporary.replace(path)


def cluster_keys(q: Question) -> set[str]:
    """The names a cluster answers to: its full name, its number ("05") and its id prefix ("FIT")."""
    return {q.cluster, q.cluster.split()[0], q.id.split("-")[0]}


def select(bank: Sequence[Question], clusters: Sequence[str] = (), difficulties: Sequence[str] = ()) -> list[Question]:
    """The questions of the given clusters and difficulties (empty = all); unknown values raise ValueError.

    A cluster is named by its number ("05"), its question-id prefix ("FIT") or its full name.
    """
    known = set().union(*(cluster_keys(q) for q in bank)) if bank else set()
    unknown = sorted(set(clusters) - known)
    if unknown:
        names = sorted({f"{q.cluster.split()[0]} ({q.id.split('-')[0]})" for q in bank})
        raise ValueError(f"unknown cluster(s) {unknown}; the bank has {', '.join(names)}")
    wrong = sorted(set(difficulties) - set(DIFFICULTIES))
    if wrong:
        raise ValueError(f"unknown difficulty {wrong}; use {sorted(DIFFICULTIES)} ({', '.join(DIFFICULTIES.values())})")
    return [q for q in bank if (not clusters or cluster_keys(q) & set(clusters))
            and (not difficulties or q.difficulty in difficulties)]


def render_question(q: Question, lang: str) -> str:
    """The question side of a card."""
    lines = [f"{q.id} · cluster {q.cluster} · {DIFFICULTIES[q.difficulty]}", ""]
    if lang in ("en", "both"):
        lines.append(f"Q: {q.question_en.strip()}")
    if lang in ("zh", "both"):
        lines.append(f"问：{q.question_zh.strip()}")
    return "\n".join(lines)


def evidence(q: Question, notebooks_dir: Path = NOTEBOOKS_DIR) -> str:
    """Where the course proves the answer: the notebook section, and its page in the built book."""
    path = notebooks_dir / f"{q.notebook}.ipynb"
    title = notebook_sections(path).get(q.section, q.section) if path.is_file() else q.section
    return (f"Evidence: notebooks/{q.notebook}.ipynb, section “{title}”; "
            f"in the book: build/book/_build/html/notebooks/{q.notebook}.html#{q.section}")


def render_answer(q: Question, lang: str, notebooks_dir: Path = NOTEBOOKS_DIR) -> str:
    """The answer side of a card: the 30-second answer, the follow-ups and the evidence."""
    lines = []
    if lang in ("en", "both"):
        lines.append(f"30-second answer: {q.answer.strip()}")
    if lang in ("zh", "both") and q.answer_zh:
        lines.append(f"30 秒回答：{q.answer_zh.strip()}")
    if q.follow_ups:
        lines += ["", "Follow-ups:", *(f"  - {f}" for f in q.follow_ups)]
    lines += ["", evidence(q, notebooks_dir)]
    return "\n".join(lines)


@dataclass
class Session:
    """What one drill did."""

    knew: int = 0
    missed: int = 0
    skipped: int = 0
    quit: bool = False


def drill(questions: Sequence[Question], progress: Progress, *, lang: str, ask: Callable[[str], str],
          show: Callable[[str], None], today: date, limit: int | None = None,
          notebooks_dir: Path = NOTEBOOKS_DIR) -> Session:
    """Run a drill over the due questions. ``ask(prompt)`` returns the key the user typed."""
    if lang not in LANGUAGES:
        raise ValueError(f"lang must be one of {LANGUAGES}, got {lang!r}")
    session = Session()
    due = progress.due(questions, today)[:limit]
    if not due:
        show("Nothing is due today. Come back tomorrow, or widen the selection.")
    try:
        for number, q in enumerate(due, 1):
            if not _card(number, len(due), q, progress, session, lang, ask, show, today, notebooks_dir):
                session.quit = True
                break
    except (EOFError, KeyboardInterrupt):  # input closed or Ctrl-C: a quit that keeps what was graded
        session.quit = True
    return session


def _card(number: int, total: int, q: Question, progress: Progress, session: Session, lang: str,
          ask: Callable[[str], str], show: Callable[[str], None], today: date, notebooks_dir: Path) -> bool:
    """Show one card and record its grade; False when the user quits."""
    show(f"\n[{number}/{total}] " + render_question(q, lang))
    if ask("Enter: show the answer · q: quit > ").strip().lower() == "q":
        return False
    show(render_answer(q, lang, notebooks_dir))
    while (key := ask("y: I knew it · n: I missed it · s: skip · q: quit > ").strip().lower()) not in GRADE_KEYS:
        show("Please type y, n, s or q.")
    if key == "q":
        return False
    if key == "s":
        session.skipped += 1
        return True
    state = progress.grade(q.id, key == "y", today)
    session.knew += key == "y"
    session.missed += key == "n"
    show(f"→ box {state.box}, due again {state.due}")
    return True


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cluster", action="append", default=[], help="a cluster to drill, by number (05) or prefix (FIT); repeatable")
    parser.add_argument("--difficulty", action="append", default=[], choices=sorted(DIFFICULTIES),
                        help="E, M or H (repeatable)")
    parser.add_argument("--lang", choices=LANGUAGES, default="both", help="the language of the cards")
    parser.add_argument("--limit", type=int, default=None, help="at most this many questions this session")
    parser.add_argument("--progress", type=Path, default=None, help="the progress file (default: user data dir)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    bank = load_bank()
    try:
        questions = select(bank, args.cluster, args.difficulty)
    except ValueError as problem:
        print(problem, file=sys.stderr)
        return 2
    if not questions:
        print("No question matches that selection.", file=sys.stderr)
        return 1
    path = args.progress or default_progress_path()
    progress, message = load_progress(path)
    if message:
        print(message)
    print(f"{len(questions)} questions selected; progress in {path}")
    session = drill(questions, progress, lang=args.lang, ask=input, show=print, today=date.today(), limit=args.limit)
    save_progress(progress, path)
    print(f"\nKnew {session.knew}, missed {session.missed}, skipped {session.skipped}. Progress saved.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
