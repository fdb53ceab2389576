"""ESPROClassifier as a drop-in scikit-learn classifier: checks, pipelines, persistence."""

import copy
import io
import pickle

import joblib
import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import VotingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_espro import ConvNet1d, ESPROClassifier, ESPRORegressor

BASE = dict(n_modes=2, n_vertices=2, max_epochs=10, vertex_epochs=1, n_samples=2, lr=0.1, batch_size=32,
            random_state=0, device="cpu")
SMALL = {**BASE, "module__hidden_sizes": (16,)}


@pytest.mark.slow
@parametrize_with_checks([ESPROClassifier(**SMALL)])
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


@pytest.mark.slow
@parametrize_with_checks([ESPROClassifier(), ESPRORegressor()])
def test_sklearn_compatible_with_every_default(estimator, check):
    """What a user who runs check_estimator on the defaults gets: scikit-learn's data are unscaled
    (features around 100), which the gradient clipping (max_grad_norm=10) keeps from diverging."""
    check(estimator)


def test_defaults_fit_unscaled_features():
    """scikit-learn's check_fit_check_is_fitted data: features around 100, random labels."""
    rng = np.random.RandomState(42)
    X, y = rng.normal(loc=100, size=(100, 2)), rng.randint(0, 2, size=100)
    proba = ESPROClassifier(n_modes=1, random_state=0).fit(X, y).predict_proba(X)
    assert np.isfinite(proba).all() and np.allclose(proba.sum(1), 1.0)


@pytest.fixture(scope="module")
def fitted(digits):
    X, y, _, _ = digits
    return ESPROClassifier(**{**SMALL, "n_vertices": 3}).fit(X, y)


@pytest.mark.slow
def test_grid_search_over_volume_reg_in_a_pipeline(digits):
    X, y, X_test, _ = digits
    pipe = Pipeline([("scale", StandardScaler()), ("espro", ESPROClassifier(**{**SMALL, "max_epochs": 5}))])
    grid = {"espro__volume_reg": [0.0, 0.1], "espro__module__hidden_sizes": [(8,), (16,)]}
    for n_jobs in (None, 2):
        search = GridSearchCV(pipe, grid, cv=3, n_jobs=n_jobs).fit(X, y)
        best = search.best_estimator_[-1]  # the routed module argument reached the network
        first = best.simplexes_[0].vertices["layers.0.weight"]  # (n_vertices, hidden, 64)
        assert first.shape[1:] == (search.best_params_["espro__module__hidden_sizes"][0], 64)
        assert best.volume_reg == search.best_params_["espro__volume_reg"]
        assert search.best_estimator_.predict(X_test).shape == (len(X_test),)
        assert np.isfinite(search.cv_results_["mean_test_score"]).all()


@pytest.mark.slow
def test_cross_val_score_calibration_and_soft_voting(digits):
    X, y, X_test, _ = digits
    scores = cross_val_score(ESPROClassifier(**SMALL), X, y, cv=3)
    assert scores.shape == (3,) and (scores > 0.5).all()
    # the meta-estimators' own arithmetic may be float32 (LogisticRegression keeps float32 input's
    # dtype since scikit-learn 1.9): they are checked to float32 precision, ESPRO's part exactly
    calibrated = CalibratedClassifierCV(ESPROClassifier(**SMALL), cv=2).fit(X, y)
    np.testing.assert_allclose(calibrated.predict_proba(X_test).sum(1), 1.0, atol=1e-5)
    for member in calibrated.calibrated_classifiers_:
        proba = member.estimator.predict_proba(X_test)
        assert proba.dtype == np.float64
        np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-12)
    voting = VotingClassifier([("espro", ESPROClassifier(**SMALL)), ("lr", LogisticRegression(max_iter=500))],
                              voting="soft").fit(X, y)
    np.testing.assert_allclose(voting.predict_proba(X_test).sum(1), 1.0, atol=1e-5)
    espro = voting.named_estimators_["espro"].predict_proba(X_test)
    assert espro.dtype == np.float64
    np.testing.assert_allclose(espro.sum(1), 1.0, atol=1e-12)


