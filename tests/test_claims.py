from fractions import Fraction

import numpy as np
import pytest

from helpers import claim
from helpers.claims import claim_if, format_value, worked


def test_claim_prints_pass_line_with_formatted_values(capsys):
    claim(0.93 > 0.90, "the model beats the baseline", accuracy=0.934567, baseline="90.0 %", n=120)
    assert capsys.readouterr().out == (
        "✔ the model beats the baseline (accuracy = 0.9346, baseline = 90.0 %, n = 120)\n"
    )


def test_claim_without_values_prints_statement_only(capsys):
    claim(True, "it holds")
    assert capsys.readouterr().out == "✔ it holds\n"


def test_failed_claim_names_statement_and_values(capsys):
    with pytest.raises(AssertionError) as info:
        claim(1.25 < 1.0, "loss went down", before=1.0, after=1.25)
    assert str(info.value) == "Claim failed: loss went down (before = 1, after = 1.25)"
    assert capsys.readouterr().out == ""


def test_claim_accepts_numpy_bool(capsys):
    claim(np.float64(2.0) > 1, "numpy comparison", value=np.float64(2.0))
    assert capsys.readouterr().out == "✔ numpy comparison (value = 2)\n"
    with pytest.raises(AssertionError, match="numpy false"):
        claim(np.bool_(False), "numpy false")


def test_claim_accepts_single_element_array(capsys):
    claim(np.array([True]), "one element")
    assert capsys.readouterr().out == "✔ one element\n"


def test_claim_rejects_multi_element_array():
    with pytest.raises(TypeError, match="condition"):
        claim(np.array([True, False, True]), "all positive")


@pytest.mark.parametrize("statement", ["", "   ", None, 3])
def test_claim_rejects_bad_statement(statement):
    with pytest.raises(TypeError, match="statement"):
        claim(True, statement)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.123456, "0.1235"),
        (12345678.9, "1.235e+07"),
        (np.float32(0.5), "0.5"),
        (Fraction(1, 3), "0.3333"),
        (7, "7"),
        (np.int64(12345678), "12345678"),
        (True, "True"),
        (np.bool_(False), "False"),
        (float("nan"), "nan"),
        (float("-inf"), "-inf"),
        ("3.2 pp", "3.2 pp"),
        (None, "None"),
    ],
)
def test_format_value(value, text):
    assert format_value(value) == text


def test_claim_if_asserts_where_the_premise_holds(capsys):
    assert claim_if(True, "two free cores", True, "processes beat threads", speedup=1.8) is True
    assert capsys.readouterr().out == "✔ processes beat threads (speedup = 1.8)\n"
    with pytest.raises(AssertionError, match="processes beat threads"):
        claim_if(True, "two free cores", False, "processes beat threads")


def test_claim_if_prints_the_measurement_where_the_premise_fails(capsys):
    assert claim_if(False, "two free cores", False, "processes beat threads", speedup=0.9) is False
    assert capsys.readouterr().out == (
        "○ not asserted: processes beat threads (needs: two free cores; speedup = 0.9)\n"
    )


@pytest.mark.parametrize(
    ("premise", "premise_text", "statement"),
    [(True, "", "s"), (True, None, "s"), (np.array([True, False]), "p", "s"), (False, "p", "")],
)
def test_claim_if_rejects_bad_arguments(premise, premise_text, statement):
    with pytest.raises(TypeError):
        claim_if(premise, premise_text, True, statement)


def test_worked_examples_print_their_kind_not_a_pass_mark(capsys):
    worked(7e9 * 16 / 1e9 == 112, "7 B parameters at 16 bytes each", gigabytes=112)
    worked(True, "MAE never exceeds RMSE", kind="identity")
    assert capsys.readouterr().out == (
        "≡ arithmetic: 7 B parameters at 16 bytes each (gigabytes = 112)\n≡ identity: MAE never exceeds RMSE\n"
    )


def test_a_wrong_worked_example_raises():
    with pytest.raises(AssertionError, match="Worked example is wrong \\(arithmetic\\): two and two"):
        worked(2 + 2 == 5, "two and two")


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [({"kind": "measured"}, ValueError), ({"statement": ""}, TypeError),
     ({"condition": np.array([True, False])}, TypeError)],
)
def test_worked_rejects_bad_arguments(kwargs, error):
    arguments = {"condition": True, "statement": "s", **kwargs}
    with pytest.raises(error):
        worked(arguments.pop("condition"), arguments.pop("statement"), **arguments)
