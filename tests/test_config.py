import pytest

from helpers import config
from helpers.config import pick, progress_enabled


def test_pick_returns_fast_value_in_fast_mode():
    assert pick(True, 30, 200) == 30


def test_pick_returns_full_value_in_full_mode():
    assert pick(False, 30, 200) == 200


@pytest.mark.parametrize("fast", [1, 0, "yes", None])
def test_pick_rejects_non_bool_fast(fast):
    with pytest.raises(TypeError, match="fast"):
        pick(fast, 30, 200)


def test_progress_is_on_when_variable_unset(monkeypatch):
    monkeypatch.delenv(config.PROGRESS_ENV, raising=False)
    assert progress_enabled()


@pytest.mark.parametrize("value", ["0", "false", "No", " OFF "])
def test_progress_is_off_for_falsy_values(monkeypatch, value):
    monkeypatch.setenv(config.PROGRESS_ENV, value)
    assert not progress_enabled()


@pytest.mark.parametrize("value", ["1", "true", "yes", ""])
def test_progress_is_on_for_other_values(monkeypatch, value):
    monkeypatch.setenv(config.PROGRESS_ENV, value)
    assert progress_enabled()


def test_paths_are_anchored_at_the_repository_root():
    assert (config.REPO_ROOT / "helpers" / "config.py").is_file()
    assert config.NOTEBOOKS_DIR == config.REPO_ROOT / "notebooks"
    assert config.DATA_DIR == config.REPO_ROOT / "data"
    assert config.QUESTION_BANK == config.REPO_ROOT / "questions.yaml"
