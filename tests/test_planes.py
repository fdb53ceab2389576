import copy

import numpy as np
import pytest
import torch
from torch import nn
from torch.optim.swa_utils import update_bn

from sklearn.base import clone

from sklearn_espro import ConvNet1d, ESPROClassifier, LossPlane, LossPlaneDisplay
from sklearn_espro._core.landscape import flat_parameters
from sklearn_espro._core.simplex import unflatten


@pytest.fixture(scope="module")
def fitted(digits):
    X, y, _, _ = digits
    return ESPROClassifier(n_modes=1, n_vertices=3, max_epochs=5, vertex_epochs=2, module__hidden_sizes=(16,),
                           volume_reg=0.5, random_state=0).fit(X, y)


def _loss_at(module, weights, X, y, bn=False):
    net = copy.deepcopy(module)
    like = {k: v.detach().unsqueeze(0) for k, v in net.named_parameters()}
    net.load_state_dict({**dict(net.named_buffers()), **unflatten(torch.as_tensor(weights).float(), like)})
    if bn:
        update_bn([torch.as_tensor(X)], net)
    with torch.no_grad():
        return nn.functional.cross_entropy(net.eval()(torch.as_tensor(X)), torch.as_tensor(y)).item()


@pytest.fixture(autouse=True)
def _agg_backend():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    yield
    plt.close("all")


def _grid_weights(display, j, i):
    return display.plane.inverse_transform([[display.grid_u[i], display.grid_v[j]]])[0]


def test_the_loss_on_the_plane_of_a_fitted_simplex(fitted, digits):
    X, y, _, _ = digits
    display = LossPlaneDisplay.from_estimator(fitted, X, y, resolution=7)
    plane = display.plane
    assert display.loss.shape == display.accuracy.shape == (7, 7)
    assert np.isfinite(display.loss).all() and ((display.accuracy >= 0) & (display.accuracy <= 1)).all()
    # its own anchors map to the coordinates it reports; the centre maps to (0, 0)
    np.testing.assert_allclose(plane.transform(plane.anchors_), plane.anchor_coords_, atol=1e-9)
    np.testing.assert_allclose(plane.transform(plane.center_[None]), [[0.0, 0.0]], atol=1e-9)
    np.testing.assert_allclose(plane.anchors_, fitted.simplexes_[0].flat_vertices()[:3].double().numpy())
    # the grid covers every anchor, with room to spare
    u, v = display.grid_u, display.grid_v
    assert u.min() < plane.anchor_coords_[:, 0].min() < plane.anchor_coords_[:, 0].max() < u.max()
    assert v.min() < plane.anchor_coords_[:, 1].min() < plane.anchor_coords_[:, 1].max() < v.max()
    # a grid value is the loss of the network with those weights
    j, i = 2, 5
    w = _grid_weights(display, j, i)
    assert display.loss[j, i] == pytest.approx(_loss_at(fitted.simplexes_[0].module, w, X, y), rel=1e-4)


def test_the_loss_on_the_plane_of_given_anchors_with_batchnorm(digits):
    X, y, _, _ = digits
    X3 = X[:200].reshape(-1, 1, 64)
    torch.manual_seed(0)
    nets = [ConvNet1d(64, 10, channels=(4,)) for _ in range(3)]
    anchors = np.stack([flat_parameters(n) for n in nets])
    display = LossPlaneDisplay.from_module(nets[0], anchors, X3, y[:200], resolution=4, grid_batch=5)
    np.testing.assert_allclose(display.plane.transform(anchors), display.plane.anchor_coords_, atol=1e-9)
    j, i = 3, 1
    w = _grid_weights(display, j, i)
    assert display.loss[j, i] == pytest.approx(_loss_at(nets[0], w, X3, y[:200], bn=True), rel=1e-4)


