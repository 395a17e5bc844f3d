"""Argument checks shared by the helpers: one wording for every bad int or non-positive number."""

from __future__ import annotations

import numbers

import numpy as np


def check_int(name: str, value: object, minimum: int = 1) -> int:
    """``value`` as an ``int`` if it is an integer (Python or NumPy, not a bool) ``>= minimum``; else ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def check_positive(name: str, value: object) -> float:
    """``value`` as a ``float`` if it is a real number (not a bool) ``> 0``; NaN and bools raise ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
        raise ValueError(f"{name} must be a number > 0, got {value!r}")
    return float(value)
