import copy

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call

from sklearn_espro.geometry import sample_barycentric
from sklearn_espro._core.simplex import Simplex, unflatten
from sklearn_espro._core.growing import grow_simplex, grow_vertex, step_along_gradient
from sklearn_espro._core.training import (
    get_loss,
    infer,
    init_vertex_state,
    regularized_loss,
    sample_params,
    train_step,
)


def _grow_kwargs(**over):
    kwargs = dict(
        epochs=3, lr=0.01, batch_size=50, n_train_samples=5, optimizer=torch.optim.SGD,
        optimizer_kwargs={"momentum": 0.9}, criterion=nn.CrossEntropyLoss(),
        generator=torch.Generator().manual_seed(0),
    )
    kwargs.update(over)
    return kwargs


def _loss(module, X, y):
    with torch.no_grad():
        return nn.functional.cross_entropy(module(torch.as_tensor(X)), torch.as_tensor(y)).item()


def test_regularized_loss_is_mean_loss_minus_lambda_log_volume():
    out = regularized_loss(torch.tensor(0.7), torch.tensor(-2.0, dtype=torch.float64), 0.1)
    assert out.item() == pytest.approx(0.9)


def _state(module, n_chunks):
    simplex = Simplex.from_module(module)
    state = init_vertex_state(
        simplex, volume_reg=0.0, lr=0.1, n_train_samples=n_chunks, optimizer=torch.optim.SGD, optimizer_kwargs={},
        criterion=nn.CrossEntropyLoss(), generator=torch.Generator().manual_seed(3),
    )
    with torch.no_grad():
        state.vertex.copy_(simplex.flat_vertices()[0] + 0.1)
    return state, simplex


def test_infer_runs_each_chunk_through_its_own_sampled_model():
    module = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    state, simplex = _state(module, 5)
    x = torch.randn(5, 6, 4)
    y = torch.randint(0, 3, (5, 6))
    state.generator.manual_seed(3)
    logits = infer(state, x)
    state.generator.manual_seed(3)  # replay the same draws
    params = sample_params(state, 5)
    losses = []
    for h in range(5):
        ref = functional_call(module, {k: v[h] for k, v in params.items()}, (x[h],))
        assert torch.allclose(logits[h], ref, atol=1e-6)
        losses.append(nn.functional.cross_entropy(ref, y[h]))
    loss, _ = get_loss(state, logits, y)
    assert loss.item() == pytest.approx(torch.stack(losses).mean().item(), rel=1e-5)  # mean over H, not sum


def test_sampled_params_lie_in_the_simplex():
    module = nn.Linear(3, 2)
    state, simplex = _state(module, 4)
    state.generator.manual_seed(5)
    params = sample_params(state, 4)
    state.generator.manual_seed(5)
    coords = sample_barycentric(4, 2, generator=state.generator)
    both = torch.stack([state.frozen[0], state.vertex.detach()])
    expected = coords @ both
    flat = torch.cat([params["weight"].flatten(1), params["bias"].flatten(1)], 1)
    assert torch.allclose(flat, expected, atol=1e-6)


class _WithUnusedLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.used, self.unused = nn.Linear(3, 2), nn.Linear(3, 2)

    def forward(self, x):
        return self.used(x)


