"""BatchNorm statistics from a bounded number of rows (``batchnorm_rows``, issue 21)."""

import numpy as np
import pytest
import torch
from torch import nn

from sklearn_espro import ConvNet1d, ESPROClassifier, ESPRORegressor
from sklearn_espro._core.batchnorm import batch_sizes, recompute_batchnorm, subsample_rows
from sklearn_espro._core.members import sample_members
from sklearn_espro._core.prediction import draw_member, model_buffers
from sklearn_espro._core.simplex import Simplex, expand, private_module
from sklearn_espro.geometry import sample_barycentric

# one epoch on one-hot rows of alternating labels learns nothing, as expected: only the statistics matter here
pytestmark = pytest.mark.filterwarnings("ignore:The training loss of the mode:RuntimeWarning")


class BatchNormFirst(nn.Module):
    """BatchNorm on the raw features, then a linear head: its running mean is the mean of the rows it saw."""

    def __init__(self, n_features_in, n_classes):
        super().__init__()
        self.bn = nn.BatchNorm1d(n_features_in)
        self.fc = nn.Linear(n_features_in, n_classes)

    def forward(self, x):
        return self.fc(self.bn(x))


def _one_hot_data(n=40):
    """Row ``i`` is the ``i``-th unit vector: a running mean of ``1/k`` at exactly the ``k`` rows seen."""
    return np.eye(n, dtype=np.float32), np.arange(n) % 2


def _two_vertex_simplex(module):
    simplex = Simplex.from_module(module)
    return simplex.add_vertex({k: v[0] + 0.1 * torch.randn_like(v[0]) for k, v in simplex.vertices.items()})


def _fit(X, y, **params):
    settings = dict(module=BatchNormFirst, n_modes=2, n_vertices=2, n_samples=3, max_epochs=1, vertex_epochs=1,
                    batch_size=64, lr=0.05, device="cpu", random_state=0)
    return ESPROClassifier(**{**settings, **params}).fit(X, y)


# -- the rows -----------------------------------------------------------------------------
def test_subsample_rows_draws_distinct_rows_in_order_and_reads_X_only():
    X = torch.arange(20.0).view(10, 2)
    before = X.clone()
    rows = subsample_rows(X, 4, torch.Generator().manual_seed(3))
    index = (rows[:, 0] / 2).long()
    assert len(rows) == 4 and len(set(index.tolist())) == 4
    assert torch.equal(rows, X[index]) and bool((index.diff() > 0).all())
    assert torch.equal(X, before)
    assert torch.equal(rows, subsample_rows(X, 4, torch.Generator().manual_seed(3)))  # reproducible


def test_subsample_rows_keeps_every_row_when_there_are_no_more():
    X = torch.randn(5, 3)
    generator = torch.Generator().manual_seed(0)
    state = generator.get_state()
    assert subsample_rows(X, 5, generator) is X
    assert subsample_rows(X, None, generator) is X
    assert torch.equal(generator.get_state(), state)  # nothing drawn


# -- the statistics -----------------------------------------------------------------------
@pytest.mark.parametrize("batch_size", [64, 4])  # one batch, and batches of 4, 4 and 2
def test_bounded_statistics_are_those_of_the_rows_drawn(batch_size):
    module = nn.BatchNorm1d(3)
    simplex = _two_vertex_simplex(module)
    X = torch.randn(50, 3) * 2 + 1
    member = draw_member(simplex, 4, X, batch_size, torch.Generator().manual_seed(7), max_rows=10)
    generator = torch.Generator().manual_seed(7)  # the same draws: coordinates, then rows
    coords = sample_barycentric(4, 2, generator=generator)
    rows = subsample_rows(X, 10, generator)
    assert torch.equal(member.coords, coords)
    mean = member.buffers["running_mean"]
    assert torch.allclose(mean, rows.mean(0).expand(4, 3), atol=1e-6)  # every model: the mean of the same rows
    if batch_size >= 10:  # a single batch: its unbiased variance
        assert torch.allclose(member.buffers["running_var"], rows.var(0).expand(4, 3), atol=1e-5)
    reference = model_buffers(module, simplex.combine(coords), simplex.buffers, rows, batch_size)
    assert all(torch.equal(member.buffers[k], reference[k]) for k in reference)


def test_rows_are_drawn_after_the_coordinates_and_only_when_statistics_are_recomputed():
    X = torch.randn(30, 4)
    with_bn = _two_vertex_simplex(nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4)))
    without = _two_vertex_simplex(nn.Linear(4, 2))
    bounded = draw_member(with_bn, 3, X, 8, torch.Generator().manual_seed(0), max_rows=5)
    full = draw_member(with_bn, 3, X, 8, torch.Generator().manual_seed(0))
    assert torch.equal(bounded.coords, full.coords)
    assert not torch.allclose(bounded.buffers["1.running_mean"], full.buffers["1.running_mean"])
    generator = torch.Generator().manual_seed(0)
    draw_member(without, 3, X, 8, generator, max_rows=5)
    assert torch.equal(generator.get_state(), _after_coords(3, 2, seed=0))  # no BatchNorm: no rows drawn


def _after_coords(n_models, n_vertices, seed):
    generator = torch.Generator().manual_seed(seed)
    sample_barycentric(n_models, n_vertices, generator=generator)
    return generator.get_state()


def test_mlp_statistics_of_all_rows_are_version_041s_bit_for_bit():
    module = nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))
    simplex = _two_vertex_simplex(module)
    X = torch.randn(41, 5)
    member = draw_member(simplex, 3, X, 8, torch.Generator().manual_seed(1), max_rows=None)
    with private_module(module) as work:  # version 0.4.1's model_buffers, verbatim
        old = recompute_batchnorm(work, simplex.combine(member.coords), expand(simplex.buffers, 3),
                                  X.split(batch_sizes(len(X), 8, 2)))
    assert member.buffers.keys() == old.keys()
    assert all(torch.equal(member.buffers[k], old[k]) for k in old)


