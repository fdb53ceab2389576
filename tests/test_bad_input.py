"""Bad input gets a clear error naming the argument or array, never a deep torch traceback."""

import re

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.exceptions import NotFittedError
from torch import nn

from sklearn_espro import ConvNet1d, ESPROClassifier

BASE = dict(n_modes=1, n_vertices=2, max_epochs=1, vertex_epochs=1, n_samples=2, batch_size=16,
            random_state=0, device="cpu")
TINY = {**BASE, "module__hidden_sizes": (4,)}


@pytest.fixture
def data():
    rng = np.random.RandomState(0)
    X = rng.randn(40, 5).astype(np.float32)
    return X, (X[:, 0] > 0).astype(int)


class WrongLogits(nn.Module):
    def __init__(self, n_features_in):
        super().__init__()
        self.linear = nn.Linear(n_features_in, 7)

    def forward(self, x):
        return self.linear(x)


class InterruptAfter(nn.Module):
    """A network whose forward raises KeyboardInterrupt (a Ctrl-C) on call number ``after``."""

    calls = 0

    def __init__(self, n_features_in, n_classes, after=3):
        super().__init__()
        self.linear = nn.Linear(n_features_in, n_classes)
        self.after = after

    def forward(self, x):
        InterruptAfter.calls += 1
        if InterruptAfter.calls == self.after:
            raise KeyboardInterrupt
        return self.linear(x)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_in_X(data, bad):
    X, y = data
    X = X.copy()
    X[3, 2] = bad
    with pytest.raises(ValueError, match="Input X contains"):
        ESPROClassifier(**TINY).fit(X, y)
    fitted = ESPROClassifier(**TINY).fit(data[0], y)
    with pytest.raises(ValueError, match="Input X contains"):
        fitted.predict_proba(X)


def test_wrong_number_of_features_or_trailing_shape_at_predict(data):
    X, y = data
    clf = ESPROClassifier(**TINY).fit(X, y)
    with pytest.raises(ValueError, match="X has 4 features, but ESPROClassifier is expecting 5"):
        clf.predict(X[:, :4])
    conv = ESPROClassifier(ConvNet1d, module__channels=(2,), module__length=10, **BASE)
    X3 = np.random.RandomState(1).randn(40, 1, 10).astype(np.float32)
    conv.fit(X3, y)
    with pytest.raises(ValueError, match=r"samples of shape \(1, 8\), but ESPROClassifier was fitted on samples of shape \(1, 10\)"):
        conv.predict(X3[:, :, :8])


@pytest.mark.parametrize("X, y, message", [
    (np.zeros((0, 5)), np.zeros(0), "0 sample"),
    (np.zeros((1, 5)), np.zeros(1), "minimum of 2 is required"),
    (np.zeros((4, 5)), np.zeros(4), "y has a single class"),
    (np.zeros((4, 5)), np.array([0, 1, 0]), "X has 4 samples but y has 3"),
    (np.array([["a", "b"], ["c", "d"]], dtype=object), np.array([0, 1]), "X must hold numbers"),
    (np.zeros((4, 5)), np.array([0.1, 0.7, 1.3, 2.9]), "Unknown label type: continuous"),
    (np.zeros((4, 3, 0)), np.array([0, 1, 0, 1]), r"samples of shape \(3, 0\), which hold no values"),
])
def test_bad_arrays(X, y, message):
    with pytest.raises(ValueError, match=message):
        ESPROClassifier(**TINY).fit(X, y)


def test_module_with_the_wrong_number_of_logits(data):
    X, y = data
    with pytest.raises(ValueError, match=r"WrongLogits returned logits of shape \(2, 7\).*expected \(2, 2\).*2 classes found in y"):
        ESPROClassifier(WrongLogits, **BASE).fit(X, y)


def test_module_that_fails_on_the_input_shape(data):
    X, y = data
    X4 = np.repeat(X.reshape(40, 5, 1), 3, axis=2)  # (40, 5, 3): the MLP, built for 5 inputs, gets 15
    with pytest.raises(ValueError, match=r"The module MLP failed on a batch of X of shape \(2, 5, 3\).*RuntimeError"):
        ESPROClassifier(n_modes=1, max_epochs=1).fit(X4, y)


