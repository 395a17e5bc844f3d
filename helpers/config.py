"""Paths of the course and the fast/full switch used by every notebook."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

REPO_ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
DATA_DIR = REPO_ROOT / "data"
BUILD_DIR = REPO_ROOT / "build"
QUESTION_BANK = REPO_ROOT / "questions.yaml"

PROGRESS_ENV = "MLLAB_PROGRESS"


def pick(fast: bool, fast_value: T, full_value: T) -> T:
    """Return ``fast_value`` in fast mode and ``full_value`` otherwise.

    Notebooks size their experiments with it: ``n_epochs = pick(FAST, 30, 200)``.
    """
    if not isinstance(fast, bool):
        raise TypeError(f"fast must be a bool (the notebook's FAST parameter), got {type(fast).__name__}")
    return fast_value if fast else full_value


def progress_enabled() -> bool:
    """Whether loops should draw progress bars.

    On by default for learners; the test harness and the book build set ``MLLAB_PROGRESS=0`` so that
    stored outputs hold results, not bars.
    """
    return os.environ.get(PROGRESS_ENV, "1").strip().lower() not in {"0", "false", "no", "off"}
