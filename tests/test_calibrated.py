"""Calibrated NLL (temperature scaling by scikit-learn) and the deep-ensemble equivalent, on known answers."""

import numpy as np
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator

from sklearn_espro.metrics import calibrated_nll, deep_ensemble_equivalent, temperature_scaled


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def nll(proba, y):
    return float(-np.log(proba[np.arange(len(y)), y]).mean())


def calibrated_sample(n, n_classes=5, seed=0, scale=2.0):
    """Logits z and labels drawn from softmax(z): a perfectly calibrated predictor."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, scale, (n, n_classes))
    y = (rng.random((n, 1)) > softmax(z).cumsum(axis=1)).sum(axis=1)
    return z, np.minimum(y, n_classes - 1)


# --- temperature scaling --------------------------------------------------------------------------


@pytest.mark.parametrize("factor", [0.5, 2.0])
def test_the_fitted_temperature_undoes_a_known_sharpening_or_softening(factor):
    # 20,000 validation rows: the temperature's standard error is about 0.7% (20 seeds); 3% is > 4 of them
    z, y = calibrated_sample(40000)
    distorted = softmax(factor * z)
    out = calibrated_nll(y[:20000], distorted[:20000], y[20000:], distorted[20000:])
    assert out["temperature"] == pytest.approx(factor, rel=0.03)
    oracle = nll(softmax(z[20000:]), y[20000:])  # the well-calibrated predictor's own test NLL
    assert out["calibrated_nll"] == pytest.approx(oracle, abs=0.005)
    assert out["calibrated_nll"] < out["nll"] - 0.05
    assert out["nll"] == pytest.approx(nll(distorted[20000:], y[20000:]), rel=1e-9)


def test_a_calibrated_predictor_keeps_a_temperature_near_one():
    z, y = calibrated_sample(40000, seed=1)
    p = softmax(z)
    out = calibrated_nll(y[:20000], p[:20000], y[20000:], p[20000:])
    assert out["temperature"] == pytest.approx(1.0, rel=0.03)
    assert out["calibrated_nll"] == pytest.approx(out["nll"], abs=1e-3)


def test_scaling_log_probabilities_is_scaling_a_networks_logits_and_an_ensembles_log_average():
    # one network: log softmax(z) differs from z by a constant per row, so z / T is what is fitted
    # (scikit-learn takes log(p + 1e-12): logits kept within about 20 of each other, so no p is near 1e-12)
    z, y = calibrated_sample(4000, seed=2)
    out = calibrated_nll(y[:2000], softmax(1.5 * z[:2000]), y[2000:], softmax(1.5 * z[2000:]))
    assert out["temperature"] == pytest.approx(1.5, rel=0.1)
    assert out["calibrated_nll"] == pytest.approx(nll(softmax(1.5 * z[2000:] / out["temperature"]), y[2000:]), rel=1e-6)
    # an ensemble: the temperature acts on the log of the averaged probabilities, p_mean ** (1 / T) renormalised
    rng = np.random.default_rng(3)
    members = [softmax(1.5 * z + rng.normal(0, 1.0, z.shape)) for _ in range(3)]
    mean = np.mean(members, axis=0)
    out = calibrated_nll(y[:2000], mean[:2000], y[2000:], mean[2000:])
    powered = mean[2000:] ** (1 / out["temperature"])
    assert out["calibrated_nll"] == pytest.approx(nll(powered / powered.sum(axis=1, keepdims=True), y[2000:]), rel=1e-6)


def test_any_labels_give_the_temperature_of_their_columns():
    # scikit-learn 1.9 reads integer labels as column indices; calibrated_nll passes columns, whatever the labels
    z, y = calibrated_sample(6000, n_classes=3, seed=4)
    p = softmax(2 * z)
    reference = calibrated_nll(y[:3000], p[:3000], y[3000:], p[3000:])
    for labels in (np.array([1, 2, 3]), np.array([-5, 0, 7]), np.array(["a", "b", "c"])):
        out = calibrated_nll(labels[y[:3000]], p[:3000], labels[y[3000:]], p[3000:], labels=labels)
        assert out == pytest.approx(reference, rel=1e-9)


def test_two_classes_and_float32_probabilities():
    z, y = calibrated_sample(8000, n_classes=2, seed=5)
    p = softmax(2 * z).astype(np.float32)  # rows off one by float32 rounding are renormalised, not taken for logits
    out = calibrated_nll(y[:4000], p[:4000], y[4000:], p[4000:])
    assert out["temperature"] == pytest.approx(2.0, rel=0.06)
    assert isinstance(out["temperature"], float)


def test_calibrated_nll_refuses_what_it_cannot_calibrate():
    z, y = calibrated_sample(200, n_classes=3, seed=6)
    p = softmax(z)
    with pytest.raises(ValueError, match="proba_val and proba_test"):
        calibrated_nll(y, p, y, p[:, :2] / p[:, :2].sum(axis=1, keepdims=True))
    with pytest.raises(ValueError, match="y_val must hold every class"):
        calibrated_nll(np.where(y == 2, 0, y), p, y, p)
    with pytest.raises(ValueError, match="y_test has labels"):
        calibrated_nll(y, p, y + 1, p)
    with pytest.raises(ValueError, match="y_val must hold one label per row of proba_val"):
        calibrated_nll(y[:-1], p, y, p)
    with pytest.raises(ValueError, match="proba_test rows must sum to one"):
        calibrated_nll(y, p, y, 2 * p)
    with pytest.raises(ValueError, match="labels must be distinct"):
        calibrated_nll(y, p, y, p, labels=[0, 0, 1])


# --- on a fitted ESPROClassifier ------------------------------------------------------------------


@pytest.fixture(scope="module")
def fitted():
    """A small ESPROClassifier on 400 digits (4 modes, 2 vertices each); 600 validation and 797 test digits."""
    from sklearn.datasets import load_digits

    from sklearn_espro import ESPROClassifier

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    clf = ESPROClassifier(n_modes=4, n_vertices=2, max_epochs=10, vertex_epochs=3, lr=0.1, batch_size=50,
                          random_state=0, device="cpu").fit(X[:400], y[:400])
    return clf, X[400:1000], y[400:1000], X[1000:], y[1000:]


def test_temperature_scaled_is_sklearns_calibration_and_agrees_with_calibrated_nll(fitted):
    clf, X_val, y_val, X_test, y_test = fitted
    calibrated = temperature_scaled(clf, X_val, y_val)
    assert isinstance(calibrated, CalibratedClassifierCV) and calibrated.method == "temperature"
    assert isinstance(calibrated.estimator, FrozenEstimator) and calibrated.estimator.estimator is clf
    assert calibrated.classes_.tolist() == clf.classes_.tolist()
    out = calibrated_nll(y_val, clf.predict_proba(X_val), y_test, clf.predict_proba(X_test), labels=clf.classes_)
    scaled = calibrated.predict_proba(X_test)
    assert nll(scaled, y_test) == pytest.approx(out["calibrated_nll"], rel=1e-6)
    assert out["calibrated_nll"] <= out["nll"] + 0.01  # fitted on other rows, it may miss a little
    np.testing.assert_array_equal(scaled.argmax(axis=1), clf.predict_proba(X_test).argmax(axis=1))


@pytest.mark.filterwarnings("ignore:.*did not learn")
def test_temperature_scaled_with_string_classes(fitted):
    from sklearn.base import clone

    clf, X_val, y_val, X_test, y_test = fitted
    names = np.array([f"digit {d}" for d in range(10)])  # sorted as the digits
    X, y = X_test[:400], y_test[:400]  # any rows: only the two paths' agreement is checked
    named = clone(clf).set_params(n_modes=1, n_vertices=1, max_epochs=3).fit(X, names[y])
    calibrated = temperature_scaled(named, X_val, names[y_val])
    out = calibrated_nll(names[y_val], named.predict_proba(X_val), names[y_test], named.predict_proba(X_test),
                         labels=named.classes_)
    assert nll(calibrated.predict_proba(X_test), y_test) == pytest.approx(out["calibrated_nll"], rel=1e-6)


def test_temperature_scaled_refuses_labels_sklearn_would_misread(fitted):
    from sklearn.base import clone
    from sklearn.linear_model import Ridge

    clf, X_val, y_val, X, y = fitted
    with pytest.warns(RuntimeWarning, match="did not learn"):  # one epoch: enough to have classes 1..10
        shifted = clone(clf).set_params(n_modes=1, n_vertices=1, max_epochs=1).fit(X, y + 1)
    with pytest.raises(ValueError, match="integers 0..9"):
        temperature_scaled(shifted, X_val, y_val + 1)
    with pytest.raises(ValueError, match="y_val must hold every class"):
        temperature_scaled(clf, X_val, np.where(y_val == 9, 0, y_val))
    with pytest.raises(ValueError, match="y_val must hold one label per row of X_val"):
        temperature_scaled(clf, X_val, y_val[:-1])
    with pytest.raises(TypeError, match="classifier"):
        temperature_scaled(Ridge().fit(X, y), X_val, y_val)


def test_deep_ensemble_equivalent_of_deep_ensembles_built_from_the_modes(fitted):
    from sklearn_espro.metrics import member_probabilities

    clf, X_val, y_val, X_test, y_test = fitted
    _, modes_val = member_probabilities(clf, X_val)
    _, modes_test = member_probabilities(clf, X_test)
    de = [calibrated_nll(y_val, modes_val[:s].mean(axis=0), y_test, modes_test[:s].mean(axis=0))["calibrated_nll"]
          for s in range(1, 5)]
    # the answer is known for the deep ensembles themselves: DE(s) is worth s networks, or fewer where a
    # smaller deep ensemble already did as well (noise)
    for s, dee in enumerate(deep_ensemble_equivalent(de, de), start=1):
        assert dee == s if de[s - 1] < min(de[:s - 1], default=np.inf) else dee < s
    method = calibrated_nll(y_val, clf.predict_proba(X_val), y_test, clf.predict_proba(X_test))["calibrated_nll"]
    dee = deep_ensemble_equivalent(method, de)
    assert dee == 1.0 or np.isinf(dee) or 1.0 < dee <= 4.0
    if 1.0 < dee < np.inf:  # the curve first reaches the method's NLL on the segment ending at ceil(dee)
        k = int(np.ceil(dee))
        assert de[k - 1] <= method < min(de[:k - 1])


# --- deep-ensemble equivalent ---------------------------------------------------------------------


def curve(sizes, a=0.3, b=0.6):
    return a + b / np.asarray(sizes, dtype=float)


@pytest.mark.parametrize("size", [1.0, 1.3, 2.5, 3.7, 6.2, 7.99])
def test_dee_inverts_an_a_plus_b_over_n_curve_exactly(size):
    de = curve(range(1, 9))
    assert deep_ensemble_equivalent(0.3 + 0.6 / size, de) == pytest.approx(size, rel=1e-9)


def test_dee_returns_the_measured_sizes_exactly():
    de = curve(range(1, 11))
    assert deep_ensemble_equivalent(de, de).tolist() == list(range(1, 11))
    sizes = [1, 2, 4, 8, 16]
    assert deep_ensemble_equivalent(curve(sizes), curve(sizes), sizes).tolist() == [1.0, 2.0, 4.0, 8.0, 16.0]


def test_dee_between_sparse_sizes_is_exact_in_one_over_n():
    sizes = [1, 2, 4, 8, 16]
    assert deep_ensemble_equivalent(0.3 + 0.6 / 5, curve(sizes), sizes) == pytest.approx(5.0, rel=1e-9)
    # linear in n the same point would read 4 + 0.4 * 4 = 5.6: the chord of a convex curve overstates the DEE
    assert deep_ensemble_equivalent(0.3 + 0.6 / 12, curve(sizes), sizes) == pytest.approx(12.0, rel=1e-9)


def test_dee_outside_the_curve():
    de = curve(range(1, 5))
    assert deep_ensemble_equivalent(de[0] + 1.0, de) == 1.0  # worse than one network: "no better than one"
    assert deep_ensemble_equivalent(de[-1] - 1e-9, de) == np.inf  # better than every measured ensemble
    assert deep_ensemble_equivalent(curve(5), curve([2, 3, 4]), [2, 3, 4]) == np.inf
    assert deep_ensemble_equivalent(curve(1), curve([2, 3, 4]), [2, 3, 4]) == 2.0  # no better than de_sizes[0]


def test_dee_of_a_noisy_curve_is_its_first_crossing():
    de = [1.0, 0.8, 0.85, 0.7]  # DE(3) noisily worse than DE(2)
    assert deep_ensemble_equivalent(0.82, de) == pytest.approx(1 / (0.1 / 1 + 0.9 / 2), rel=1e-12)  # before 2
    assert deep_ensemble_equivalent(0.8, de) == 2.0
    assert deep_ensemble_equivalent(0.75, de) == pytest.approx(12 / (4 / 3 + 2), rel=1e-12)  # between 3 and 4
    assert deep_ensemble_equivalent(0.8, [1.0, 0.8, 0.8, 0.7]) == 2.0  # a flat stretch: its first size


def test_dee_is_vectorised_and_monotone():
    rng = np.random.default_rng(0)
    de = np.sort(rng.uniform(0.2, 1.0, 12))[::-1]  # a decreasing curve of 12 sizes
    values = np.sort(rng.uniform(0.1, 1.1, 500))
    dee = deep_ensemble_equivalent(values, de)
    assert dee.shape == (500,) and np.all(dee[1:] <= dee[:-1])  # a better NLL is never worth fewer networks
    assert dee[0] == np.inf and dee[-1] == 1.0
    grid = deep_ensemble_equivalent(values.reshape(20, 25), de)
    assert grid.shape == (20, 25) and np.array_equal(grid.ravel(), dee)
    assert isinstance(deep_ensemble_equivalent(0.5, de), float)


@pytest.mark.parametrize("kwargs, match", [
    (dict(nll=np.nan, de_nlls=[1.0, 0.9]), "nll must be finite"),
    (dict(nll="0.9", de_nlls=[1.0, 0.9]), "nll must be a number"),
    (dict(nll=0.9, de_nlls=[1.0]), "de_nlls needs the NLLs of at least two"),
    (dict(nll=0.9, de_nlls=[[1.0, 0.9]]), "de_nlls must be 1-D"),
    (dict(nll=0.9, de_nlls=[1.0, np.inf]), "de_nlls must be finite"),
    (dict(nll=0.9, de_nlls=[1.0, 0.9], de_sizes=[1, 2, 3]), "de_sizes must give one size per entry"),
    (dict(nll=0.9, de_nlls=[1.0, 0.9], de_sizes=[2, 2]), "de_sizes must be positive and strictly increasing"),
    (dict(nll=0.9, de_nlls=[1.0, 0.9], de_sizes=[0, 1]), "de_sizes must be positive and strictly increasing"),
])
def test_dee_refuses_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        deep_ensemble_equivalent(**kwargs)