@pytest.mark.parametrize("module, error, message", [
    ("mlp", ValueError, "The 'module' parameter of ESPROClassifier must be"),
    (int, TypeError, "module must be a torch.nn.Module subclass or instance, got the class int"),
])
def test_module_that_is_not_a_torch_module(data, module, error, message):
    with pytest.raises(error, match=message):
        ESPROClassifier(module, n_modes=1, max_epochs=1).fit(*data)


@pytest.mark.parametrize("param, value", [
    ("n_modes", 0), ("n_vertices", 0), ("volume_reg", -0.1), ("n_train_samples", 0), ("n_samples", 0),
    ("lr", 0.0), ("batch_size", 0),
])
def test_bad_numbers_name_the_parameter(data, param, value):
    with pytest.raises(ValueError, match=f"The '{param}' parameter of ESPROClassifier must be"):
        ESPROClassifier(**{**TINY, param: value}).fit(*data)


def test_unknown_module_argument(data):
    with pytest.raises(ValueError, match="module__width is not an argument of MLP; it accepts: dropout, hidden_sizes"):
        ESPROClassifier(module__width=3, n_modes=1, max_epochs=1).fit(*data)


def test_unknown_estimator_argument(data):
    with pytest.raises(TypeError, match="ESPROClassifier got an unexpected argument 'hidden'; routed arguments start"):
        ESPROClassifier(hidden=3).fit(*data)


def test_predict_before_fit(data):
    for method in ("predict", "predict_proba"):
        with pytest.raises(NotFittedError):
            getattr(ESPROClassifier(), method)(data[0])


@pytest.mark.parametrize("phase, overrides, message", [
    ("mode", {"lr": 1e12}, r"epoch \d+ of the mode of simplex 0 \(lr=1e\+12\).*learning rate"),
    ("vertex", {"vertex_lr": 1e12, "lr": 0.01, "volume_reg": 1.0}, r"epoch 1 of vertex 1 of simplex 0 \(vertex_lr=1e\+12, volume_reg=1\).*learning rate"),
])
def test_diverging_loss_names_the_phase_and_leaves_nothing_fitted(data, phase, overrides, message):
    X, y = data
    X = X * 1e3
    clf = ESPROClassifier(**{**TINY, "max_epochs": 3, **overrides})
    with pytest.raises(FloatingPointError, match=message):
        clf.fit(X, y)
    assert not hasattr(clf, "classes_") and not hasattr(clf, "n_features_in_")
    with pytest.raises(NotFittedError):
        clf.predict(X)


@pytest.mark.parametrize("after", [3, 6])  # calls: 1 probe, 2-4 mode epoch, 5-7 vertex epoch
def test_keyboard_interrupt_leaves_the_estimator_unchanged(data, after):
    X, y = data
    clf = ESPROClassifier(**BASE).fit(X, y)
    fitted, before = clf.members_, clf.predict_proba(X)
    InterruptAfter.calls = 0
    clf.set_params(module=InterruptAfter, module__after=after)
    with pytest.raises(KeyboardInterrupt):
        clf.fit(X, y)
    assert InterruptAfter.calls == after  # the fit stopped right there
    assert clf.members_ is fitted  # the earlier fit is intact
    np.testing.assert_array_equal(clf.predict_proba(X), before)
    fresh = ESPROClassifier(InterruptAfter, module__after=after, **BASE)
    InterruptAfter.calls = 0
    with pytest.raises(KeyboardInterrupt):
        fresh.fit(X, y)
    with pytest.raises(NotFittedError):
        fresh.predict(X)


def _assert_clear(exc: BaseException, known: str) -> None:
    """One of the ``known`` messages, raised by our validation or scikit-learn's, never from inside torch."""
    import traceback

    assert re.search(known, str(exc)), f"{type(exc).__name__}: {exc}"
    origin = traceback.extract_tb(exc.__traceback__)[-1].filename
    assert "/torch/" not in origin and "/skorch/" not in origin, f"{type(exc).__name__} from {origin}: {exc}"


