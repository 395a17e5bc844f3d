import numpy as np
import pytest

from helpers.validation import check_int, check_positive


@pytest.mark.parametrize(("value", "minimum"), [(1, 1), (0, 0), (np.int64(7), 2), (10**12, 1)])
def test_check_int_returns_a_python_int(value, minimum):
    result = check_int("n", value, minimum)
    assert result == value and type(result) is int


@pytest.mark.parametrize("value", [0, -3, True, 1.0, "2", None, np.float64(2.0)])
def test_check_int_refuses_with_the_name_and_the_bound(value):
    with pytest.raises(ValueError, match=r"n_steps must be an int >= 1, got"):
        check_int("n_steps", value)


@pytest.mark.parametrize("value", [1e-9, 3, np.float32(0.5), 10**30])
def test_check_positive_returns_a_float(value):
    result = check_positive("lr", value)
    assert result == pytest.approx(float(value)) and type(result) is float


@pytest.mark.parametrize("value", [0, -1.0, float("nan"), True, "1", None])
def test_check_positive_refuses_zero_negatives_nan_and_non_numbers(value):
    with pytest.raises(ValueError, match=r"lr must be a number > 0, got"):
        check_positive("lr", value)