def test_loss_plane_is_a_transformer_of_weight_vectors():
    rng = np.random.RandomState(0)
    W = rng.randn(3, 12)
    before = W.copy()
    plane = LossPlane()
    coords = plane.fit_transform(W)
    np.testing.assert_array_equal(W, before)  # the caller's array is not written
    assert plane.fit(W) is plane and plane.n_features_in_ == 12
    np.testing.assert_allclose(coords, plane.transform(W), atol=1e-12)
    np.testing.assert_allclose(coords, plane.anchor_coords_, atol=1e-12)
    np.testing.assert_allclose(plane.basis_ @ plane.basis_.T, np.eye(2), atol=1e-12)  # orthonormal
    np.testing.assert_allclose(plane.inverse_transform(coords), W, atol=1e-12)  # the anchors lie in the plane
    off = rng.randn(5, 12)  # points off the plane come back as their projection on it
    back = plane.inverse_transform(plane.transform(off))
    np.testing.assert_allclose(plane.transform(back), plane.transform(off), atol=1e-12)
    np.testing.assert_allclose((off - back) @ plane.basis_.T, 0, atol=1e-12)
    assert list(plane.get_feature_names_out()) == ["u", "v"]
    assert clone(plane).get_params() == plane.get_params()


def test_loss_plane_and_display_errors_name_the_argument(fitted, digits):
    X, y, _, _ = digits
    with pytest.raises(ValueError, match=r"W must hold three weight vectors, shape \(3, n_params\)"):
        LossPlane().fit(X, y)
    with pytest.raises(ValueError, match="W contains NaN"):
        LossPlane().fit(np.full((3, 4), np.nan))
    with pytest.raises(ValueError, match="lie on one line"):
        LossPlane().fit(np.outer([1.0, 2.0, 3.0], np.ones(4)))
    plane = LossPlane().fit(np.eye(3, 5))
    with pytest.raises(ValueError, match=r"W must have shape \(n_vectors, 5\)"):
        plane.transform(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"X must have shape \(n_points, 2\)"):
        plane.inverse_transform(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"vertices=\(0, 1, 5\) must name 3 different vertices of the 3"):
        LossPlaneDisplay.from_estimator(fitted, X, y, vertices=(0, 1, 5))
    with pytest.raises(ValueError, match="simplex=2, but the estimator has 1 simplexes"):
        LossPlaneDisplay.from_estimator(fitted, X, y, simplex=2)
    with pytest.raises(ValueError, match="The 'resolution' parameter of LossPlaneDisplay.from_estimator must be an int"):
        LossPlaneDisplay.from_estimator(fitted, X, y, resolution=1)
    with pytest.raises(ValueError, match="The 'margin' parameter of LossPlaneDisplay.from_module must be a number"):
        LossPlaneDisplay.from_module(nn.Linear(64, 10), np.zeros((3, 650)), X, y, margin=-1)
    with pytest.raises(ValueError, match="anchors must have shape"):
        LossPlaneDisplay.from_module(nn.Linear(64, 10), np.zeros((3, 5)), X, y)
    with pytest.raises(ValueError, match="lie on one line"):
        w = flat_parameters(nn.Linear(64, 10))
        LossPlaneDisplay.from_module(nn.Linear(64, 10), np.stack([w, 2 * w, 3 * w]), X, y)


def test_display_draws_contours_and_anchors(fitted, digits):
    import matplotlib.pyplot as plt
    from matplotlib.collections import PathCollection
    from matplotlib.contour import ContourSet

    X, y, _, _ = digits
    _, ax = plt.subplots()  # its own axes: another test's open figure must not count
    display = LossPlaneDisplay.from_estimator(fitted, X, y, resolution=5, ax=ax)
    assert display.ax_ is ax and display.figure_ is ax.figure and isinstance(display.surface_, ContourSet)
    anchors = [c for c in ax.collections if isinstance(c, PathCollection) and not isinstance(c, ContourSet)]
    assert len(anchors) == 1 and len(anchors[0].get_offsets()) == 3
    again = display.plot()  # drawn again on a new figure
    assert again is display and display.ax_ is not ax