BAD_ARRAYS = "|".join([  # what fit says of arrays it cannot learn from
    r"X has \d+ samples but y has \d+", r"Found array with 0 (sample|feature)", r"a minimum of \d+ is required",
    r"X has samples of shape .* which hold no values", r"X must hold numbers", r"Complex data not supported",
    r"y has a single class", r"Unknown label type", r"y must be 1-D", r"The module MLP failed on a batch of X",
    r"Expected 2D array",
])
_dtypes = st.sampled_from([np.float64, np.float32, np.int64, np.bool_, np.complex64, object, str])
_labels = st.sampled_from(["int", "str", "bool", "float", "one"])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n_samples=st.integers(0, 12),
    shape=st.one_of(st.just([3]), st.lists(st.integers(0, 4), min_size=0, max_size=3)),
    dtype=st.one_of(st.just(np.float64), _dtypes),
    labels=st.one_of(st.just("int"), _labels),
    extra_labels=st.sampled_from([0, 0, 0, 1, -1]),
    seed=st.integers(0, 10),
)
def test_random_inputs_give_clear_errors_or_valid_probabilities(n_samples, shape, dtype, labels, extra_labels, seed):
    rng = np.random.RandomState(seed)
    n_labels = max(n_samples + extra_labels, 0)
    X = rng.randn(n_samples, *shape)
    X = X.astype(str) if dtype is str else X.astype(dtype)
    y = {"int": rng.randint(0, 3, n_labels), "str": rng.choice(["a", "b"], n_labels),
         "bool": rng.rand(n_labels) > 0.5, "float": rng.rand(n_labels), "one": np.zeros(n_labels)}[labels]
    clf = ESPROClassifier(**TINY)
    try:
        clf.fit(X, y)
    except ValueError as exc:
        _assert_clear(exc, BAD_ARRAYS)
        assert not hasattr(clf, "classes_")
        return
    proba = clf.predict_proba(X)
    np.testing.assert_array_equal(clf.classes_, np.unique(y))
    assert proba.shape == (len(X), len(clf.classes_)) and np.allclose(proba.sum(axis=1), 1.0)


def _worker_processes():
    """Live child processes of this one that are joblib/loky workers (Linux /proc)."""
    import os
    from pathlib import Path

    workers = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmd = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if int(fields[1]) == os.getpid() and fields[0] not in "ZX" and "loky" in cmd and "resource_tracker" not in cmd:
            workers.append(cmd)
    return workers


@pytest.mark.slow
@pytest.mark.skipif(not __import__("pathlib").Path("/proc/self/stat").exists(), reason="reads /proc")
def test_keyboard_interrupt_in_parallel_jobs_stops_the_workers(data):
    import time

    X, y = data
    X, y = np.repeat(X, 5, axis=0), np.repeat(y, 5)
    clf = ESPROClassifier(InterruptAfter, module__after=30, **{**BASE, "n_modes": 4, "n_jobs": 2, "max_epochs": 20})
    with pytest.raises(KeyboardInterrupt):
        clf.fit(X, y)
    deadline = time.time() + 10
    while _worker_processes() and time.time() < deadline:
        time.sleep(0.2)
    assert _worker_processes() == []
    assert not hasattr(clf, "classes_")


# -- everything is checked before any training starts ------------------------------------
class Counting(nn.Module):
    """A linear model counting its forward passes in training mode."""

    training_calls = 0

    def __init__(self, n_features_in, n_classes, frozen=False):
        super().__init__()
        self.linear = nn.Linear(n_features_in, n_classes)
        self.linear.requires_grad_(not frozen)

    def forward(self, x):
        Counting.training_calls += self.training
        return self.linear(x)


class NoParameters(nn.Module):
    def __init__(self, n_classes):
        super().__init__()
        self.n_classes = n_classes

    def forward(self, x):
        return x[:, : self.n_classes]


class WithBatchNorm(nn.Module):
    def __init__(self, n_features_in, n_classes):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_features_in, 4), nn.BatchNorm1d(4), nn.Linear(4, n_classes))

    def forward(self, x):
        return self.net(x)


class NotACallback:
    pass


def _early_stopping():
    from skorch.callbacks import EarlyStopping

    return EarlyStopping()


COUNTED = {**BASE, "module": Counting}