def test_clone_get_and_set_params_route_as_skorch_does():
    est = ESPROClassifier(module__hidden_sizes=(8,), optimizer__weight_decay=1e-4)
    est.set_params(module__dropout=0.2, optimizer__nesterov=True, criterion__label_smoothing=0.1, volume_reg=0.3)
    params = clone(est).get_params()
    assert params["module__hidden_sizes"] == (8,) and params["module__dropout"] == 0.2
    assert params["optimizer__nesterov"] is True and params["criterion__label_smoothing"] == 0.1
    assert params["volume_reg"] == 0.3
    with pytest.raises(ValueError, match="Invalid parameter 'volume_regg' for estimator ESPROClassifier"):
        est.set_params(volume_regg=1.0)


@pytest.mark.parametrize("round_trip", ["pickle", "joblib", "deepcopy"])
def test_round_trips_are_exact(fitted, digits, round_trip):
    _, _, X_test, _ = digits
    if round_trip == "pickle":
        other = pickle.loads(pickle.dumps(fitted))
    elif round_trip == "joblib":
        buffer = io.BytesIO()
        joblib.dump(fitted, buffer)
        buffer.seek(0)
        other = joblib.load(buffer)
    else:
        other = copy.deepcopy(fitted)
    np.testing.assert_array_equal(other.predict_proba(X_test), fitted.predict_proba(X_test))
    np.testing.assert_array_equal(other.predict(X_test), fitted.predict(X_test))


def test_pickle_holds_no_optimizer_state_or_training_data(fitted, digits):
    X, _, _, _ = digits
    seen = []

    class Recorder(pickle.Pickler):
        def reducer_override(self, obj):
            seen.append(obj)
            return NotImplemented

    Recorder(io.BytesIO()).dump(fitted)
    assert not [o for o in seen if isinstance(o, torch.optim.Optimizer)]
    assert not [o for o in seen if isinstance(o, torch.Tensor) and o.grad is not None]
    payload = pickle.dumps(fitted)
    assert b"momentum_buffer" not in payload
    assert X[:50].tobytes() not in payload  # the training data is not in it
    n_weights = sum(s.flat_vertices().numel() for s in fitted.simplexes_)
    assert len(payload) < 4 * 4 * n_weights + 200_000  # about the simplexes' float32 weights


def test_model_fitted_for_cuda_predicts_on_a_cpu_machine(fitted, digits):
    _, _, X_test, _ = digits
    expected = fitted.predict_proba(X_test)
    on_gpu = pickle.loads(pickle.dumps(fitted))
    on_gpu.device = "cuda"  # as a model fitted with device="cuda" arrives; tensors are stored on the CPU
    assert all(v.device.type == "cpu" for s in on_gpu.simplexes_ for v in s.vertices.values())
    if torch.cuda.is_available():
        np.testing.assert_allclose(on_gpu.predict_proba(X_test), expected, atol=1e-5)
    else:
        with pytest.warns(UserWarning, match="CUDA is not available here: predicting on the CPU"):
            np.testing.assert_array_equal(on_gpu.predict_proba(X_test), expected)


def test_sample_weight_is_not_accepted():
    from sklearn.utils.validation import has_fit_parameter

    assert not has_fit_parameter(ESPROClassifier(), "sample_weight")  # what meta-estimators consult


def test_conv_net_in_grid_search_gets_its_input_shape(digits):
    X, y, _, _ = digits
    X3 = X.reshape(-1, 1, 64)
    est = ESPROClassifier(ConvNet1d, module__channels=(4,), module__length=64, **BASE)
    search = GridSearchCV(est, {"volume_reg": [0.0, 0.1]}, cv=2).fit(X3, y)
    assert search.best_estimator_.predict(X3[:5]).shape == (5,)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_fit_loads_with_cpu_tensors_only(digits):
    X, y, X_test, _ = digits
    clf = ESPROClassifier(**{**SMALL, "device": "cuda"}).fit(X, y)
    on_gpu = clf.predict_proba(X_test)
    loaded = pickle.loads(pickle.dumps(clf))
    assert all(v.device.type == "cpu" for s in loaded.simplexes_ for v in s.vertices.values())
    loaded.device = "cpu"
    np.testing.assert_allclose(loaded.predict_proba(X_test), on_gpu, atol=1e-5)
