import numpy as np
import pytest
import torch

from sklearn_espro import ESPROClassifier
from sklearn_espro._curves import CurveSWAG, chain_weights, fit_curve_swag
from sklearn_espro._core.landscape import weights_loss


@pytest.fixture(scope="module")
def two_modes(digits):
    X, y, _, _ = digits
    # version 0.2's mode rate: at the default lr=0.2 the modes reach a tenth of this training loss (0.013) and the
    # curves, at their own default settings, end 3-6x above it, outside the bounds asserted below
    clf = ESPROClassifier(n_modes=2, n_vertices=1, max_epochs=20, lr=0.05, batch_size=50, module__hidden_sizes=(32,),
                          random_state=0).fit(X, y)
    return [s.vertex_module(0) for s in clf.simplexes_]


def test_chain_weights_follow_both_segments():
    w0, w1 = torch.tensor([0.0, 0.0]), torch.tensor([4.0, 0.0])
    theta = torch.tensor([[2.0, 2.0], [2.0, -2.0]])
    path = chain_weights(w0, theta, w1, 5)
    assert path.shape == (2, 5, 2)
    torch.testing.assert_close(path[0], torch.tensor([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0], [3.0, 1.0], [4.0, 0.0]]))
    torch.testing.assert_close(path[1, 2], theta[1])


def test_swag_moments_and_samples():
    points = torch.zeros(3, 1, 2)
    from sklearn_espro import Simplex

    simplex = Simplex(torch.nn.Linear(2, 1, bias=False), {"weight": points})
    snapshots = torch.tensor([[0.0, 1.0], [2.0, 1.0], [4.0, 1.0]], dtype=torch.float64)
    mean = snapshots.mean(0)
    swag = CurveSWAG(simplex, mean, snapshots.square().mean(0), snapshots - mean)
    torch.testing.assert_close(swag.variance(), torch.tensor([8 / 3, 0.0], dtype=torch.float64))
    draws = swag.sample(4000, torch.Generator().manual_seed(0)).double()
    assert torch.equal(draws[:, 1], torch.ones(4000, dtype=torch.float64))  # no spread, no noise
    # variance: diag / 2 + (sum of squared deviations) / (2 (K - 1)) = 4/3 + 8/4 = 10/3
    assert draws[:, 0].var().item() == pytest.approx(10 / 3, rel=0.1)
    assert draws[:, 0].mean().item() == pytest.approx(2.0, abs=0.1)


def test_sampled_curves_between_two_modes_keep_low_loss(two_modes, digits):
    X, y, _, _ = digits
    swag = fit_curve_swag(two_modes, X, y, epochs=20, swag_epochs=10, batch_size=50, random_state=0)
    w0, w1 = swag.ends
    flat = [torch.cat([p.detach().flatten() for p in m.parameters()]) for m in two_modes]
    assert torch.equal(w0, flat[0]) and torch.equal(w1, flat[1])
    assert swag.deviations.shape == (10, w0.numel())
    assert swag.variance().sum() > 0
    theta = swag.sample(8, torch.Generator().manual_seed(0))
    assert not torch.allclose(theta[0], theta[1])
    loss, accuracy = swag.path_loss(X, y, theta, n_points=11)
    mode_loss = max(loss[:, 0].max(), loss[:, -1].max())
    line = chain_weights(w0, ((w0 + w1) / 2)[None], w1, 11)[0]
    line_loss, _ = weights_loss(two_modes[0], line, X, y)
    assert loss.max() < 1.5 * mode_loss < line_loss.max()
    assert accuracy.min() > 0.9
    swa_loss, _ = swag.path_loss(X, y, n_points=11)
    assert swa_loss.shape == (1, 11) and swa_loss.max() < 1.5 * mode_loss
    with pytest.raises(ValueError, match="labels the curve was not trained on"):
        swag.path_loss(X, y + 100)
    with pytest.raises(ValueError, match=r"theta must have shape \(n_curves, "):
        swag.path_loss(X, y, theta[0])


def test_curve_labels_need_not_be_indices(two_modes, digits):
    X, y, _, _ = digits
    kwargs = dict(epochs=2, swag_epochs=2, batch_size=50, random_state=0)
    by_index = fit_curve_swag(two_modes, X, y, **kwargs)
    by_name = fit_curve_swag(two_modes, X, np.array([f"digit {d}" for d in y]), **kwargs)
    assert by_name.classes[0] == "digit 0"
    np.testing.assert_allclose(by_name.path_loss(X, by_name.classes[y])[0], by_index.path_loss(X, y)[0])


def test_fit_curve_swag_rejects_bad_arguments(two_modes, digits):
    X, y, _, _ = digits
    with pytest.raises(ValueError, match="modes must hold 2 networks; got 1"):
        fit_curve_swag(two_modes[:1], X, y)
    with pytest.raises(ValueError, match="The 'swag_epochs' parameter of fit_curve_swag must be an int in the range \\[2, inf\\)"):
        fit_curve_swag(two_modes, X, y, swag_epochs=1)