@pytest.mark.parametrize("params, error, message", [
    ({**BASE, "module": NoParameters}, ValueError, "NoParameters has no trainable parameters"),
    ({**COUNTED, "module__frozen": True}, ValueError, "Counting has no trainable parameters"),
    ({**COUNTED, "optimizer": dict}, TypeError, "optimizer must be a torch.optim.Optimizer subclass"),
    ({**COUNTED, "optimizer": torch.optim.LBFGS}, ValueError, "optimizer=LBFGS needs a closure"),
    ({**COUNTED, "optimizer__lr": 0.1}, ValueError, "optimizer__lr was given: set the learning rates with lr"),
    ({**COUNTED, "optimizer__betas": (0.9, 0.99)}, ValueError, r"optimizer=SGD cannot be built with optimizer__betas"),
    ({**COUNTED, "criterion": int}, TypeError, "criterion must be an nn.Module subclass"),
    ({**COUNTED, "criterion__reduction": "none"}, ValueError, r"it must reduce to one number \(criterion__reduction='none'"),
    ({**COUNTED, "criterion__foo": 1}, ValueError, "criterion=CrossEntropyLoss with criterion__foo failed"),
    ({**COUNTED, "criterion": nn.NLLLoss}, ValueError, "criterion=NLLLoss gives a negative loss on logits"),
    ({**COUNTED, "n_modes": True}, ValueError, "'n_modes' parameter of ESPROClassifier must be an int, not a bool"),
    ({**COUNTED, "batch_size": True}, ValueError, "'batch_size' parameter of ESPROClassifier must be an int, not a bool"),
    ({**COUNTED, "device": "cuda:abc"}, ValueError, "device='cuda:abc' is not a torch device"),
    ({**COUNTED, "device": "tpu"}, ValueError, "device='tpu' is not a torch device"),
    ({**COUNTED, "device": "meta"}, ValueError, "device='meta' is not supported"),
    ({**COUNTED, "device": "cpu:1"}, ValueError, "device='cpu:1' is not supported"),
    ({**COUNTED, "callbacks": [NotACallback()]}, TypeError, r"callbacks\[0\] is a NotACallback, not a skorch callback"),
    ({**COUNTED, "callbacks": [_early_stopping()]}, ValueError, r"monitors 'valid_loss'.*monitor 'train_loss' instead"),
    ({**COUNTED, "n_vertices": 14}, ValueError, "n_vertices=14 needs at least 13 trainable parameters.* has 12"),
    ({**COUNTED, "class_weight": {5: 2.0}}, ValueError, r"class_weight names labels that are not in y: \[5\]"),
    ({**COUNTED, "class_weight": "balanced", "criterion__weight": torch.ones(2)}, ValueError, "Both class_weight and criterion__weight"),
    ({**BASE, "module": WithBatchNorm, "batch_size": 1}, ValueError, "batch_size=1, but the module has BatchNorm"),
    ({**COUNTED, "predict_batch_size": 0}, ValueError, "'predict_batch_size' parameter of ESPROClassifier"),
])
def test_bad_settings_are_named_before_anything_trains(data, params, error, message):
    X, y = data
    Counting.training_calls = 0
    with pytest.raises(error, match=message):
        ESPROClassifier(**params).fit(X, y)
    assert Counting.training_calls == 0


def test_sample_models_refuses_a_negative_count(data):
    clf = ESPROClassifier(**TINY).fit(*data)
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="n_models must be a non-negative int"):
            clf.sample_models(bad)
    assert clf.sample_models(0) == []


