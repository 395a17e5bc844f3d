import json
from datetime import date, datetime

import pytest

from helpers.questions import Question, load_bank
from tools import quiz

TODAY = date(2026, 12, 2)


def question(qid: str, cluster: str = "05 Overfitting", difficulty: str = "E") -> Question:
    return Question(id=qid, cluster=cluster, difficulty=difficulty, question_en=f"What is {qid}?",
                    question_zh=f"{qid} 是什么？", answer=f"{qid} is this.", notebook="nb", section="sec",
                    answer_zh=f"{qid} 是这个。", follow_ups=("And then?",))


BANK = [question("FIT-01"), question("FIT-02", difficulty="H"), question("EVAL-01", cluster="04 Evaluation")]


def scripted(keys):
    """An ``ask`` that types the given keys in turn, and a ``show`` that records what was printed."""
    typed, shown = iter(keys), []
    return (lambda prompt: next(typed)), shown.append, shown


# ---- scheduling ------------------------------------------------------------------------------


def test_a_known_question_climbs_the_boxes_and_waits_longer():
    progress = quiz.Progress()
    days = []
    for _ in range(7):
        state = progress.grade("FIT-01", True, TODAY)
        days.append((date.fromisoformat(state.due) - TODAY).days)
    assert days == [1, 3, 7, 14, 30, 30, 30]  # the top box keeps its interval
    assert progress.cards["FIT-01"].seen == 7 and progress.cards["FIT-01"].known == 7


def test_a_missed_question_drops_to_box_zero_and_is_due_at_once():
    progress = quiz.Progress()
    for _ in range(3):
        progress.grade("FIT-01", True, TODAY)
    state = progress.grade("FIT-01", False, TODAY)
    assert state.box == 0 and state.due == TODAY.isoformat() and state.known == 3


def test_due_orders_missed_then_unseen_then_higher_boxes():
    progress = quiz.Progress()
    progress.grade("FIT-02", False, TODAY)  # box 0, due today
    progress.grade("EVAL-01", True, date(2026, 11, 1))  # box 1, due long ago
    assert [q.id for q in progress.due(BANK, TODAY)] == ["FIT-02", "FIT-01", "EVAL-01"]
    progress.grade("FIT-01", True, TODAY)  # due tomorrow: not today
    assert [q.id for q in progress.due(BANK, TODAY)] == ["FIT-02", "EVAL-01"]


def test_select_filters_and_refuses_unknown_values():
    assert [q.id for q in quiz.select(BANK, ["FIT"])] == ["FIT-01", "FIT-02"]
    assert [q.id for q in quiz.select(BANK, ["04"])] == ["EVAL-01"]
    assert [q.id for q in quiz.select(BANK, ["05 Overfitting", "EVAL"])] == ["FIT-01", "FIT-02", "EVAL-01"]
    assert [q.id for q in quiz.select(BANK, [], ["H"])] == ["FIT-02"]
    assert quiz.select(BANK) == BANK
    with pytest.raises(ValueError, match="unknown cluster"):
        quiz.select(BANK, ["NOPE"])
    with pytest.raises(ValueError, match="unknown difficulty"):
        quiz.select(BANK, [], ["X"])


# ---- the progress file ---------------------------------------------------------------------------


def test_progress_round_trips(tmp_path):
    path = tmp_path / "deep" / "progress.json"
    progress = quiz.Progress()
    progress.grade("FIT-01", True, TODAY)
    quiz.save_progress(progress, path)
    loaded, message = quiz.load_progress(path)
    assert message is None and loaded.cards == progress.cards
    assert not list(path.parent.glob("*.tmp"))


def test_a_missing_progress_file_is_a_fresh_start(tmp_path):
    progress, message = quiz.load_progress(tmp_path / "none.json")
    assert progress.cards == {} and message is None


