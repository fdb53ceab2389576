"""Property-based tests of sklearn_espro.metrics: any input gives a correct answer or our own error.

For arbitrary arrays (any shape, NaN, infinity, negative numbers, rows not summing to one,
labels of other lengths, n_bins of any kind), each metric either returns what a naive
reference computes from the documented rules, or raises ValueError naming an argument;
never an exception from numpy's or scikit-learn's insides, and never a warning.
"""

import bisect
import math
import numbers
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from sklearn_espro.metrics import disagreement, expected_calibration_error, uncertainty_metrics

SETTINGS = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
ATOL = 1e-3  # rows of probabilities may sum to one within this (documented as SUM_ATOL)
EPS = np.finfo(np.float64).eps


# -- strategies ----------------------------------------------------------------------------


@st.composite
def valid_proba(draw, n_rows=None, n_classes=None):
    """Rows of probabilities, possibly float32, possibly off one by less than ATOL."""
    n_rows = draw(st.integers(1, 8)) if n_rows is None else n_rows
    n_classes = draw(st.integers(1, 5)) if n_classes is None else n_classes
    weights = draw(hnp.arrays(np.float64, (n_rows, n_classes),
                              elements=st.one_of(st.just(0.0), st.floats(0, 1), st.sampled_from([0.1, 0.25, 0.3, 0.5]))))
    weights[weights.sum(axis=1) == 0, 0] = 1.0
    proba = weights / weights.sum(axis=1, keepdims=True)
    proba *= draw(st.sampled_from([1.0, 1 + 5e-4, 1 - 5e-4]))
    return proba.astype(draw(st.sampled_from([np.float64, np.float32])))


@st.composite
def broken_proba(draw):
    """Valid probabilities with one thing wrong, or nearly so."""
    proba = draw(valid_proba()).astype(np.float64)
    i, j = draw(st.integers(0, len(proba) - 1)), draw(st.integers(0, proba.shape[1] - 1))
    how = draw(st.sampled_from(["scale", "value", "transpose", "flatten", "column", "list"]))
    if how == "scale":
        proba[i] *= draw(st.floats(0, 4))
    elif how == "value":
        proba[i, j] = draw(st.sampled_from([-1e-9, -0.5, math.nan, math.inf, -math.inf, 1e308, 3.0, 5e-4]))
    elif how == "transpose":
        proba = proba.T
    elif how == "flatten":
        proba = proba[:, 0]
    elif how == "column":
        proba = np.hstack([proba, np.zeros((len(proba), 1))])
    else:
        proba = [list(row) for row in proba] + [[0.5] * (proba.shape[1] + 1)]  # ragged
    return proba


arbitrary_proba = st.one_of(
    hnp.arrays(np.float64, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4),
               elements=st.floats(allow_nan=True, allow_infinity=True)),
    hnp.arrays(np.int64, hnp.array_shapes(min_dims=1, max_dims=2, min_side=0, max_side=4),
               elements=st.integers(-2, 2)),
    st.lists(st.lists(st.floats(-1, 2), max_size=3), max_size=3),
    st.lists(st.lists(st.text(max_size=2), min_size=1, max_size=2), min_size=1, max_size=2),
    st.none(),
    st.floats(),
)
any_proba = st.one_of(valid_proba(), valid_proba(), broken_proba(), arbitrary_proba)

n_bins_values = st.one_of(
    st.integers(1, 40), st.integers(1, 40), st.integers(-3, 0), st.integers(2**53 - 1, 2**53 + 1),
    st.sampled_from([np.int64(7), np.int32(3), 1e9, True, False, np.bool_(True), 2.5, 15.0, np.float64(15.0), "15", None]),
    st.floats(),
)


@st.composite
def labels_and_y(draw, proba):
    """(y_true, labels): usually right for ``proba``'s shape, often wrong in one way."""
    shape = np.shape(proba) if isinstance(proba, np.ndarray) else (3, 2)
    n_rows = shape[0] if len(shape) >= 1 else 1
    n_classes = shape[1] if len(shape) == 2 else 2
    labels = draw(st.one_of(
        st.none(),
        st.permutations(list(range(n_classes))),
        st.permutations(["ab", "cd", "ef", "gh", "ij"][:n_classes]),
        st.permutations([-3.5, 2.0, 7.0, 11.0, 1e9][:n_classes]),
        st.lists(st.integers(0, 3), max_size=6),  # other lengths, duplicates
        st.just([[0, 1]]),
        st.just("ab"),
    ))
    names = list(range(n_classes)) if labels is None else labels
    if isinstance(names, list) and names and all(isinstance(v, (int, float, str)) for v in names):
        right = st.lists(st.sampled_from(names), min_size=n_rows, max_size=n_rows)
    else:
        right = st.lists(st.integers(0, 2), min_size=n_rows, max_size=n_rows)
    y = draw(st.one_of(
        right, right, right,
        st.lists(st.integers(-1, 6), max_size=9),  # other lengths, unknown classes
        st.lists(st.floats(), min_size=n_rows, max_size=n_rows),
        st.lists(st.text(max_size=2), min_size=n_rows, max_size=n_rows),
        st.lists(st.lists(st.integers(0, 1), min_size=1, max_size=2), min_size=n_rows, max_size=n_rows),
        st.sampled_from([None, 0, "a"]),
    ))
    return y, labels


# -- the reference: the documented rules, in plain Python ---------------------------------


