"""Version 0.4.0's public module paths still import, warn, and load old pickles."""

import importlib
import pickle
import sys

import pytest
import torch

import sklearn_espro
from sklearn_espro import Simplex
from sklearn_espro._compat import MOVED_MODULES


@pytest.mark.parametrize("old", sorted(MOVED_MODULES))
def test_an_old_module_path_imports_the_moved_module_with_a_future_warning(old):
    sys.modules.pop(old, None)
    with pytest.warns(FutureWarning, match=rf"{old} is private since version 0.4.1.*{MOVED_MODULES[old]}"):
        module = importlib.import_module(old)
    assert module is importlib.import_module(MOVED_MODULES[old])
    assert module.__name__ == MOVED_MODULES[old]  # the real module, its spec untouched


def test_old_module_paths_as_attributes_and_unknown_names():
    sys.modules.pop("sklearn_espro.training", None)
    sklearn_espro.__dict__.pop("training", None)  # set by an earlier import of the old path
    with pytest.warns(FutureWarning, match="sklearn_espro.training is private"):
        assert sklearn_espro.training.train_step is importlib.import_module("sklearn_espro._core.training").train_step
    with pytest.raises(AttributeError, match="has no attribute 'trainin'"):
        sklearn_espro.trainin
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("sklearn_espro.no_such_module")


def test_a_pickle_that_names_an_old_module_path_loads():
    simplex = Simplex.from_module(torch.nn.Linear(3, 2))
    # what pickle wrote for a Simplex under version 0.4.0: the class under its old module path
    # (protocol 2 names a class with the newline-ended GLOBAL opcode, so the path can be swapped)
    data = pickle.dumps(simplex, protocol=2)
    assert b"csklearn_espro._core.simplex\nSimplex\n" in data
    data = data.replace(b"csklearn_espro._core.simplex\n", b"csklearn_espro.simplex\n")
    sys.modules.pop("sklearn_espro.simplex", None)
    with pytest.warns(FutureWarning, match="sklearn_espro.simplex is private"):
        loaded = pickle.loads(data)
    assert type(loaded) is Simplex
    for name, value in simplex.vertices.items():
        assert torch.equal(loaded.vertices[name], value)


def test_a_pickle_from_before_the_new_parameters_loads_clones_and_predicts():
    """An estimator pickled before max_grad_norm, augment, validation_fraction and batchnorm_rows."""
    import numpy as np
    from sklearn.base import clone

    from sklearn_espro import ESPROClassifier

    X, y = np.random.RandomState(0).randn(40, 3).astype(np.float32), np.arange(40) % 2
    clf = ESPROClassifier(n_modes=1, n_vertices=2, max_epochs=2, vertex_epochs=1, random_state=0).fit(X, y)
    old = pickle.loads(pickle.dumps(clf))
    for name in ("max_grad_norm", "augment", "validation_fraction", "batchnorm_rows"):
        del old.__dict__[name]  # what version 0.4.1 pickled
    loaded = pickle.loads(pickle.dumps(old))
    assert np.array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    params = clone(loaded).get_params()
    assert params["max_grad_norm"] is None and params["augment"] is None  # as those versions trained
    assert params["validation_fraction"] is None and params["batchnorm_rows"] is None