@pytest.mark.parametrize("content", [
    "{not json",
    json.dumps({"version": 0, "cards": {}}),
    json.dumps({"version": quiz.PROGRESS_VERSION, "cards": {"FIT-01": {"box": 9, "due": ""}}}),
    json.dumps({"version": quiz.PROGRESS_VERSION, "cards": {"FIT-01": {"box": 1, "due": "soon"}}}),
    json.dumps({"version": quiz.PROGRESS_VERSION, "cards": {"FIT-01": {"colour": "red"}}}),
    json.dumps([1, 2]),
])
def test_an_unreadable_progress_file_is_kept_aside_with_a_message(tmp_path, content):
    path = tmp_path / "progress.json"
    path.write_text(content)
    progress, message = quiz.load_progress(path, now=datetime(2026, 12, 2, 9, 30))
    kept = tmp_path / "progress.json.unreadable-20261202-093000"
    assert progress.cards == {} and not path.exists() and kept.read_text() == content
    assert str(kept) in message and "starts afresh" in message


def test_default_progress_path_is_outside_the_repository(monkeypatch):
    from helpers.config import REPO_ROOT

    monkeypatch.delenv(quiz.PROGRESS_ENV, raising=False)
    assert REPO_ROOT not in quiz.default_progress_path().parents
    monkeypatch.setenv(quiz.PROGRESS_ENV, "/tmp/elsewhere.json")
    assert str(quiz.default_progress_path()) == "/tmp/elsewhere.json"


# ---- rendering and the drill --------------------------------------------------------------------


def test_cards_follow_the_language():
    q = BANK[0]
    assert "Q: What is FIT-01?" in quiz.render_question(q, "en") and "问" not in quiz.render_question(q, "en")
    assert "问：FIT-01 是什么？" in quiz.render_question(q, "zh") and "Q:" not in quiz.render_question(q, "zh")
    both = quiz.render_answer(q, "both")
    assert "30-second answer: FIT-01 is this." in both and "30 秒回答：FIT-01 是这个。" in both
    assert "  - And then?" in both and "Evidence: notebooks/nb.ipynb" in both and "nb.html#sec" in both


def test_evidence_names_the_real_section_title():
    q = next(q for q in load_bank() if q.id == "FIT-X01")
    assert "Adam's `weight_decay` is L2" in quiz.evidence(q)


def test_drill_grades_skips_and_quits(tmp_path):
    progress = quiz.Progress()
    ask, show, shown = scripted(["", "y", "", "maybe", "n", "q"])
    session = quiz.drill(BANK, progress, lang="en", ask=ask, show=show, today=TODAY, notebooks_dir=tmp_path)
    assert (session.knew, session.missed, session.quit) == (1, 1, True)
    assert progress.cards["FIT-01"].box == 1 and progress.cards["FIT-02"].box == 0
    assert "EVAL-01" not in progress.cards
    assert any("Please type y, n, s or q." in line for line in shown)


def test_drill_honours_the_limit_and_says_when_nothing_is_due(tmp_path):
    progress = quiz.Progress()
    ask, show, shown = scripted(["", "s"])
    session = quiz.drill(BANK, progress, lang="both", ask=ask, show=show, today=TODAY, limit=1, notebooks_dir=tmp_path)
    assert session.skipped == 1 and progress.cards == {}
    for q in BANK:
        progress.grade(q.id, True, TODAY)
    ask, show, shown = scripted([])
    quiz.drill(BANK, progress, lang="en", ask=ask, show=show, today=TODAY, notebooks_dir=tmp_path)
    assert shown == ["Nothing is due today. Come back tomorrow, or widen the selection."]
    with pytest.raises(ValueError, match="lang"):
        quiz.drill(BANK, progress, lang="fr", ask=ask, show=show, today=TODAY)


def test_main_saves_progress_even_when_input_ends(tmp_path, monkeypatch, capsys):
    path = tmp_path / "progress.json"
    keys = iter(["", "y"])

    def typed(prompt):
        try:
            return next(keys)
        except StopIteration:
            raise EOFError from None

    monkeypatch.setattr("builtins.input", typed)
    assert quiz.main(["--cluster", "FIT", "--difficulty", "E", "--progress", str(path)]) == 0
    saved = json.loads(path.read_text())
    assert saved["version"] == quiz.PROGRESS_VERSION and saved["cards"]["FIT-01"]["box"] == 1
    assert "Knew 1, missed 0" in capsys.readouterr().out
    assert quiz.main(["--cluster", "NOPE", "--progress", str(path)]) == 2
    assert quiz.main(["--cluster", "00", "--difficulty", "H", "--difficulty", "E", "--progress", str(path)]) in (0, 1)