def test_tools_name_bad_arguments(data):
    from sklearn_espro import LossPlane, LossPlaneDisplay, SimplicialComplex, connect_modes, fit_curve_swag, simplex_volumes
    from sklearn_espro import Simplex

    X, y = data
    modes = [nn.Linear(5, 2), nn.Linear(5, 2)]
    cases = [
        (lambda: connect_modes(modes, X[:, :4], y), ValueError, r"The module Linear failed on a batch of X of shape \(2, 4\)"),
        (lambda: connect_modes(modes, X, y[:-1]), ValueError, "X has 40 samples but y has 39"),
        (lambda: connect_modes([nn.Linear(5, 2), nn.Linear(5, 3)], X, y), ValueError, r"modes\[1\] does not have the architecture of modes\[0\]"),
        (lambda: connect_modes(modes, X, y, batch_size=0), ValueError, "'batch_size' parameter of connect_modes"),
        (lambda: connect_modes(modes, X, y, volume_reg=-1.0), ValueError, "'volume_reg' parameter of connect_modes"),
        (lambda: connect_modes(modes, X, y, optimizer=torch.optim.LBFGS), ValueError, "needs a closure"),
        (lambda: connect_modes(modes, np.full_like(X, np.nan), y), ValueError, "X must be a non-empty array of finite numbers"),
        (lambda: fit_curve_swag(modes, X, y, batch_size=0), ValueError, "'batch_size' parameter of fit_curve_swag"),
        (lambda: fit_curve_swag([nn.Linear(5, 2), "a"], X, y), TypeError, r"modes\[1\] is a str, not an nn.Module"),
        (lambda: LossPlaneDisplay.from_estimator(ESPROClassifier(**TINY).fit(X, y), X, y, simplex=5), ValueError, "simplex=5, but the estimator has 1 simplexes"),
        (lambda: LossPlaneDisplay.from_estimator(ESPROClassifier(**TINY).fit(X, y), X, y, vertices=(0, 0, 1)), ValueError, "must name 3 different vertices"),
        (lambda: LossPlaneDisplay.from_module(modes[0], np.random.randn(3, 12), X[:0], y[:0]), ValueError, "X must be a non-empty array"),
        (lambda: LossPlaneDisplay.from_module(modes[0], np.random.randn(3, 12), np.full_like(X, np.nan), y), ValueError, "finite numbers"),
        (lambda: LossPlane().fit(np.random.randn(2, 12)), ValueError, r"W must hold three weight vectors"),
        (lambda: simplex_volumes([]), ValueError, "simplexes must be a non-empty list"),
        (lambda: SimplicialComplex(Simplex.from_module(modes[0]), [(0, 1)]), ValueError, "simplexes name vertex 1, but the complex has 1 vertices"),
        (lambda: SimplicialComplex(Simplex.from_module(modes[0]), [(0,)]).predict_proba(X, n_samples=0), ValueError, "'n_samples' parameter"),
        (lambda: SimplicialComplex(Simplex.from_module(modes[0]), [(0,)]).predict_proba(X[:, :3]), ValueError, "The module Linear failed"),
    ]
    for call, error, message in cases:
        with pytest.raises(error, match=message):
            call()


class Small(nn.Module):
    """A two-layer network with optional BatchNorm, frozen, tied and in-place parts."""

    def __init__(self, n_features_in, n_classes, batchnorm=False, frozen=False, tied=False, inplace=False):
        super().__init__()
        self.first = nn.ReLU(inplace=True) if inplace else nn.Identity()
        self.inp = nn.Linear(n_features_in, 6)
        self.norm = nn.BatchNorm1d(6) if batchnorm else nn.Identity()
        self.a, self.b = nn.Linear(6, 6), nn.Linear(6, 6)
        if tied:
            self.b.weight = self.a.weight
        if frozen:
            self.inp.requires_grad_(False)
        self.out = nn.Linear(6, n_classes)

    def forward(self, x):
        h = torch.relu(self.norm(self.inp(self.first(x))))
        return self.out(torch.relu(self.b(torch.relu(self.a(h)))))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n_samples=st.integers(2, 45),
    batch_size=st.integers(1, 50),
    n_train_samples=st.integers(1, 8),
    n_vertices=st.integers(1, 4),
    parts=st.fixed_dictionaries({k: st.booleans() for k in ("batchnorm", "frozen", "tied", "inplace")}),
    float64=st.booleans(),
    reverse=st.booleans(),
    seed=st.integers(0, 5),
)
def test_any_small_module_leaves_the_arrays_alone_and_gives_clear_errors_or_probabilities(
        n_samples, batch_size, n_train_samples, n_vertices, parts, float64, reverse, seed):
    rng = np.random.RandomState(seed)
    X = rng.randn(n_samples, 4).astype(np.float64 if float64 else np.float32)
    y = rng.randint(0, 3, n_samples)
    X, y = (X[::-1], y[::-1]) if reverse else (X, y)
    X_before, y_before = X.copy(), y.copy()
    clf = ESPROClassifier(Small, n_modes=1, n_vertices=n_vertices, max_epochs=2, vertex_epochs=1, n_samples=2,
                          batch_size=batch_size, n_train_samples=n_train_samples, random_state=seed, device="cpu",
                          **{f"module__{k}": v for k, v in parts.items()})
    try:
        clf.fit(X, y)
        proba = clf.predict_proba(X)
    except (ValueError, FloatingPointError) as exc:
        _assert_clear(exc, r"batch_size=1, but the module has BatchNorm|y has a single class"
                           r"|The training loss became|non-finite")
        proba = None
    np.testing.assert_array_equal(X, X_before)
    np.testing.assert_array_equal(y, y_before)
    if proba is not None:
        assert proba.dtype == np.float64 and proba.shape == (n_samples, len(clf.classes_))
        assert np.allclose(proba.sum(axis=1), 1.0, atol=1e-10)
