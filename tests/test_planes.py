import copy

import numpy as np
import pytest
import torch
from torch import nn
from torch.optim.swa_utils import update_bn

from sklearn_espro import ConvNet1d, ESPROClassifier, LossPlane
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


def test_plane_of_a_fitted_simplex(fitted, digits):
    X, y, _, _ = digits
    plane = LossPlane(fitted, resolution=7).fit(X, y)
    assert plane.loss_.shape == plane.accuracy_.shape == (7, 7)
    assert np.isfinite(plane.loss_).all() and ((plane.accuracy_ >= 0) & (plane.accuracy_ <= 1)).all()
    # its own anchors map to the coordinates it reports; the centre maps to (0, 0)
    np.testing.assert_allclose(plane.transform(plane.anchors_), plane.anchor_coords_, atol=1e-9)
    np.testing.assert_allclose(plane.transform(plane.center_[None]), [[0.0, 0.0]], atol=1e-9)
    # the grid covers every anchor, with room to spare
    assert plane.grid_u_.min() < plane.anchor_coords_[:, 0].min() < plane.anchor_coords_[:, 0].max() < plane.grid_u_.max()
    assert plane.grid_v_.min() < plane.anchor_coords_[:, 1].min() < plane.anchor_coords_[:, 1].max() < plane.grid_v_.max()
    # a grid value is the loss of the network with those weights
    j, i = 2, 5
    w = plane.center_ + plane.grid_u_[i] * plane.basis_[0] + plane.grid_v_[j] * plane.basis_[1]
    module = fitted.simplexes_[0].module
    assert plane.loss_[j, i] == pytest.approx(_loss_at(module, w, X, y), rel=1e-4)


def test_plane_of_given_anchors_with_batchnorm(digits):
    X, y, _, _ = digits
    X3 = X[:200].reshape(-1, 1, 64)
    torch.manual_seed(0)
    nets = [ConvNet1d(64, 10, channels=(4,)) for _ in range(3)]
    anchors = np.stack([flat_parameters(n) for n in nets])
    plane = LossPlane(module=nets[0], anchors=anchors, resolution=4, grid_batch=5).fit(X3, y[:200])
    np.testing.assert_allclose(plane.transform(anchors), plane.anchor_coords_, atol=1e-9)
    j, i = 3, 1
    w = plane.center_ + plane.grid_u_[i] * plane.basis_[0] + plane.grid_v_[j] * plane.basis_[1]
    assert plane.loss_[j, i] == pytest.approx(_loss_at(nets[0], w, X3, y[:200], bn=True), rel=1e-4)


def test_transformer_conventions_and_errors(fitted, digits):
    X, y, _, _ = digits
    plane = LossPlane(fitted, resolution=3)
    assert plane.fit(X, y) is plane
    assert list(plane.get_feature_names_out()) == ["u", "v"]
    with pytest.raises(ValueError, match="Give either estimator"):
        LossPlane().fit(X, y)
    with pytest.raises(ValueError, match=r"vertices=\(0, 1, 5\) must name 3 different vertices of the 3"):
        LossPlane(fitted, vertices=(0, 1, 5)).fit(X, y)
    with pytest.raises(ValueError, match="anchors must have shape"):
        LossPlane(module=nn.Linear(64, 10), anchors=np.zeros((3, 5))).fit(X, y)
    with pytest.raises(ValueError, match="lie on one line"):
        w = flat_parameters(nn.Linear(64, 10))
        LossPlane(module=nn.Linear(64, 10), anchors=np.stack([w, 2 * w, 3 * w])).fit(X, y)
    with pytest.raises(ValueError, match=r"W must have shape \(n_vectors, "):
        plane.transform(np.zeros((2, 3)))


def test_plot_draws_contours_and_anchors(fitted, digits):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    X, y, _, _ = digits
    _, ax = plt.subplots()  # its own axes: another test's open figure must not count
    assert LossPlane(fitted, resolution=5).fit(X, y).plot(ax=ax) is ax
    from matplotlib.collections import PathCollection
    from matplotlib.contour import ContourSet

    assert any(isinstance(c, ContourSet) for c in [*ax.collections, *getattr(ax, "_children", [])])
    anchors = [c for c in ax.collections if isinstance(c, PathCollection) and not isinstance(c, ContourSet)]
    assert len(anchors) == 1 and len(anchors[0].get_offsets()) == 3
    plt.close("all")


def test_weights_loss_names_a_wrong_shape():
    from sklearn_espro._core.landscape import weights_loss

    with pytest.raises(ValueError, match=r"weights must have shape \(n_vectors, 8\)"):
        weights_loss(nn.Linear(3, 2), np.zeros((2, 7), dtype=np.float32), np.ones((4, 3)), np.zeros(4))


def test_plot_without_matplotlib_names_the_extra(fitted, digits, monkeypatch):
    import sys

    X, y, _, _ = digits
    plane = LossPlane(fitted, resolution=3).fit(X, y)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=r"pip install 'sklearn-espro\[plot\]'"):
        plane.plot()


def test_weights_loss_refuses_labels_that_are_not_class_indices_of_the_module():
    from sklearn_espro._core.landscape import weights_loss

    net, X = nn.Linear(3, 2), np.ones((4, 3), dtype=np.float32)
    w = flat_parameters(net)[None]
    with pytest.raises(ValueError, match="y holds class index 5, but the module has 2 outputs"):
        weights_loss(net, w, X, np.array([0, 1, 5, 1]))
    for bad in (np.array([0.5, 1, 0, 1]), np.array([-1, 1, 0, 1])):  # never silently truncated
        with pytest.raises(ValueError, match="y must hold class indices"):
            weights_loss(net, w, X, bad)
