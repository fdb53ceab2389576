"""Concurrent prediction: one fitted estimator served from many threads answers bit for bit as it does alone."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from sklearn_espro import ConvNet1d, ESPROClassifier, ESPRORegressor, connect_modes

N_THREADS, N_CALLS = 8, 20


def _as_tuple(value):
    return value if isinstance(value, tuple) else (value,)


def _same(answer, reference):
    return len(answer) == len(reference) and all(np.array_equal(a, r) for a, r in zip(answer, reference))


def _check_concurrent(call):
    """``call`` from N_THREADS threads, N_CALLS times each: every answer equals the sequential one bit for bit."""
    reference = _as_tuple(call())
    assert _same(_as_tuple(call()), reference)  # sequential repeats agree

    def worker(_):
        return sum(not _same(_as_tuple(call()), reference) for _ in range(N_CALLS))

    with ThreadPoolExecutor(N_THREADS) as pool:
        n_wrong = sum(pool.map(worker, range(N_THREADS)))
    assert n_wrong == 0, f"{n_wrong} of {N_THREADS * N_CALLS} concurrent answers differ from the sequential one"


@pytest.fixture(scope="module")
def digits_big(digits):
    X, y, X_test, _ = digits
    return X, y, np.concatenate([X_test] * 5)


def test_classifier_predict_proba_from_many_threads(digits_big):
    X, y, X_test = digits_big
    clf = ESPROClassifier(max_epochs=3, vertex_epochs=1, n_vertices=3, random_state=0).fit(X, y)
    _check_concurrent(lambda: clf.predict_proba(X_test))


def test_regressor_predict_with_std_from_many_threads():
    rng = np.random.RandomState(0)
    X = rng.randn(300, 6).astype(np.float32)
    y = X[:, 0] - X[:, 1] ** 2 + 0.1 * rng.randn(300)
    reg = ESPRORegressor(n_modes=2, n_vertices=3, max_epochs=3, vertex_epochs=1, random_state=0).fit(X, y)
    X_test = rng.randn(1000, 6).astype(np.float32)
    _check_concurrent(lambda: reg.predict(X_test, return_std=True))


def test_batchnorm_cnn_predict_and_sample_models_from_many_threads():
    """A BatchNorm CNN: prediction runs each model as a plain module; sample_models recomputes statistics."""
    rng = np.random.RandomState(0)
    X = rng.randn(200, 32).astype(np.float32)
    y = (X[:, :16].sum(1) > 0).astype(int)
    clf = ESPROClassifier(ConvNet1d, module__channels=(4, 4), n_modes=1, n_vertices=2, max_epochs=2,
                          vertex_epochs=1, n_samples=3, random_state=0).fit(X, y)
    _check_concurrent(lambda: clf.predict_proba(X))

    def draws():  # statistics recomputed on X, then the drawn models' logits
        with torch.no_grad():
            return tuple(m(torch.from_numpy(X)).numpy() for m in clf.sample_models(2, X=X, random_state=1))

    _check_concurrent(draws)


def test_complex_predict_proba_from_many_threads(digits):
    X, y, X_test, _ = digits
    clf = ESPROClassifier(n_modes=2, n_vertices=1, max_epochs=3, module__hidden_sizes=(16,), random_state=0).fit(X, y)
    cx = connect_modes([s.vertex_module(0) for s in clf.simplexes_], X, y, n_connectors=1, epochs=1, random_state=0)
    _check_concurrent(lambda: cx.predict_proba(X_test, n_samples=5, random_state=0))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_classifier_predict_proba_from_many_threads_on_cuda(digits_big):
    X, y, X_test = digits_big
    clf = ESPROClassifier(max_epochs=3, vertex_epochs=1, n_vertices=3, device="cuda", random_state=0).fit(X, y)
    _check_concurrent(lambda: clf.predict_proba(X_test))