def test_one_sampled_model_has_autograds_weights_and_vertex_gradient():
    # the single-model path writes the weights into a reused buffer and computes the vertex's
    # gradient itself: both must be what autograd gives for theta = C_frozen @ A_frozen + c_new * a_new
    module = _WithUnusedLayer().double()
    state, _ = _state(module, 1)
    x, y = torch.randn(6, 3, dtype=torch.float64), torch.tensor([0, 1, 0, 1, 1, 0])
    state.generator.manual_seed(7)
    params = sample_params(state, 1)
    nn.functional.cross_entropy(functional_call(module, {k: v[0] for k, v in params.items()}, (x,)), y).backward()
    state.generator.manual_seed(7)
    coords = sample_barycentric(1, 2, generator=state.generator, dtype=torch.float64)[0]
    vertex = state.vertex.detach().clone().requires_grad_()
    flat = coords[0] * state.frozen[0] + coords[1] * vertex
    for name, value in unflatten(flat[None], state.like).items():
        torch.testing.assert_close(params[name], value, rtol=0, atol=1e-12)
    ref = unflatten(flat[None], state.like)
    nn.functional.cross_entropy(functional_call(module, {k: v[0] for k, v in ref.items()}, (x,)), y).backward()
    torch.testing.assert_close(state.vertex.grad, vertex.grad, rtol=0, atol=1e-12)
    grads = unflatten(state.vertex.grad[None], state.like)
    assert not grads["unused.weight"].any() and grads["used.weight"].abs().sum() > 0
    with torch.no_grad():  # an optimizer's in-place update of the vertex is what the next model is drawn from
        state.vertex += 1.0
    assert torch.equal(state.stack[-1], state.vertex.detach())


def test_grow_vertex_trains_only_the_new_vertex_and_gains_volume(trained_mlp, digits):
    X, y, _, _ = digits
    module = copy.deepcopy(trained_mlp)
    simplex = Simplex.from_module(module)
    grown, history = grow_vertex(simplex, torch.as_tensor(X), torch.as_tensor(y), volume_reg=0.5, **_grow_kwargs())
    assert grown.n_vertices == 2
    assert all(torch.equal(grown.vertices[k][0], simplex.vertices[k][0]) for k in simplex.vertices)
    assert [r["epoch"] for r in history] == [0, 1, 2]
    assert history[-1]["log_volume"] > history[0]["log_volume"]
    assert np.isfinite(grown.log_volume().item())



def test_a_vertex_started_on_the_mode_without_volume_term_trains(trained_mlp, digits):
    # no noise: the new vertex starts on the mode, log V = -inf; lambda = 0 must not turn that into NaN
    X, y, _, _ = digits
    simplex = Simplex.from_module(copy.deepcopy(trained_mlp))
    grown, history = grow_vertex(simplex, torch.as_tensor(X), torch.as_tensor(y), volume_reg=0.0,
                                 **{**_grow_kwargs(), "init_noise": 0.0})
    assert all(np.isfinite(r["loss"]) and np.isfinite(r["data_loss"]) for r in history)
    assert history[0]["loss"] == pytest.approx(history[0]["data_loss"])
    assert np.isfinite(grown.log_volume().item())  # the vertex left the mode


def test_a_step_along_the_gradient_moves_the_vertex_uphill_by_the_given_distance(trained_mlp, digits):
    X, y, _, _ = digits
    X_t, y_t = torch.as_tensor(X), torch.as_tensor(y)
    state = init_vertex_state(Simplex.from_module(copy.deepcopy(trained_mlp)), volume_reg=0.0, lr=0.1,
                              n_train_samples=1, optimizer=torch.optim.SGD, optimizer_kwargs={},
                              criterion=nn.CrossEntropyLoss(), generator=torch.Generator().manual_seed(0),
                              init_noise=0.0)
    centroid = state.vertex.detach().clone()
    start = step_along_gradient(state, X_t, y_t, batch_size=64, step=0.05)
    moved = state.vertex.detach()
    assert (moved - centroid).norm().item() == pytest.approx(0.05 * centroid.norm().item(), rel=1e-4)
    like = state.like
    at = lambda flat: _loss(Simplex(state.module, unflatten(flat[None], like)).vertex_module(0), X, y)
    assert start == pytest.approx(at(centroid), rel=1e-4)  # the loss it reports is the start's
    assert at(moved) > 1.5 * at(centroid)  # uphill, a lot: the mode's loss is small