def _rows(proba):
    """Renormalised rows as lists of floats, or None where ``proba`` is not probabilities."""
    try:
        array = np.asarray(proba)
    except ValueError:
        return None
    if array.dtype.kind not in "biuf" or array.ndim != 2 or 0 in array.shape:
        return None
    rows = [[float(v) for v in row] for row in array.astype(np.float64)]
    if any(not math.isfinite(v) or v < 0 for row in rows for v in row):
        return None
    sums = [float(np.sum(row)) for row in rows]  # as numpy adds
    if any(not abs(s - 1.0) <= ATOL for s in sums):
        return None
    return [[v / s for v in row] for row, s in zip(rows, sums)]


def _columns(y_true, labels, n_rows, n_classes):
    """Column of each true label, or None where ``y_true`` or ``labels`` is invalid."""
    names = list(range(n_classes)) if labels is None else labels
    if not isinstance(names, list) or len(names) != n_classes or any(isinstance(v, list) for v in names):
        return None
    if len({v: None for v in names}) != n_classes:
        return None
    try:
        y = np.asarray(y_true)
    except ValueError:
        return None
    if y.ndim != 1 or len(y) != n_rows:
        return None
    values = y.tolist()
    if any(isinstance(v, list) or v not in names for v in values):
        return None
    return [names.index(v) for v in values]


def _valid_n_bins(n_bins):
    return (isinstance(n_bins, numbers.Integral) and not isinstance(n_bins, (bool, np.bool_))
            and 1 <= n_bins <= 2**53)


def _reference(y_true, proba, labels, n_bins):
    """Accuracy, NLL, ECE and Brier score by the definitions, or None for invalid input."""
    rows = _rows(proba)
    if rows is None or not _valid_n_bins(n_bins):
        return None
    columns = _columns(y_true, labels, len(rows), len(rows[0]))
    if columns is None:
        return None
    n = len(rows)
    predicted = [row.index(max(row)) for row in rows]
    correct = [p == c for p, c in zip(predicted, columns)]
    bins = {}
    for row, hit in zip(rows, correct):
        confidence = max(row)
        b = bisect.bisect_left(range(int(n_bins)), confidence, key=lambda b: (b + 1) / int(n_bins))
        bins.setdefault(b, []).append((hit, confidence))
    ece = sum(len(members) / n * abs(np.mean([h for h, _ in members]) - np.mean([c for _, c in members]))
              for members in bins.values())
    p_true = [min(max(row[c], EPS), 1 - EPS) for row, c in zip(rows, columns)]
    return {
        "accuracy": sum(correct) / n,
        "nll": -sum(math.log(p) for p in p_true) / n,
        "ece": ece,
        "brier": sum(sum((v - (j == c)) ** 2 for j, v in enumerate(row)) for row, c in zip(rows, columns)) / n,
    }


def _names_an_argument(error, arguments):
    return any(re.search(rf"\b{a}\b", str(error)) for a in arguments)


# -- the properties -------------------------------------------------------------------------


@st.composite
def metric_inputs(draw):
    proba = draw(any_proba)
    y, labels = draw(labels_and_y(proba))
    return y, proba, labels, draw(n_bins_values)


@pytest.mark.filterwarnings("error")
@SETTINGS
@given(metric_inputs())
def test_ece_is_right_or_refuses_naming_an_argument(inputs):
    y, proba, labels, n_bins = inputs
    expected = _reference(y, proba, labels, n_bins)
    if expected is None:
        with pytest.raises(ValueError) as error:
            expected_calibration_error(y, proba, n_bins=n_bins, labels=labels)
        assert _names_an_argument(error.value, ("y_true", "proba", "n_bins", "labels")), str(error.value)
    else:
        ece = expected_calibration_error(y, proba, n_bins=n_bins, labels=labels)
        assert 0.0 <= ece <= 1.0
        assert ece == pytest.approx(expected["ece"], abs=1e-9)


@pytest.mark.filterwarnings("error")
@SETTINGS
@given(metric_inputs())
def test_uncertainty_metrics_are_right_or_refuse_naming_an_argument(inputs):
    y, proba, labels, n_bins = inputs
    expected = _reference(y, proba, labels, n_bins)
    if expected is None:
        with pytest.raises(ValueError) as error:
            uncertainty_metrics(y, proba, labels=labels, n_bins=n_bins)
        assert _names_an_argument(error.value, ("y_true", "proba", "n_bins", "labels")), str(error.value)
    else:
        got = uncertainty_metrics(y, proba, labels=labels, n_bins=n_bins)
        assert all(math.isfinite(v) for v in got.values())
        assert 0 <= got["accuracy"] <= 1 and got["nll"] >= 0 and 0 <= got["ece"] <= 1 and 0 <= got["brier"] <= 2
        assert got == pytest.approx(expected, rel=1e-9, abs=1e-9)


@pytest.mark.filterwarnings("error")
@SETTINGS
@given(st.one_of(st.tuples(any_proba, any_proba), st.integers(1, 6).flatmap(
    lambda n: st.tuples(valid_proba(n_rows=n, n_classes=3), valid_proba(n_rows=n, n_classes=3)))))
def test_disagreement_is_right_or_refuses_naming_an_argument(pair):
    a, b = pair
    rows_a, rows_b = _rows(a), _rows(b)
    if rows_a is None or rows_b is None or np.shape(a) != np.shape(b):
        with pytest.raises(ValueError) as error:
            disagreement(a, b)
        assert _names_an_argument(error.value, ("proba_a", "proba_b")), str(error.value)
    else:
        expected = np.mean([ra.index(max(ra)) != rb.index(max(rb)) for ra, rb in zip(rows_a, rows_b)])
        assert disagreement(a, b) == pytest.approx(expected)