def test_the_old_loss_plane_still_works_with_a_future_warning(fitted, digits):
    import matplotlib.pyplot as plt

    X, y, _, _ = digits
    with pytest.warns(FutureWarning, match="LossPlaneDisplay.from_estimator"):
        old = LossPlane(fitted, resolution=5).fit(X, y)
    new = LossPlaneDisplay.from_estimator(fitted, X, y, resolution=5)
    np.testing.assert_array_equal(old.loss_, new.loss)
    np.testing.assert_array_equal(old.grid_u_, new.grid_u)
    np.testing.assert_allclose(old.transform(old.anchors_), new.plane.anchor_coords_)
    _, ax = plt.subplots()
    assert old.plot(ax=ax) is ax
    with pytest.raises(ValueError, match="Give either estimator"):
        LossPlane(fitted, module=nn.Linear(64, 10)).fit(X, y)


def test_weights_loss_leaves_the_callers_module_as_it_was(digits):
    from sklearn_espro._core.landscape import weights_loss

    X, y, _, _ = digits
    net = nn.Sequential(nn.Linear(64, 8), nn.BatchNorm1d(8), nn.Linear(8, 10)).train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    weights_loss(net, flat_parameters(net)[None], X, y)
    assert net.training and all(torch.equal(v, before[k]) for k, v in net.state_dict().items())


def test_weights_loss_names_a_wrong_shape():
    from sklearn_espro._core.landscape import weights_loss

    with pytest.raises(ValueError, match=r"weights must have shape \(n_vectors, 8\)"):
        weights_loss(nn.Linear(3, 2), np.zeros((2, 7), dtype=np.float32), np.ones((4, 3)), np.zeros(4))


def test_drawing_without_matplotlib_names_the_extra(fitted, digits, monkeypatch):
    import sys

    X, y, _, _ = digits
    display = LossPlaneDisplay.from_estimator(fitted, X, y, resolution=3)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=r"pip install 'sklearn-espro\[plot\]'"):
        display.plot()


def test_weights_loss_refuses_labels_that_are_not_class_indices_of_the_module():
    from sklearn_espro._core.landscape import weights_loss

    net, X = nn.Linear(3, 2), np.ones((4, 3), dtype=np.float32)
    w = flat_parameters(net)[None]
    with pytest.raises(ValueError, match="y holds class index 5, but the module has 2 outputs"):
        weights_loss(net, w, X, np.array([0, 1, 5, 1]))
    for bad in (np.array([0.5, 1, 0, 1]), np.array([-1, 1, 0, 1])):  # never silently truncated
        with pytest.raises(ValueError, match="y must hold class indices"):
            weights_loss(net, w, X, bad)


def _linear_plane_setup():
    net = nn.Linear(2, 2)
    w = flat_parameters(net)
    anchors = np.stack([w, w + np.eye(6)[0], w + np.eye(6)[1]])
    X = np.random.RandomState(0).randn(20, 2).astype(np.float32)
    return net, anchors, X, np.arange(20) % 2


def test_from_module_refuses_labels_that_are_not_class_indices_never_truncating_them():
    net, anchors, X, y = _linear_plane_setup()
    # 0.5 once scored as class 0; labels of another kind belong to from_estimator (its classes_)
    for bad, shown in ((y + 0.5, "0.5"), (np.where(y == 1, 1.0, np.nan), "nan"), (np.array(["a", "b"] * 10), "'a'"),
                       (y - 1, "-1")):
        with pytest.raises(ValueError, match=f"y must hold class indices.*got {shown}"):
            LossPlaneDisplay.from_module(net, anchors, X, bad, resolution=3)
    with pytest.raises(ValueError, match="y holds class index 2, but the module has 2 outputs"):
        LossPlaneDisplay.from_module(net, anchors, X, y + 1, resolution=3)
    # integer-valued floats and bools are the class indices they equal
    exact = LossPlaneDisplay.from_module(net, anchors, X, y, resolution=3).loss
    for same in (y.astype(np.float64), y == 1):
        np.testing.assert_array_equal(LossPlaneDisplay.from_module(net, anchors, X, same, resolution=3).loss, exact)