def test_sampled_members_keep_low_training_loss(trained_mlp, digits):
    X, y, _, _ = digits
    module = copy.deepcopy(trained_mlp)
    mode_loss = _loss(module, X, y)
    simplex, history = grow_simplex(
        Simplex.from_module(module), torch.as_tensor(X), torch.as_tensor(y), 3, volume_reg=0.1,
        **_grow_kwargs(epochs=5),
    )
    assert simplex.n_vertices == 3 and len(history) == 10
    assert simplex.log_volume().item() > -np.inf
    coords = sample_barycentric(20, 3, generator=torch.Generator().manual_seed(1))
    losses = [_loss(simplex.to_module(t), X, y) for t in coords]
    assert max(losses) < 1.25 * mode_loss + 0.02
    # ... while the simplex is not a point: its vertices are far apart relative to noise.
    spread = (simplex.flat_vertices()[1:] - simplex.flat_vertices()[0]).norm(dim=1)
    assert (spread > 0.5).all()  # the volume term pushed them out (about 0.12 with volume_reg=0)


def test_diverging_loss_names_the_phase(trained_mlp, digits):
    X, y, _, _ = digits
    simplex = Simplex.from_module(copy.deepcopy(trained_mlp))
    with pytest.raises(FloatingPointError, match=r"epoch 1 of vertex 1 of simplex 0 \(vertex_lr=1e\+12.*learning rate"):
        grow_simplex(simplex, torch.as_tensor(X), torch.as_tensor(y), 2, volume_reg=0.1, phase="simplex 0",
                     **_grow_kwargs(lr=1e12, epochs=1))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("faces", [None, [(0,), (1,)]])
@pytest.mark.parametrize("n_train_samples", [1, 4])  # a plain forward, and chunks under vmap
def test_cuda_training_step_never_waits_for_the_host(faces, n_train_samples):
    """A vertex step on the GPU makes no device-to-host copy and no synchronisation."""
    from sklearn_espro import Simplex
    from sklearn_espro._core.training import init_vertex_state, train_step

    device = torch.device("cuda")
    simplex = Simplex.from_module(torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.BatchNorm1d(16),
                                                      torch.nn.ReLU(), torch.nn.Linear(16, 3)).to(device))
    simplex = simplex.add_vertex({k: v[0] + 0.1 for k, v in simplex.vertices.items()})
    state = init_vertex_state(simplex, volume_reg=0.1, lr=0.01, n_train_samples=n_train_samples,
                              optimizer=torch.optim.SGD, optimizer_kwargs={"momentum": 0.9},
                              criterion=torch.nn.CrossEntropyLoss(),
                              generator=torch.Generator(device=device).manual_seed(0), faces=faces)
    x, y = torch.randn(64, 8, device=device), torch.randint(3, (64,), device=device)
    train_step(state, x, y)  # warm-up: lazy initialisation may synchronise once
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(3):
            loss, data_loss = train_step(state, x, y)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert loss.device.type == "cuda" and torch.isfinite(loss).item()


def test_a_step_along_the_gradient_with_batchnorm_never_makes_a_batch_of_one():
    module = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
    state = init_vertex_state(Simplex.from_module(module), volume_reg=0.0, lr=0.1, n_train_samples=1,
                              optimizer=torch.optim.SGD, optimizer_kwargs={}, criterion=nn.CrossEntropyLoss(),
                              generator=torch.Generator().manual_seed(0))
    X, y = torch.randn(21, 4), torch.randint(3, (21,))  # batches of 10 would leave one sample over
    before = state.vertex.detach().clone()
    step_along_gradient(state, X, y, batch_size=10, step=0.05)
    assert (state.vertex.detach() - before).norm().item() > 0


