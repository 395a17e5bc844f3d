"""``claim``: every statement a notebook makes is measured and asserted.

>>> claim(0.93 > 0.90, "the model beats the baseline", accuracy="93.0 %", baseline="90.0 %")
✔ the model beats the baseline (accuracy = 93.0 %, baseline = 90.0 %)

Two other kinds of line keep the ✔ honest: ``claim_if`` prints ``○ not asserted`` where a measured
premise fails, and ``worked`` prints ``≡ arithmetic:`` or ``≡ identity:`` for a line that could not
have come out otherwise (arithmetic on constants, a theorem): shown, checked, never counted as
evidence.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

PASS_MARK = "✔"
NOT_ASSERTED_MARK = "○"
WORKED_MARK = "≡"
WORKED_KINDS = ("arithmetic", "identity")


def format_value(value: Any) -> str:
    """Format a measured value for a claim line: floats with 4 significant digits, the rest as str."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return str(value)
    if isinstance(value, numbers.Integral):
        return str(int(value))
    value = float(value)
    if math.isnan(value) or math.isinf(value):
        return str(value)
    return f"{value:.4g}"


def _measured_text(measured: dict[str, Any]) -> str:
    return ", ".join(f"{name} = {format_value(value)}" for name, value in measured.items())


def _check_statement(statement: Any) -> None:
    if not isinstance(statement, str) or not statement.strip():
        raise TypeError("statement must be a non-empty str describing what is claimed")


def _truth(value: Any, name: str) -> bool:
    """``bool(value)``, refusing values with no single truth value (a multi-element array)."""
    try:
        return bool(value)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{name} must be a single truth value, got {type(value).__name__}: {error}") from error


def _suffix(measured: dict[str, Any]) -> str:
    details = _measured_text(measured)
    return f" ({details})" if details else ""


def claim(condition: Any, statement: str, **measured: Any) -> None:
    """Assert ``condition``; print ``✔ statement (measured values)`` when it holds.

    Pass the numbers the condition was computed from as keyword arguments, with units in the name or
    in a string value (``gap_pp=3.2`` or ``gap="3.2 pp"``). When the condition is false an
    ``AssertionError`` is raised whose message names the statement and the measured values, so a
    failing notebook cell says what was expected and what was measured.
    """
    _check_statement(statement)
    holds = _truth(condition, "condition")
    if not holds:
        raise AssertionError(f"Claim failed: {statement}{_suffix(measured)}")
    print(f"{PASS_MARK} {statement}{_suffix(measured)}")


def claim_if(premise: Any, premise_text: str, condition: Any, statement: str, **measured: Any) -> bool:
    """Assert a claim that needs particular hardware or conditions only where its premise holds.

    ``premise`` is measured in the same run (free cores, CPU flags, CUDA...). When it holds this is
    ``claim(condition, statement, **measured)``; when it does not, the statement is printed as
    ``○ not asserted: statement (needs: premise_text; measured values)`` and nothing is raised, so a
    learner's machine that lacks the premise sees the measurement and the reason, not a failure.
    Returns whether the claim was asserted.
    """
    if not isinstance(premise_text, str) or not premise_text.strip():
        raise TypeError("premise_text must be a non-empty str saying what the claim needs")
    if _truth(premise, "premise"):
        claim(condition, statement, **measured)
        return True
    _check_statement(statement)
    details = _measured_text(measured)
    print(f"{NOT_ASSERTED_MARK} not asserted: {statement} (needs: {premise_text}"
          f"{'; ' + details if details else ''})")
    return False


def worked(condition: Any, statement: str, *, kind: str = "arithmetic", **values: Any) -> None:
    """A worked example: arithmetic on stated numbers, or an identity that holds for any data.

    It is checked like a claim (a false one is a bug in the notebook and raises ``AssertionError``),
    but printed as ``≡ arithmetic: statement (values)`` or ``≡ identity: ...``, never with the ✔ of
    a measurement: nothing measured on this machine could have made it come out otherwise.
    """
    if kind not in WORKED_KINDS:
        raise ValueError(f"kind must be one of {WORKED_KINDS}, got {kind!r}")
    _check_statement(statement)
    if not _truth(condition, "condition"):
        raise AssertionError(f"Worked example is wrong ({kind}): {statement}{_suffix(values)}")
    print(f"{WORKED_MARK} {kind}: {statement}{_suffix(values)}")
