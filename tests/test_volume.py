import math

import numpy as np
import pytest
import torch

from sklearn_espro import ESPROClassifier, SimplexVolume
from sklearn_espro import Simplex


def test_closed_form_volumes_from_an_array_and_a_ragged_list():
    triangle = [[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.5, math.sqrt(3) / 2, 0.0]]
    corner = np.vstack([np.zeros(3), np.eye(3)])
    out = SimplexVolume().fit_transform([np.array(triangle), corner, np.array([[1.0, 2.0, 3.0]])])
    np.testing.assert_allclose(out[:, 0], [math.sqrt(3) / 4, 1 / 6, 1.0], rtol=1e-12)
    batch = np.stack([corner, 2 * corner])
    np.testing.assert_allclose(SimplexVolume().fit_transform(batch)[:, 0], [1 / 6, 8 / 6], rtol=1e-12)
    np.testing.assert_allclose(SimplexVolume(log=True).fit_transform(batch)[:, 0], np.log([1 / 6, 8 / 6]), rtol=1e-12)


def test_degenerate_simplex_has_zero_volume_not_nan():
    line = np.array([[[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]]])
    assert SimplexVolume().fit_transform(line)[0, 0] == 0.0
    assert SimplexVolume(log=True).fit_transform(line)[0, 0] == -np.inf


def test_fitted_estimator_and_simplex_objects(digits):
    X, y, _, _ = digits
    clf = ESPROClassifier(n_modes=2, n_vertices=3, max_epochs=2, vertex_epochs=1, module__hidden_sizes=(8,),
                          random_state=0).fit(X, y)
    logs = SimplexVolume(log=True).fit_transform(clf)
    np.testing.assert_allclose(logs[:, 0], clf.log_volumes_, rtol=1e-10)
    np.testing.assert_allclose(SimplexVolume(log=True).transform(clf.simplexes_), logs)
    module = torch.nn.Linear(2, 1, bias=False)
    s = Simplex(module, {"weight": torch.tensor([[[0.0, 0.0]], [[3.0, 0.0]], [[0.0, 2.0]]])})
    assert SimplexVolume().transform(s)[0, 0] == pytest.approx(3.0)


def test_transformer_conventions_and_errors():
    est = SimplexVolume()
    assert est.fit(np.zeros((1, 2, 3))) is est
    assert list(est.get_feature_names_out()) == ["volume"]
    assert list(SimplexVolume(log=True).get_feature_names_out()) == ["log_volume"]
    with pytest.raises(ValueError, match=r"shape \(n_simplexes, n_vertices, n_params\)"):
        est.transform(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"X\[1\] contains NaN"):
        est.transform([np.zeros((2, 2)), np.full((2, 2), np.nan)])
    with pytest.raises(ValueError, match="non-empty list"):
        est.transform([])


def test_the_function_and_the_transformer_give_the_same_volumes():
    from sklearn_espro import simplex_volumes

    rng = np.random.RandomState(0)
    simplexes = [rng.randn(3, 5), rng.randn(2, 5), rng.randn(4, 5)]
    logs = simplex_volumes(simplexes, log=True)
    assert logs.shape == (3,)
    np.testing.assert_allclose(SimplexVolume(log=True).fit_transform(simplexes).ravel(), logs)
    np.testing.assert_allclose(simplex_volumes(simplexes), np.exp(logs))
    assert simplex_volumes([np.array([[0.0, 0.0], [3.0, 4.0]])])[0] == pytest.approx(5.0)  # a segment's length
    with pytest.raises(ValueError, match="log must be True or False; got 'yes'"):
        simplex_volumes(simplexes, log="yes")