def test_loss_plane_takes_tensors_that_require_grad_and_refuses_strings():
    W = torch.randn(3, 5, requires_grad=True)
    plane = LossPlane().fit(W)
    np.testing.assert_array_equal(plane.anchors_, W.detach().double().numpy())
    np.testing.assert_allclose(plane.transform(W), plane.anchor_coords_, atol=1e-12)
    np.testing.assert_allclose(plane.fit_transform(list(W)), plane.anchor_coords_, atol=1e-12)  # a list of rows
    np.testing.assert_allclose(plane.inverse_transform(torch.zeros(1, 2, requires_grad=True)), plane.center_[None])
    assert W.requires_grad and W.grad is None
    for bad in ([["a", "b", "c"]] * 3, np.array([["1", "2", "3"], ["0", "1", "0"], ["3", "3", "1"]])):
        with pytest.raises(ValueError, match="W must hold numbers"):
            LossPlane().fit(bad)
        with pytest.raises(ValueError, match="W must hold numbers"):
            plane.transform(bad)
    with pytest.raises(ValueError, match="X must hold numbers"):
        plane.inverse_transform([["a", "b"]])
    with pytest.raises(ValueError, match="W must hold numbers"):
        LossPlane().fit(np.ones((3, 4)) * 1j)
    # the display's anchors and data too
    net, anchors, X, y = _linear_plane_setup()
    expected = LossPlaneDisplay.from_module(net, anchors, X, y, resolution=3).loss
    display = LossPlaneDisplay.from_module(net, torch.tensor(anchors, requires_grad=True),
                                           torch.tensor(X, requires_grad=True), torch.as_tensor(y), resolution=3)
    np.testing.assert_allclose(display.loss, expected, rtol=1e-6)
    with pytest.raises(ValueError, match="anchors must hold numbers"):
        LossPlaneDisplay.from_module(net, [["a"] * 6] * 3, X, y, resolution=3)


def test_from_estimator_refuses_a_regressor_and_other_objects_before_computing(digits):
    from sklearn_espro import ESPRORegressor

    X, y = np.random.RandomState(0).randn(40, 3).astype(np.float32), np.arange(40) % 2
    reg = ESPRORegressor(n_modes=1, n_vertices=3, max_epochs=1, vertex_epochs=1, n_samples=2,
                         module__hidden_sizes=(4,), random_state=0, device="cpu").fit(X, X[:, 0])
    for bad, name in ((reg, "ESPRORegressor"), (nn.Linear(3, 2), "Linear"), ("clf", "str")):
        with pytest.raises(TypeError, match=f"estimator must be a fitted ESPROClassifier.*got {name}"):
            LossPlaneDisplay.from_estimator(bad, X, y, resolution=3)
    with pytest.warns(FutureWarning), pytest.raises(TypeError, match="estimator must be a fitted ESPROClassifier"):
        LossPlane(reg, resolution=3).fit(X, y)


def test_from_estimator_refuses_bools_as_vertices(fitted, digits):
    X, y, _, _ = digits
    with pytest.raises(ValueError, match=r"vertices=\(0, True, 2\) must name 3 different vertices"):
        LossPlaneDisplay.from_estimator(fitted, X, y, vertices=(0, True, 2))
    with pytest.raises(ValueError, match="vertices=3 must name 3 different vertices"):
        LossPlaneDisplay.from_estimator(fitted, X, y, vertices=3)
    np.testing.assert_array_equal(LossPlaneDisplay.from_estimator(fitted, X, y, vertices=np.array([2, 0, 1]),
                                                                  resolution=3).plane.anchors_,
                                  fitted.simplexes_[0].flat_vertices()[[2, 0, 1]].double().numpy())
