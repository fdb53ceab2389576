import numpy as np
import pytest
import torch
from torch import nn

from sklearn_espro import ESPROClassifier, SimplexVolume
from sklearn_espro import connect_modes


def _loss(module, X, y):
    with torch.no_grad():
        return nn.functional.cross_entropy(module.eval()(torch.as_tensor(X)), torch.as_tensor(y)).item()


@pytest.fixture(scope="module")
def three_modes(digits):
    X, y, _, _ = digits
    # version 0.2's mode rate: at the default lr=0.2 the modes reach a tenth of this training loss (0.013) and the
    # connectors, at their own default settings, end 3-6x above it, outside the bounds asserted below
    clf = ESPROClassifier(n_modes=3, n_vertices=1, max_epochs=20, lr=0.05, batch_size=50, module__hidden_sizes=(32,),
                          random_state=0).fit(X, y)
    return [s.vertex_module(0) for s in clf.simplexes_]


def test_three_modes_connected_through_two_points_keep_low_loss(three_modes, digits):
    X, y, _, _ = digits
    before = [p.detach().clone() for p in three_modes[0].parameters()]
    cx = connect_modes(three_modes, X, y, n_connectors=2, batch_size=50, random_state=0)
    assert cx.n_vertices == 5 and cx.simplexes == [(0, 3, 4), (1, 3, 4), (2, 3, 4)]
    assert all(torch.equal(p, q) for p, q in zip(before, three_modes[0].parameters()))  # modes untouched
    for i, mode in enumerate(three_modes):  # the modes are the complex's first vertices
        flat = torch.cat([p.detach().flatten() for p in mode.parameters()])
        assert torch.allclose(cx.points.flat_vertices()[i], flat)
    logs = cx.log_volumes()
    assert torch.isfinite(logs).all()
    np.testing.assert_allclose(SimplexVolume(log=True).fit_transform(cx).ravel(), logs.numpy(), rtol=1e-10)
    assert cx.total_volume() == pytest.approx(float(logs.exp().sum()))
    coords = cx.sample_coords(20, torch.Generator().manual_seed(0))
    assert torch.allclose(coords.sum(1), torch.ones(20))
    assert ((coords[:, :3] > 0).sum(1) == 1).all()  # each point lies in one simplex: one mode
    mode_loss = np.mean([_loss(m, X, y) for m in three_modes])
    sampled = [_loss(cx.to_module(t), X, y) for t in coords]
    assert np.mean(sampled) < 1.25 * mode_loss
    assert max(sampled) < 2 * mode_loss
    # without training, the connecting points (at the modes' centroid) are far worse
    untrained = connect_modes(three_modes, X, y, n_connectors=1, epochs=0, random_state=0)
    assert _loss(untrained.to_module(torch.tensor([0.0, 0.0, 0.0, 1.0])), X, y) > 2 * mode_loss


def test_connect_modes_rejects_bad_arguments(three_modes, digits):
    X, y, _, _ = digits
    with pytest.raises(ValueError, match="modes must hold at least 1 networks; got 0"):
        connect_modes([], X, y)
    with pytest.raises(ValueError, match="The 'n_connectors' parameter of connect_modes must be an int in the range"):
        connect_modes(three_modes, X, y, n_connectors=0)


def test_first_vertices_give_the_earlier_complex_and_it_ensembles(three_modes, digits):
    X, y, X_test, y_test = digits
    cx = connect_modes(three_modes, X, y, n_connectors=2, batch_size=50, random_state=0)
    one = cx.first(4)
    assert one.simplexes == [(0, 3), (1, 3), (2, 3)] and one.n_vertices == 4
    assert torch.equal(one.points.flat_vertices(), cx.points.flat_vertices()[:4])
    np.testing.assert_array_equal(cx.first(5).log_volumes().numpy(), cx.log_volumes().numpy())
    with pytest.raises(ValueError, match="n_vertices must be in"):
        cx.first(6)
    proba = cx.predict_proba(X_test, n_samples=10, random_state=0)
    assert proba.shape == (len(X_test), 10)
    np.testing.assert_allclose(proba.sum(1), 1, rtol=1e-6)
    np.testing.assert_array_equal(proba, cx.predict_proba(X_test, n_samples=10, random_state=0))
    labels = cx.predict(X_test, n_samples=10, random_state=0)
    np.testing.assert_array_equal(cx.classes, np.arange(10))
    assert (labels == y_test).mean() > 0.8