def test_convolutional_networks_loop_over_models_with_the_same_statistics():
    module = ConvNet1d(20, 3, channels=(4, 4))
    simplex = _two_vertex_simplex(module)
    coords = torch.tensor([[0.3, 0.7], [0.9, 0.1], [0.5, 0.5]])
    params, buffers = simplex.combine(coords), expand(simplex.buffers, 3)
    batches = torch.randn(37, 20).split(batch_sizes(37, 8, 2))
    vectorised = recompute_batchnorm(module, params, buffers, batches)
    looped = recompute_batchnorm(module, params, buffers, batches, per_model=True)
    assert vectorised.keys() == looped.keys()
    for k in vectorised:
        assert torch.allclose(vectorised[k].double(), looped[k].double(), atol=1e-5), k
    assert all(layer.momentum == 0.1 for layer in module.modules() if isinstance(layer, nn.BatchNorm1d))
    assert module.training  # restored
    assert all(torch.equal(buffers[k], simplex.buffers[k].expand_as(buffers[k])) for k in buffers)  # only read


# -- the estimator ------------------------------------------------------------------------
def test_fit_recomputes_each_simplex_on_batchnorm_rows_drawn_once():
    X, y = _one_hot_data(40)
    clf = _fit(X, y, batchnorm_rows=10)
    seen = []
    for member in clf.members_:
        mean = member.buffers["bn.running_mean"]  # (n_models, 40): 1/10 at the rows drawn, else 0
        rows = mean[0] > 0
        assert int(rows.sum()) == 10
        assert torch.allclose(mean, rows.float().expand_as(mean) / 10, atol=1e-6)  # the same rows for every model
        seen.append(rows)
    assert not torch.equal(seen[0], seen[1])  # a draw per simplex


def test_fit_with_all_rows_is_unchanged_by_a_bound_it_does_not_reach():
    X, y = _one_hot_data(40)
    X_before = X.copy()
    full, at_n, above = (_fit(X, y, batchnorm_rows=r) for r in (None, 40, 1000))
    for clf in (at_n, above):
        for a, b in zip(full.members_, clf.members_):
            assert torch.equal(a.coords, b.coords)
            assert all(torch.equal(a.buffers[k], b.buffers[k]) for k in a.buffers)
        assert np.array_equal(full.predict_proba(X), clf.predict_proba(X))
    assert torch.allclose(full.members_[0].buffers["bn.running_mean"], torch.full((3, 40), 1 / 40))
    assert np.array_equal(X, X_before)  # never written


def test_bounded_fit_is_reproducible_and_leaves_the_global_rng():
    X, y = _one_hot_data(40)
    state = torch.get_rng_state()
    a, b = _fit(X, y, batchnorm_rows=7), _fit(X, y, batchnorm_rows=7)
    assert torch.equal(torch.get_rng_state(), state)
    for ma, mb in zip(a.members_, b.members_):
        assert all(torch.equal(ma.buffers[k], mb.buffers[k]) for k in ma.buffers)
    assert np.array_equal(a.predict_proba(X), b.predict_proba(X))


def test_two_rows_are_enough():
    X, y = _one_hot_data(40)
    mean = _fit(X, y, batchnorm_rows=2).members_[0].buffers["bn.running_mean"]
    assert int((mean[0] > 0).sum()) == 2


def test_sample_models_bounds_the_rows_too():
    X, y = _one_hot_data(40)
    clf = _fit(X, y, n_modes=1, batchnorm_rows=5)
    models = clf.sample_models(3, X=X, random_state=0)
    means = torch.stack([m.bn.running_mean for m in models])
    rows = means[0] > 0
    assert int(rows.sum()) == 5 and torch.allclose(means, rows.float().expand_as(means) / 5, atol=1e-6)
    again = torch.stack([m.bn.running_mean for m in clf.sample_models(3, X=X, random_state=0)])
    assert torch.equal(means, again)
    full = clf.set_params(batchnorm_rows=None).sample_models(3, X=X, random_state=0)
    assert torch.allclose(torch.stack([m.bn.running_mean for m in full]), torch.full((3, 40), 1 / 40))


def test_sample_members_closed_form():
    simplex = _two_vertex_simplex(nn.BatchNorm1d(3))
    X = torch.randn(30, 3)
    models = sample_members([simplex], 2, X, 64, seed=4, max_rows=6)
    generator = torch.Generator().manual_seed(4)
    sample_barycentric(2, 2, generator=generator)
    rows = subsample_rows(X, 6, generator)
    for m in models:
        assert torch.allclose(m.running_mean, rows.mean(0), atol=1e-6)


@pytest.mark.parametrize("value", [0, -1, 1, True, 1.5, "all"])
@pytest.mark.parametrize("estimator", [ESPROClassifier, ESPRORegressor])
def test_bad_batchnorm_rows_are_named_before_training(value, estimator, monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr("sklearn_espro._base.fit_simplex", no_training)
    X, y = _one_hot_data(10)
    with pytest.raises(ValueError, match="batchnorm_rows"):
        estimator(BatchNormFirst, batchnorm_rows=value, max_epochs=1, device="cpu").fit(X, y)


def test_default_and_get_params():
    assert ESPROClassifier().get_params()["batchnorm_rows"] == ESPRORegressor().get_params()["batchnorm_rows"]
    assert ESPROClassifier(batchnorm_rows=None).get_params()["batchnorm_rows"] is None
