"""ESPRORegressor on arbitrary targets: a fitted model at the targets' scale, or a clear error naming y."""

import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sklearn_espro import ESPRORegressor

TINY = dict(n_modes=1, n_vertices=2, max_epochs=2, vertex_epochs=1, n_samples=2, batch_size=4,
            module__hidden_sizes=(4,), random_state=0, device="cpu")
CHECKS = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                  suppress_health_check=[HealthCheck.too_slow])
# values of one to six digits, or 0: their products with a power of ten stay normal floats
_mantissas = st.one_of(st.just(0.0), st.floats(1e-3, 1e3), st.floats(-1e3, -1e-3))
_exponents = st.integers(-300, 300)


@st.composite
def _targets(draw, bad=False):
    """Mantissas (n_samples, n_targets), each column possibly constant, and whether y is 1-D."""
    n_samples, n_targets = draw(st.integers(2, 7)), draw(st.integers(1, 3))
    columns = []
    for _ in range(n_targets):
        if draw(st.booleans()):
            columns.append([draw(_mantissas)] * n_samples)
        else:
            columns.append(draw(st.lists(_mantissas, min_size=n_samples, max_size=n_samples)))
    m = np.array(columns, dtype=np.float64).T
    if bad:
        m[draw(st.integers(0, n_samples - 1)), draw(st.integers(0, n_targets - 1))] = draw(
            st.sampled_from([np.nan, np.inf, -np.inf]))
    return m, n_targets == 1 and draw(st.booleans())


def _X(n_samples):
    return np.random.RandomState(n_samples).randn(n_samples, 3).astype(np.float32)


def _fit_predict(y, one_d):
    X = _X(len(y))
    reg = ESPRORegressor(**TINY).fit(X, y[:, 0] if one_d else y)
    mean, std = reg.predict(X, return_std=True)
    expected = (len(y),) if one_d else y.shape
    assert mean.shape == std.shape == expected
    assert np.isfinite(mean).all() and np.isfinite(std).all() and (std >= 0).all()
    return reg, mean.reshape(len(y), -1), std.reshape(len(y), -1)


@CHECKS
@given(targets=_targets(), exponents=st.lists(_exponents, min_size=3, max_size=3))
def test_finite_targets_of_any_scale_give_finite_predictions(targets, exponents):
    m, one_d = targets
    _fit_predict(m * 10.0 ** np.array(exponents[:m.shape[1]]), one_d)


@CHECKS
@given(targets=_targets(), first=_exponents, second=_exponents)
def test_scaled_targets_give_predictions_scaled_alike(targets, first, second):
    m, one_d = targets
    a, b = 10.0 ** first, 10.0 ** second
    reg_a, mean_a, std_a = _fit_predict(m * a, one_d)
    reg_b, mean_b, std_b = _fit_predict(m * b, one_d)
    for j in range(m.shape[1]):
        if (m[:, j] == 0).all():  # the same targets for any scale: the same predictions
            np.testing.assert_array_equal(mean_b[:, j], mean_a[:, j])
            continue
        unit = reg_a.y_scale_[j] / a  # deviations in standardised units: the same networks within float32 rounding
        np.testing.assert_allclose(mean_b[:, j] / b, mean_a[:, j] / a, rtol=1e-5, atol=1e-4 * unit)
        np.testing.assert_allclose(std_b[:, j] / b, std_a[:, j] / a, rtol=1e-4, atol=1e-4 * unit)


@CHECKS
@given(targets=_targets(bad=True), exponent=_exponents)
def test_nan_or_infinite_targets_are_refused_naming_y(targets, exponent):
    m, one_d = targets
    y = m * 10.0 ** exponent
    reg = ESPRORegressor(**TINY)
    with pytest.raises(ValueError) as info:
        reg.fit(_X(len(y)), y[:, 0] if one_d else y)
    assert re.search(r"\by\b", str(info.value)), str(info.value)
    assert not hasattr(reg, "members_")
