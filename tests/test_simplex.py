import copy

import pytest
import torch
from torch import nn
from torch.func import functional_call
from torch.optim.swa_utils import update_bn

from sklearn_espro._core.batchnorm import batch_statistics, recompute_batchnorm
from sklearn_espro._modules import MLP, ConvNet1d
from sklearn_espro._core.simplex import (
    Simplex,
    batched_forward,
    combine,
    expand,
    flatten,
    unflatten,
)


def _three_vertex_simplex(module):
    simplex = Simplex.from_module(module)
    for _ in range(2):
        simplex = simplex.add_vertex({k: v + 0.1 * torch.randn_like(v) for k, v in module.named_parameters()})
    return simplex


def test_flatten_unflatten_round_trip_is_exact():
    params = {"a": torch.randn(3, 2, 4), "b": torch.randn(3, 5)}
    back = unflatten(flatten(params), params)
    assert all(torch.equal(back[k], params[k]) for k in params)


def test_combine_at_vertices_and_midpoint():
    vertices = {"w": torch.randn(3, 4, 2), "b": torch.randn(3, 2)}
    at_vertices = combine(vertices, torch.eye(3))
    assert all(torch.allclose(at_vertices[k], vertices[k]) for k in vertices)
    mid = combine(vertices, torch.tensor([[0.5, 0.5, 0.0]]))
    assert torch.allclose(mid["w"][0], (vertices["w"][0] + vertices["w"][1]) / 2)


@pytest.mark.parametrize("make", [lambda: MLP(10, 3, hidden_sizes=(16,)), lambda: ConvNet1d(10, 3, channels=(4, 4))])
def test_forward_at_a_vertex_equals_the_plain_module(make):
    module = make().eval()
    simplex = _three_vertex_simplex(module)
    x = torch.randn(7, 10)
    out = simplex.forward(torch.eye(3), x)
    for i in range(3):
        plain = copy.deepcopy(module)
        plain.load_state_dict({**simplex.buffers, **simplex.vertex(i)})
        assert torch.allclose(out[i], plain(x), atol=1e-5)


def test_to_module_matches_batched_forward():
    module = MLP(6, 2, hidden_sizes=(8,)).eval()
    simplex = _three_vertex_simplex(module)
    coords = torch.tensor([[0.2, 0.3, 0.5]])
    x = torch.randn(4, 6)
    assert torch.allclose(simplex.to_module(coords[0])(x), simplex.forward(coords, x)[0], atol=1e-6)


def test_batched_forward_gives_each_model_its_own_chunk():
    module = MLP(6, 2, hidden_sizes=(8,)).train()
    simplex = _three_vertex_simplex(module)
    coords = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.5, 0.5]])
    params = simplex.combine(coords)
    x = torch.randn(2, 5, 6)
    out = batched_forward(module, params, simplex.buffers, x, x_batched=True, buffers_batched=False)
    for i in range(2):
        ref = functional_call(module, {k: v[i] for k, v in params.items()}, (x[i],))
        assert torch.allclose(out[i], ref, atol=1e-6)


def test_batch_statistics_mode_leaves_buffers_untouched():
    module = ConvNet1d(12, 3, channels=(4,))
    simplex = Simplex.from_module(module)
    before = {k: v.clone() for k, v in simplex.buffers.items()}
    with batch_statistics(module):
        batched_forward(module, simplex.combine(torch.ones(2, 1)), simplex.buffers, torch.randn(2, 8, 12),
                        x_batched=True, buffers_batched=False)
    assert all(torch.equal(before[k], simplex.buffers[k]) for k in before)
    assert module.features[1].track_running_stats


def test_recompute_batchnorm_matches_update_bn():
    module = ConvNet1d(12, 3, channels=(4, 4))
    simplex = _three_vertex_simplex(module)
    coords = torch.tensor([[0.2, 0.3, 0.5], [0.6, 0.2, 0.2]])
    batches = list(torch.randn(48, 12).split(16))  # equal batches: update_bn's mean is the same
    buffers = recompute_batchnorm(module, simplex.combine(coords), expand(simplex.buffers, 2), batches)
    for i in range(2):
        reference = simplex.to_module(coords[i])
        update_bn(batches, reference)
        for name, value in reference.named_buffers():
            if "running" in name:
                assert torch.allclose(buffers[name][i], value, atol=1e-5), name
    assert module.features[1].momentum == 0.1  # restored


def test_log_volume_of_simplex():
    module = nn.Linear(2, 1, bias=False)
    simplex = Simplex(module, {"weight": torch.tensor([[[0.0, 0.0]], [[1.0, 0.0]], [[0.0, 1.0]]])})
    assert simplex.n_vertices == 3
    assert simplex.log_volume().exp().item() == pytest.approx(0.5)


def test_coordinates_of_the_wrong_length_are_named():
    simplex = Simplex.from_module(torch.nn.Linear(2, 2)).add_vertex({"weight": torch.ones(2, 2), "bias": torch.zeros(2)})
    with pytest.raises(ValueError, match=r"coords must have shape \(2,\): one weight per vertex; got \(1,\)"):
        simplex.to_module(torch.ones(1))
    with pytest.raises(ValueError, match=r"coords must have shape \(n_models, 2\)"):
        simplex.combine(torch.ones(3, 3))
    assert torch.equal(simplex.to_module(torch.eye(2)[1]).weight, torch.ones(2, 2))