class _WithScalar(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear, self.temperature = nn.Linear(3, 2), nn.Parameter(torch.tensor(1.5))

    def forward(self, x):
        return self.linear(x) / self.temperature


def test_a_parameter_with_no_dimensions_trains_as_a_vertex():
    from sklearn_espro import ESPROClassifier

    X, y = np.random.RandomState(0).randn(40, 3).astype(np.float32), np.arange(40) % 2
    clf = ESPROClassifier(_WithScalar, n_modes=1, n_vertices=3, max_epochs=1, vertex_epochs=1, random_state=0).fit(X, y)
    assert clf.simplexes_[0].vertices["temperature"].shape == (3,)
    np.testing.assert_allclose(clf.predict_proba(X).sum(1), 1, rtol=1e-6)


@pytest.mark.parametrize("max_grad_norm", [None, 0.5])
def test_a_step_clips_the_vertex_gradient_to_max_grad_norm(max_grad_norm):
    """Plain SGD moves the vertex by lr times its gradient: with clipping, at most lr * max_grad_norm."""
    state = init_vertex_state(
        Simplex.from_module(nn.Linear(4, 3)), volume_reg=0.0, lr=0.1, n_train_samples=1, optimizer=torch.optim.SGD,
        optimizer_kwargs={}, criterion=nn.CrossEntropyLoss(), generator=torch.Generator().manual_seed(0),
        max_grad_norm=max_grad_norm)
    before = state.vertex.detach().clone()
    x = torch.full((8, 4), 100.0)  # unscaled inputs: a gradient far above 0.5
    train_step(state, x, torch.zeros(8, dtype=torch.long))
    moved = float((state.vertex.detach() - before).norm())
    if max_grad_norm is None:
        assert moved > 1.0
    else:
        assert moved == pytest.approx(0.1 * max_grad_norm, rel=1e-4)


def test_a_mode_step_clips_the_gradient_to_max_grad_norm():
    from sklearn_espro._core.modes import ModeTraining, train_mode

    X, y = np.full((8, 4), 100.0, dtype=np.float32), np.zeros(8, dtype=np.int64)
    start = nn.Linear(4, 3)
    before = torch.cat([p.detach().flatten() for p in start.parameters()])
    training = ModeTraining(n_classes=3, max_epochs=1, lr=0.1, batch_size=8, optimizer=torch.optim.SGD,
                            optimizer_kwargs={}, criterion=nn.CrossEntropyLoss, criterion_kwargs={}, max_grad_norm=0.5)
    module, _ = train_mode(copy.deepcopy(start), X, y, training, device="cpu", seed=0)
    moved = float((torch.cat([p.detach().flatten() for p in module.parameters()]) - before).norm())
    assert moved == pytest.approx(0.1 * 0.5, rel=1e-4)  # one step of plain SGD on the clipped gradient


def test_disagreement_term_makes_the_vertex_disagree_with_its_mode_off_the_training_set():
    """The experimental lever of issue 22 (VertexTraining.diversity): with it, the new vertex
    puts less probability on the mode's answers at mixed-up inputs than without."""
    from sklearn_espro._core.training import run_epoch
    from sklearn_espro._core.vertex_state import init_vertex_state

    torch.manual_seed(0)
    X = torch.randn(256, 10)
    y = (X[:, 0] > 0).long() + (X[:, 1] > 0).long()
    net = torch.nn.Sequential(torch.nn.Linear(10, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    optimizer = torch.optim.SGD(net.parameters(), lr=0.5)
    for _ in range(300):  # a confident mode
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(net(X), y).backward()
        optimizer.step()
    simplex = Simplex.from_module(net)
    mix = torch.rand(256, 1)
    off = mix * X + (1 - mix) * X.flip(0)
    agreement = {}
    for weight in (0.0, 1.0):
        state = init_vertex_state(simplex, volume_reg=0.0, lr=0.1, n_train_samples=1, optimizer=torch.optim.SGD,
                                  optimizer_kwargs={}, criterion=torch.nn.CrossEntropyLoss(),
                                  generator=torch.Generator().manual_seed(0), diversity=weight)
        for _ in range(5):
            result = run_epoch(state, X, y, 32)
        assert np.isfinite(result["loss"]) and (result["loss"] != result["data_loss"]) == (weight > 0)
        with torch.no_grad():
            mode = simplex.vertex_module(0)(off).softmax(-1)
            weights = {k: v[0] for k, v in unflatten(state.vertex.detach()[None], state.like).items()}
            vertex = functional_call(simplex.module, weights, (off,))
            agreement[weight] = float((mode * vertex.softmax(-1)).sum(-1).mean())
    assert agreement[1.0] < agreement[0.0] - 0.05
